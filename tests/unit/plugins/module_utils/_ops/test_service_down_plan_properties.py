# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The service-down step planner against an independent model (Hypothesis).

The model is written from the runbooks' P1 procedure, not from the planner: free space
first only when resources are critical, then restart the failing services, then the
whole project, re-checking after each and stopping once health is back; escalate when
the steps run out, or when the budget is spent before a step (never before the first).
Generated worlds say whether health is back after each step and how long each took; the
planner is driven step by step as ``recover_service`` drives it and must take exactly the
model's steps and end the same way. The service step's choice (restart or recreate) is
checked by its rules over generated sets of services.
"""

from __future__ import annotations

import os
import sys

from hypothesis import given
from hypothesis import strategies as st

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import service_down as sd  # noqa: E402

STEPS = ("free_resources", "restart_services", "restart_project")


def model(healthy_at_start, fixed_after, critical, seconds, budget):
    """(steps taken, outcome) as the runbook reads."""
    if healthy_at_start:
        return [], "healthy"
    plan = ["restart_services", "restart_project"]
    if critical:
        plan.insert(0, "free_resources")
    taken, clock = [], 0
    for position, step in enumerate(plan):
        if position > 0 and clock >= budget:
            return taken, "escalate"
        taken.append(step)
        clock += seconds[step]
        if fixed_after[step]:
            return taken, "recovered"
    return taken, "escalate"


def drive(healthy_at_start, fixed_after, critical, seconds, budget):
    """The planner, step by step, as recover_service runs it."""
    done, healthy, clock = [], healthy_at_start, 0
    while True:
        step = sd.next_step(healthy, done, clock, budget, critical)
        if step in ("healthy", "recovered", "escalate"):
            return done, step
        assert step not in done, "a step runs once"
        done.append(step)
        clock += seconds[step]
        healthy = fixed_after[step]


@given(healthy_at_start=st.booleans(),
       fixed_after=st.fixed_dictionaries({s: st.booleans() for s in STEPS}),
       critical=st.booleans(),
       seconds=st.fixed_dictionaries({s: st.integers(0, 1200) for s in STEPS}),
       budget=st.integers(0, 1800))
def test_the_planner_takes_the_models_steps(healthy_at_start, fixed_after, critical, seconds, budget):
    assert drive(healthy_at_start, fixed_after, critical, seconds, budget) == model(
        healthy_at_start, fixed_after, critical, seconds, budget)


NAMES = st.sampled_from(["web", "worker", "db", "beat", "bot"])


@given(failing=st.sets(NAMES), drifted=st.sets(NAMES), missing=st.sets(NAMES),
       named=st.sets(NAMES), endpoints_down=st.booleans())
def test_the_service_step_restarts_or_recreates_each_failing_service_once(
        failing, drifted, missing, named, endpoints_down):
    missing = missing & failing  # only a failing service can lack its container
    actions = sd.service_actions(sorted(failing), sorted(drifted), sorted(missing), sorted(named),
                                 endpoints_down)
    restart, recreate = set(actions["restart"]), set(actions["recreate"])
    targets = failing if failing else (named if endpoints_down else set())
    assert restart | recreate == targets
    assert not restart & recreate
    # a restart keeps the old environment, and there is nothing to restart without a container
    assert not restart & (drifted | missing)
    assert recreate <= drifted | missing
    assert actions["restart"] == sorted(restart) and actions["recreate"] == sorted(recreate)

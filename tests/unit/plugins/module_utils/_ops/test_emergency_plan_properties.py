# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The emergency step planner against an independent model (Hypothesis).

The model is written from the runbook's "Disk Usage Critical" procedure and the playbook's
header, not from ``decide_step``: the steps in order (build cache, images, containers and
volumes, logs), each only while usage is at or above the target - a forced preview takes
every step; without an engine the Docker steps are skipped, an engine the settings name
whose socket is gone fails the first Docker step reached; after a Docker step failed as a
whole the later Docker steps are skipped; the logs step always runs when reached. Generated
worlds give the usage at the start, what each step frees and whether the engine fails in a
step; the planner is driven as ``run_emergency_disk`` drives it.
"""

from __future__ import annotations

import os
import sys

from hypothesis import given
from hypothesis import strategies as st

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import emergency  # noqa: E402

IDS = ("build_cache", "images", "containers_volumes", "logs")
DOCKER = IDS[:3]


def model(start, frees, target, preview, engine, engine_fails_in):
    """[(step, outcome)] as the runbook reads: ran, failed, no-engine, after-failure, below."""
    usage, engine_failed, outcome = start, False, []
    for step in IDS:
        if usage < target and not preview:
            outcome.append((step, "below"))
            continue
        if step in DOCKER:
            if engine_failed:
                outcome.append((step, "after-failure"))
                continue
            if engine == "absent":
                outcome.append((step, "no-engine"))
                continue
            if engine == "configured_missing" or step == engine_fails_in:
                engine_failed = True
                outcome.append((step, "failed"))
                continue
        outcome.append((step, "ran"))
        usage -= frees[step]
    return outcome


def drive(start, frees, target, preview, engine, engine_fails_in):
    """decide_step over the steps, the effects applied as run_emergency_disk applies them."""
    usage, docker_failed, outcome = start, "", []
    steps = emergency._steps(dict(emergency.check_emergency_settings({})["settings"]))  # pylint: disable=protected-access
    assert [s["id"] for s in steps] == list(IDS)
    for step in steps:
        decision = emergency.decide_step(step["kind"], step["title"], usage, target, preview,
                                         engine, docker_failed, "unix:///run/docker.sock")
        docker_failed = decision["docker_failed"]
        action = decision["action"]
        if action == "below_target":
            assert decision["note"] == "skipped: usage %d%% is below the target %d%%" % (usage, target)
            outcome.append((step["id"], "below"))
        elif action == "skip":
            outcome.append((step["id"], "no-engine" if decision["note"].endswith("on this host")
                            else "after-failure"))
        elif action == "fail":
            assert docker_failed == step["title"]
            outcome.append((step["id"], "failed"))
        elif step["id"] == engine_fails_in:  # the engine fails as a whole in this step
            docker_failed = step["title"]
            outcome.append((step["id"], "failed"))
        else:
            outcome.append((step["id"], "ran"))
            usage -= frees[step["id"]]
    return outcome


@given(start=st.integers(0, 100),
       frees=st.fixed_dictionaries(dict((s, st.integers(0, 40)) for s in IDS)),
       target=st.integers(1, 99), preview=st.booleans(),
       engine=st.sampled_from(["present", "absent", "configured_missing"]),
       engine_fails_in=st.sampled_from(DOCKER + (None,)))
def test_the_planner_takes_the_models_steps(start, frees, target, preview, engine, engine_fails_in):
    assert drive(start, frees, target, preview, engine, engine_fails_in) == model(
        start, frees, target, preview, engine, engine_fails_in)


@given(start=st.integers(0, 100), target=st.integers(1, 99),
       engine=st.sampled_from(["present", "absent", "configured_missing"]))
def test_without_a_preview_a_step_below_the_target_never_runs(start, target, engine):
    for kind in ("docker", "logs"):
        decision = emergency.decide_step(kind, "t", start, target, False, engine, "")
        assert (decision["action"] == "below_target") == (start < target)


@given(title=st.sampled_from(["Docker images unused for 168h", "x"]),
       failed=st.sampled_from(["Docker build cache", ""]),
       engine=st.sampled_from(["present", "absent", "configured_missing"]))
def test_the_logs_step_never_depends_on_the_engine(title, failed, engine):
    decision = emergency.decide_step("logs", title, 90, 70, False, engine, failed)
    assert decision["action"] == "run" and decision["docker_failed"] == failed

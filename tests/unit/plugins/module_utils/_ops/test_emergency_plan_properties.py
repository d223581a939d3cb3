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
step; the planner is driven as ``run_emergency_disk`` drives it. Then whole previews on a
real filesystem, with an engine that would free generated amounts, against the same model's
usage projection.
"""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import emergency  # noqa: E402

IDS = ("build_cache", "images", "containers_volumes", "logs")
DOCKER = IDS[:3]


@pytest.fixture
def tmpfs_disk(tmpfs):
    """A 4 MiB tmpfs about a third full, with an empty log directory: (path, used + avail,
    used bytes, df's Use%). Previews change nothing, so every example shares it."""
    root = tmpfs("disk", "size=4m")
    (root / "log").mkdir()
    (root / "data").write_bytes(b"x" * 1300 * 1024)
    st_ = os.statvfs(str(root))
    used = (st_.f_blocks - st_.f_bfree) * st_.f_frsize
    total = used + st_.f_bavail * st_.f_frsize
    return str(root), total, used, -(-used * 100 // total)


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


def fake_cleanup(estimates, data_root, calls):
    """A Docker engine that would free ``estimates[step]`` bytes on ``data_root`` in each
    step (check mode only: nothing is removed anywhere)."""
    def cleanup(options, check_mode=False):
        assert check_mode, "the property runs previews only"
        step = ("build_cache" if options["builder_cache"] else
                "images" if options["images"] != "none" else "containers_volumes")
        calls.append((step, options["target_percent"]))
        return {"changed": bool(estimates[step]), "errors": [], "warnings": [], "kept": [],
                "moved_tags": [], "data_root": data_root, "usage_before_percent": None,
                "reclaimed_bytes": estimates[step],
                "steps": [{"name": step, "enabled": True, "skipped": None,
                           "removed": ["x"] if estimates[step] else [], "younger": 0}]}
    return cleanup


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shares=st.fixed_dictionaries(dict((s, st.integers(0, 100)) for s in DOCKER)),
       target=st.integers(1, 60), force=st.booleans())
def test_a_preview_projects_the_usage_step_by_step_and_stops_where_a_real_run_would(
        tmpfs_disk, shares, target, force):
    """Check mode on a real filesystem with generated estimates: each step's usage is the
    usage before it minus what it frees (df's rounding), the steps stop once below the
    target, and a forced preview takes them all, marking those past the target."""
    root, total, used_bytes, percent = tmpfs_disk
    estimates = dict((s, used_bytes * shares[s] // 300) for s in DOCKER)
    calls = []
    summary = emergency.run_emergency_disk(
        {"path": root, "log_dir": root + "/log", "journal_vacuum": False, "force": force,
         "target_percent": target, "crit_percent": target + 1, "escalate_percent": max(target, 80),
         "docker_host": "tcp://127.0.0.1:9"},
        check_mode=True, cleanup=fake_cleanup(estimates, root, calls))["summary"]
    if not (force or percent >= target + 1):  # below critical: only measured
        assert not summary["active"] and summary["steps"] == [] and calls == []
        return
    used, expected, preview = used_bytes, [], force
    for step in IDS:
        if percent < target and not preview:
            expected.append((step, False, percent, False))
            continue
        beyond = percent < target
        used = max(used - estimates.get(step, 0), 0)
        percent = -(-used * 100 // total)
        expected.append((step, True, percent, preview and beyond))
    marker = "; a real run stops before this step (below the target)"
    assert [(s["id"], s["ran"], s["after_percent"], s["note"].endswith(marker))
            for s in summary["steps"]] == expected
    assert summary["after_percent"] == percent and summary["after_used_bytes"] == used
    assert [step for step, _target in calls] == [s for s, ran, _p, _m in expected if ran and s in DOCKER]
    assert all(t is None if preview else t == float(target) for _step, t in calls)

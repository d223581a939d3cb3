# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""service_down.py: the decisions, table-driven, and its file and disk helpers on real
temp trees and a real, nearly full tmpfs. The whole procedure runs against a real engine
in tests/integration/test_service_down.py; the planner against a model in
test_service_down_plan_properties.py."""

from __future__ import annotations

import json
import os
import stat
import sys

import pytest

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import service_down as sd  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402

MIB = 1024 * 1024


def container(service, status="running", exit_code=0, health=None, policy="no", project="shop",
              oneoff=False, number="1"):
    """An inspect dict as the engine returns it (the fields the judgement reads)."""
    state = {"Status": status, "ExitCode": exit_code, "OOMKilled": False,
             "StartedAt": "2026-12-02T03:00:00Z", "FinishedAt": "0001-01-01T00:00:00Z"}
    if health:
        state["Health"] = {"Status": health}
    labels = {"com.docker.compose.project": project, "com.docker.compose.service": service,
              "com.docker.compose.container-number": number}
    if oneoff:
        labels["com.docker.compose.oneoff"] = "True"
    return {"Id": "%s%s" % (service, "0" * 60)[:64], "Name": "/%s-%s-%s" % (project, service, number),
            "State": state, "RestartCount": 0, "Config": {"Labels": labels, "Env": []},
            "HostConfig": {"RestartPolicy": {"Name": policy}}}


@pytest.mark.parametrize("containers, selected, required, expected", [
    pytest.param([container("web")], ["web"], [], {"web": ("ok", False)}, id="running"),
    pytest.param([container("web", "exited", 137)], ["web"], [],
                 {"web": ("critical", False)}, id="killed"),
    pytest.param([], ["web"], [], {"web": ("critical", True)}, id="no-container"),
    pytest.param([container("web", health="unhealthy")], ["web"], [],
                 {"web": ("critical", False)}, id="unhealthy"),
    pytest.param([container("migrate", "exited", 0)], ["migrate"], [],
                 {"migrate": ("ok", False)}, id="one-shot-done"),
    pytest.param([container("migrate", "exited", 0)], ["migrate"], ["migrate"],
                 {"migrate": ("critical", False)}, id="named-service-must-run"),
    pytest.param([container("web"), container("web", "exited", 1, number="2")], ["web"], [],
                 {"web": ("critical", False)}, id="worst-replica-decides"),
    pytest.param([container("web", "exited", 1, oneoff=True), container("web")], ["web"], [],
                 {"web": ("ok", False)}, id="one-off-run-left-out"),
    pytest.param([container("web", project="other", status="exited", exit_code=1)], ["web"], [],
                 {"web": ("critical", True)}, id="another-project"),
])
def test_judge_services(containers, selected, required, expected):
    judged = sd.judge_services(containers, "shop", selected, required)
    assert {name: (s["level"], s["missing"]) for name, s in judged.items()} == expected


def test_a_health_check_still_starting_is_settling_not_failing():
    judged = sd.judge_services([container("web", health="starting")], "shop", ["web"], [])
    assert judged["web"]["level"] == "ok" and judged["web"]["settling"]


@pytest.mark.parametrize("failing, drifted, missing, named, down, expected", [
    pytest.param(["web"], [], [], [], True, {"restart": ["web"], "recreate": []}, id="restart"),
    pytest.param(["web", "worker"], ["worker"], [], [], True,
                 {"restart": ["web"], "recreate": ["worker"]}, id="drifted-recreated"),
    pytest.param(["web"], [], ["web"], [], False, {"restart": [], "recreate": ["web"]},
                 id="no-container-recreated"),
    pytest.param([], ["web"], [], [], True, {"restart": [], "recreate": []},
                 id="drift-alone-is-not-an-outage"),
    pytest.param([], [], [], ["api"], True, {"restart": ["api"], "recreate": []},
                 id="endpoint-down-named-services"),
    pytest.param([], [], [], ["api"], False, {"restart": [], "recreate": []},
                 id="nothing-down"),
    pytest.param(["db"], [], [], ["api"], True, {"restart": ["db"], "recreate": []},
                 id="failing-containers-before-names"),
])
def test_service_actions(failing, drifted, missing, named, down, expected):
    assert sd.service_actions(failing, drifted, missing, named, down) == expected


@pytest.mark.parametrize("healthy, done, elapsed, critical, expected", [
    pytest.param(True, [], 0, False, "healthy", id="healthy"),
    pytest.param(False, [], 0, False, "restart_services", id="first-step"),
    pytest.param(False, [], 0, True, "free_resources", id="full-disk-first"),
    pytest.param(False, ["free_resources"], 10, True, "restart_services", id="then-restart"),
    pytest.param(True, ["restart_services"], 10, False, "recovered", id="recovered"),
    pytest.param(False, ["restart_services"], 10, False, "restart_project", id="project"),
    pytest.param(False, ["restart_services", "restart_project"], 10, False, "escalate",
                 id="out-of-steps"),
    pytest.param(False, ["restart_services"], 900, False, "escalate", id="out-of-time"),
    pytest.param(False, [], 900, False, "restart_services", id="budget-never-before-a-step"),
])
def test_next_step(healthy, done, elapsed, critical, expected):
    assert sd.next_step(healthy, done, elapsed, 900, critical) == expected


def test_a_nearly_full_disk_and_low_memory_are_reasons_to_free_space(tmpfs, tmp_path):
    disk = tmpfs("full", "size=1m")
    with open(str(disk / "fill"), "wb") as handle:
        handle.write(b"x" * (1024 * 1024 - 16 * 1024))
    meminfo = tmp_path / "meminfo"
    meminfo.write_text("MemTotal: 1048576 kB\nMemFree: 1024 kB\nMemAvailable: 51200 kB\n")
    resources = sd.measure_resources([str(disk), str(disk / "fill"), str(tmp_path)],
                                     meminfo_path=str(meminfo))
    mounts = [d["mount"] for d in resources["disks"]]
    assert mounts.count(str(disk)) == 1, "one line per filesystem"
    problems = sd.resource_problems(resources, 95, 100 * MIB)
    assert problems[0] == "disk %s at 99%% (above 95%%)" % disk
    assert problems[-1] == "memory: 50.0 MiB available (below 100.0 MiB)"
    assert resources["memory"]["available_bytes"] == 50 * MIB
    assert resources["memory"]["total_bytes"] == 1024 * MIB
    assert sd.resource_problems(resources, 99, 10 * MIB) == []


@pytest.mark.parametrize("kwargs, message", [
    ({"wait_seconds": -1}, "wait_seconds: -1 must be a number of at least 0"),
    ({"budget_minutes": True}, "budget_minutes: True must be a number of at least 0"),
    ({"log_lines": 0}, "log_lines: 0 must be a number of at least 1"),
    ({"disk_crit_percent": 100}, "disk_crit_percent: 100 must be a percentage between 0 and 100"),
    ({"endpoints": [{"name": "api", "url": "ftp://x"}]},
     "endpoints[0].url must start with http:// or https://, got 'ftp://x/'"),
])
def test_bad_input_is_one_line(kwargs, message):
    args = dict(endpoints=[], wait_seconds=30, stack_wait_seconds=60, budget_minutes=15,
                log_lines=200, disk_crit_percent=95, memory_min_bytes=MIB)
    args.update(kwargs)
    with pytest.raises(OpsError) as caught:
        sd.check_inputs(**args)
    assert caught.value.message == message


def test_endpoint_options_left_empty_take_the_monitors_defaults():
    checked = sd.check_inputs([{"name": "api", "url": "http://127.0.0.1/", "expected_status": None,
                                "timeout_seconds": None}], 30, 60, 15, 200, 95, MIB)
    assert checked[0]["expected_status"] == 200 and checked[0]["timeout_seconds"] == 5


def test_the_downtime_counts_from_the_monitors_first_failed_check(tmp_path):
    (tmp_path / "health.json").write_text(json.dumps({"checks": {
        "endpoint:api": {"since": 1000.0, "failures": 3},
        "compose:shop/web": {"since": 1100.0},
        "compose:other/web": {"since": 500.0},  # another project
        "endpoint:elsewhere": {"since": 400.0}}}))
    assert sd.down_since(str(tmp_path), "shop", ["api"], 2000.0) == (
        1000.0, "the health monitor's first failed check")
    assert sd.down_since(str(tmp_path), "shop", [], 2000.0)[0] == 1100.0
    assert sd.down_since(str(tmp_path / "none"), "shop", ["api"], 2000.0) == (
        2000.0, "this run's first check")


def test_the_evidence_file_is_private_and_a_full_disk_is_said_not_raised(tmp_path, tmpfs):
    path = sd.report_path(str(tmp_path / "reports"), "my shop", 1796180102)
    assert path == str(tmp_path / "reports" / "service-down-my_shop-20261202T025502Z.log")
    assert sd.write_private(path, "first\n", new=True) is None
    assert sd.write_private(path, "second\n") is None
    assert open(path).read() == "first\nsecond\n"
    assert sd.write_private(path, "a run's first write never joins an existing file\n", new=True) == "File exists"
    assert open(path).read() == "first\nsecond\n"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    full = tmpfs("tiny", "size=16k")
    assert sd.write_private(str(full / "r" / "x.log"), "y" * 64 * 1024) == "No space left on device"


def test_a_wait_ends_after_two_healthy_checks_in_a_row():
    snapshots = iter([False, True, False, True, True, True])
    seen = []
    now = [0.0]

    def observe():
        seen.append(next(snapshots))
        return {"healthy": seen[-1], "settling": False}

    result = sd.wait_until_healthy(observe, 60, sleep=lambda s: now.__setitem__(0, now[0] + s),
                                   clock=lambda: now[0], poll=2)
    assert result["healthy"] and seen == [False, True, False, True, True] and now[0] == 8


def test_a_health_check_still_starting_when_the_wait_ends_is_not_back():
    now = [0.0]

    def observe():
        return {"healthy": True, "settling": True}

    result = sd.wait_until_healthy(observe, 10, sleep=lambda s: now.__setitem__(0, now[0] + s),
                                   clock=lambda: now[0], poll=2)
    assert result["healthy"] is False and now[0] >= 10


def test_the_project_step_recreates_only_the_named_services():
    assert sd.run_project_step([], None, "/srv/shop", str, True, ["web", "worker"]) == (
        "would run `docker compose up -d --force-recreate web worker` (volumes kept)", None)
    assert sd.run_project_step([], None, "/srv/shop", str, True)[0] == (
        "would run `docker compose up -d --force-recreate` (volumes kept)")


@pytest.mark.parametrize("done, critical, expected", [
    pytest.param(["restart_services", "restart_project"], False,
                 "shop is still down after its steps (restart the failing services, restart the whole "
                 "project): web: exited — escalate now", id="out-of-steps"),
    pytest.param(["restart_services"], False,
                 "shop is still down after 0.5 min, the budget (steps taken: restart the failing "
                 "services): web: exited — escalate now", id="out-of-time"),
    pytest.param(["free_resources", "restart_services"], True,
                 "shop is still down after 0.5 min, the budget (steps taken: free disk space first, "
                 "restart the failing services): web: exited — escalate now", id="out-of-time-after-freeing"),
])
def test_the_escalation_says_after_what_and_why(done, critical, expected):
    text = sd.escalation_text("shop", done, ["web: exited"], 30, critical)
    assert text.startswith(expected) and "runbook P1: no progress for 15 min goes to L2" in text


def test_an_escalation_without_recreating_the_stack_says_why():
    text = sd.escalation_text("shop", ["restart_services"], ["endpoint web: HTTP 404"], 30, False,
                              refused="a one-off container of shop runs (shop-db-run-1)")
    assert text.startswith("shop is still down after restart the failing services, without recreating the stack "
                           "(a one-off container of shop runs (shop-db-run-1)): endpoint web: HTTP 404 — escalate now")


def published(attrs, *ports):
    """``attrs`` publishing each of ``ports`` on 127.0.0.1, as inspect shows it."""
    attrs["NetworkSettings"] = {"Ports": {"8080/tcp": [{"HostIp": "127.0.0.1", "HostPort": str(p)} for p in ports],
                                          "9000/tcp": None}}
    return attrs


WEB = {"name": "web", "url": "http://127.0.0.1:18514/health"}


@pytest.mark.parametrize("containers, endpoints, down, expected", [
    pytest.param([published(container("web"), 18514), container("db")], [WEB], ["web"], [],
                 id="hung-app-on-its-own-port"),
    pytest.param([published(container("web"), 18514)], [dict(WEB, url="http://localhost:18514/")], ["web"], [],
                 id="localhost"),
    pytest.param([published(container("web"), 18514), published(container("migrate", oneoff=True))],
                 [WEB], ["web"], ["a one-off container of shop runs (shop-migrate-1)"], id="migration-running"),
    pytest.param([published(container("web"), 18514), container("migrate", "exited", oneoff=True)],
                 [WEB], ["web"], [], id="migration-done"),
    pytest.param([published(container("web"), 18514)], [dict(WEB, url="http://127.0.0.1:18999/health")], ["web"],
                 ["endpoint web is not on a loopback port shop publishes"], id="another-port"),
    pytest.param([published(container("web", project="other"), 18514)], [WEB], ["web"],
                 ["endpoint web is not on a loopback port shop publishes"], id="another-project"),
    pytest.param([published(container("web", "exited", 1), 18514)], [WEB], ["web"],
                 ["endpoint web is not on a loopback port shop publishes"], id="publisher-not-running"),
    pytest.param([published(container("web"), 443)], [dict(WEB, url="https://shop.example.com/health")], ["web"],
                 ["endpoint web is not on a loopback port shop publishes"], id="through-dns-or-a-proxy"),
    pytest.param([published(container("web"), 80)], [dict(WEB, url="http://127.0.0.1/health")], ["web"], [],
                 id="default-port"),
    pytest.param([published(container("web"), 18514)], [WEB, {"name": "api", "url": "http://10.0.0.5:8000/"}],
                 ["web"], [], id="only-failing-endpoints-count"),
])
def test_a_hung_stack_is_recreated_only_when_its_endpoint_is_its_own_and_nothing_runs_once(
        containers, endpoints, down, expected):
    """The runbook restarts the whole stack when the app hangs; not on a guess (an endpoint
    this project does not serve) and not under a running one-off (a migration)."""
    assert sd.hung_stack_blockers(containers, "shop", endpoints, down) == expected


class _Engine:
    """inspect_image over a fixed set of references; ``fail`` raises that error for any other
    (an engine timing out under a full disk), else the SDK's ImageNotFound."""

    def __init__(self, images, fail=None):
        self.images, self.fail = images, fail

    def inspect_image(self, ref):
        if ref in self.images:
            return {"Id": self.images[ref]}
        if self.fail:
            raise self.fail
        import docker.errors
        raise docker.errors.ImageNotFound("No such image: %s" % ref)


def test_the_free_step_holds_every_image_a_service_is_created_from():
    config = {"name": "shop", "services": {"web": {"image": "app:1"}, "built": {"build": {"context": "."}},
                                           "old": {"build": {"context": "."}}, "gone": {"image": "gone:1"}}}
    engine = _Engine({"app:1": "sha256:a", "shop-built": "sha256:b", "shop_old": "sha256:c"})
    assert sd.project_images(engine, config) == ["sha256:a", "sha256:b", "sha256:c"]


def test_an_engine_that_does_not_answer_about_an_image_removes_nothing():
    import requests
    config = {"name": "shop", "services": {"web": {"image": "app:1"}, "worker": {"image": "worker:1"}}}
    engine = _Engine({"app:1": "sha256:a"}, fail=requests.exceptions.ReadTimeout("read timed out"))
    with pytest.raises(OpsError, match=r"^the engine did not say whether the image worker:1 of service worker "
                                       r"is here \(read timed out\); no image was removed$"):
        sd.project_images(engine, config)
    note, error, freed = sd.run_free_step(["disk / at 99% (above 95%)"], engine, config,
                                          {"until": "168h", "docker_host": "unix:///nonexistent.sock"}, False)
    assert (note, freed) == ("because disk / at 99% (above 95%): nothing removed", 0)
    assert error.startswith("the engine did not say whether the image worker:1")


def test_a_project_that_builds_at_every_start_keeps_its_build_cache_and_images():
    config = {"name": "shop", "services": {"web": {"build": {"context": "."}, "pull_policy": "build"},
                                           "db": {"image": "postgres:16"}}}
    note, error, freed = sd.run_free_step(["disk / at 99% (above 95%)"], None, config,
                                          {"until": "168h", "docker_host": "unix:///nonexistent.sock"}, False)
    assert (error, freed) == (None, 0)
    assert note == ("because disk / at 99% (above 95%): nothing removed: web built again at every start "
                    "(pull_policy: build), from a base image and build cache that must stay")

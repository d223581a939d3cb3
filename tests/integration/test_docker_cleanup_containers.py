# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_cleanup tries to lose a container's data, on real isolated engines (Docker 20.10
and 26, each test on both), after the review of #15 items 4, 5, 9:

* a container started again after the plan, which then crashes, stays (it is inspected
  and judged again right before its removal), with its volume, in that run and the next;
* ``containers_until: 0s`` cannot switch off the floor: an hour after a clean stop, a day
  after a crash;
* a data-only container (``--volumes-from``) stays while a container mounts its volume,
  and one named in any container's ``HostConfig.VolumesFrom`` stays, even when it holds a
  named volume only or the container naming it was created after the plan;
* the volumes of a container a run removed stay for ``containers_until`` after it, across
  runs, through a record in ``state_dir``;
* a container created between the check and a forced image removal is reported;
* an engine that dies after the plan turns each step into one error line, no traceback.

Containers are made old with ``IsolatedEngine.backdate_containers`` (the engine's own
records of when they were created, started and stopped, moved back while it is stopped).
Races are made by wrapping ``plan_cleanup_steps`` (between the inventory and the first
removal) or the client's ``remove_image``.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from images import build_busybox_image
from isolated_engine import ENGINES
from test_docker_cleanup_safety import _exists, _read, _volume_of  # the same probes of a real engine

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_cleanup as dc
from ansible_collections.runbook.ops.plugins.module_utils._ops.docker_cleanup_cli import format_result

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="isolated engines need root")

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
HOUR, DAY = 3600, 86400


@pytest.fixture(params=ENGINES, ids=["docker-%s" % v for v in ENGINES])
def engine(request, isolated_engine_factory):
    return isolated_engine_factory("containers", version=request.param)


def _kept(result):
    return dict((k["name"], k["reason"]) for k in result["kept"])


def run_module(engine, args, check=False):
    """``ansible localhost -m runbook.ops.docker_cleanup -a ARGS``; the task result."""
    env = dict(os.environ, **engine.env)
    env.update({"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg")})
    argv = ["ansible", "localhost", "-m", "runbook.ops.docker_cleanup", "-a", json.dumps(args)]
    proc = subprocess.run(argv + (["--check"] if check else []), capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600, check=False)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_a_container_started_after_the_plan_that_crashes_stays_with_its_data(engine, monkeypatch, tmp_path):
    """db crashed three days ago: old enough to go (over 48h), so the plan removes it.
    Between the plan and its removal an operator starts it again and it crashes at once
    (exit 3). Inspected again right before, it has just crashed: it stays, with its data,
    in this run and the next (a day after a crash at least)."""
    api = engine.api()
    build_busybox_image(engine, "db:1", filler_bytes=4096)
    crash = "echo row >> /var/lib/db/table; exit 3"
    engine.docker_cli("run", "--name", "db", "-v", "/var/lib/db", "db:1", "sh", "-c", crash, check=False)
    volume = _volume_of(api, "db")
    engine.backdate_containers({"db": 3 * DAY})
    api = engine.api()
    args = {"until": "0s", "containers": True, "containers_until": "48h", "volumes": "anonymous",
            "images": "none", "builder_cache": False, "docker_host": engine.host,
            "state_dir": str(tmp_path)}
    plan_cleanup_steps = dc.plan_cleanup_steps
    planned = []

    def plan_then_restart(state, options, now=None):
        plan = plan_cleanup_steps(state, options, now)
        planned.extend(item["name"] for item in plan["steps"][1]["planned"])
        engine.docker_cli("start", "db")
        assert api.wait("db", timeout=30)["StatusCode"] == 3
        return plan

    monkeypatch.setattr(dc, "plan_cleanup_steps", plan_then_restart)
    result = dc.run_docker_cleanup(args)
    monkeypatch.setattr(dc, "plan_cleanup_steps", plan_cleanup_steps)
    again = dc.run_docker_cleanup(args)

    assert planned == ["db"], "the plan must choose db, or this tests nothing"
    assert result["steps"][1]["removed"] == [] and result["errors"] == []
    reason = _kept(result)["db"]
    assert reason.startswith("started or stopped since the plan: exited ")
    assert reason.endswith(" ago (exit 3), younger than 48h"), reason
    assert again["steps"][1]["planned"] == [] and volume not in again["steps"][3]["removed"]
    assert _kept(again)["db"].endswith("(exit 3), younger than 48h")
    assert api.inspect_container("db")["State"]["ExitCode"] == 3
    assert _read(engine, volume, "table") == "row\nrow\n"


def test_containers_until_0s_keeps_what_stopped_within_an_hour_or_crashed_within_a_day(engine, tmp_path):
    """Through the module, check then real: with ``containers_until: 0s`` (and ``until:
    0s``) only clean-2h (exit 0, two hours ago) and crashed-2d (exit 1, two days ago) go;
    a database killed a moment ago, a job that ended cleanly a moment ago and one that
    failed 23 hours ago stay, each with the floor that kept it."""
    api = engine.api()
    build_busybox_image(engine, "db:1", filler_bytes=4096)
    for name, code in (("clean-2h", 0), ("crashed-23h", 1), ("crashed-2d", 1)):
        engine.docker_cli("run", "--name", name, "db:1", "sh", "-c", "exit %d" % code, check=False)
    engine.docker_cli("run", "-d", "--name", "db", "-v", "/var/lib/db", "db:1", "sh", "-c",
                      "echo row-1 > /var/lib/db/table; exec sleep 3600")
    engine.backdate_containers({"clean-2h": 2 * HOUR, "crashed-23h": 23 * HOUR, "crashed-2d": 2 * DAY,
                                "db": 10 * DAY})
    api = engine.api()
    engine.docker_cli("start", "db")
    engine.docker_cli("run", "--name", "clean-now", "db:1", "true")
    engine.docker_cli("kill", "db")
    assert api.wait("db", timeout=30)["StatusCode"] == 137
    args = {"until": "0s", "containers": True, "containers_until": "0s", "volumes": "anonymous",
            "images": "none", "builder_cache": False, "state_dir": str(tmp_path)}

    check = run_module(engine, args, check=True)
    real = run_module(engine, args)
    names = dict((c["Id"], c["Names"][0].lstrip("/")) for c in api.containers(all=True))
    for result in (check, real):
        assert not result.get("failed"), result
        kept = _kept(result)
        assert set(kept) == {"db", "clean-now", "crashed-23h"}, kept
        assert kept["db"].endswith("(exit 137), younger than 24h (the minimum after a crash)")
        assert kept["crashed-23h"].startswith("exited 23 h ago (exit 1), younger than 24h")
        assert kept["clean-now"].endswith("(exit 0), younger than 1h (the minimum for a stopped container)")
    assert sorted(names.values()) == ["clean-now", "crashed-23h", "db"]
    assert len(real["steps"][1]["removed"]) == 2 and real["steps"][1]["removed"] == check["steps"][1]["removed"]
    assert api.inspect_container("db")["State"]["ExitCode"] == 137
    assert _read(engine, _volume_of(api, "db"), "table") == "row-1\n"


def test_a_data_only_container_stays_while_its_volume_is_mounted_through_volumes_from(engine, tmp_path):
    """``docker create -v /data --name dbdata`` and ``docker run --volumes-from dbdata app``:
    dbdata never ran and was created three days ago. While app exists dbdata stays; once
    app is gone, dbdata goes and its volume stays for this run and the next."""
    api = engine.api()
    build_busybox_image(engine, "db:1", filler_bytes=4096)
    engine.docker_cli("create", "-v", "/data", "--name", "dbdata", "db:1", "true")
    engine.docker_cli("run", "-d", "--volumes-from", "dbdata", "--name", "app", "db:1", "sh", "-c",
                      "echo photo > /data/p1; exec sleep 3600")
    volume = _volume_of(api, "dbdata")
    engine.backdate_containers({"dbdata": 3 * DAY})
    api = engine.api()
    engine.docker_cli("start", "app")
    assert [m["Name"] for m in api.containers(filters={"name": "app"})[0]["Mounts"]] == [volume]
    args = {"until": "0s", "containers": True, "containers_until": "24h", "volumes": "anonymous",
            "images": "none", "builder_cache": False, "docker_host": engine.host,
            "state_dir": str(tmp_path)}

    for result in (dc.run_docker_cleanup(args, check_mode=True), dc.run_docker_cleanup(args)):
        assert result["steps"][1]["removed"] == [] and result["steps"][3]["removed"] == []
        assert _kept(result) == {"dbdata": "a data container: app takes its volumes (--volumes-from)"}
    assert _read(engine, volume, "p1") == "photo\n"

    engine.docker_cli("rm", "-f", "app")
    after = dc.run_docker_cleanup(args)
    assert len(after["steps"][1]["removed"]) == 1 and not _exists(api, "container", "dbdata")
    again = dc.run_docker_cleanup(args)
    assert again["steps"][3]["removed"] == [] and _read(engine, volume, "p1") == "photo\n"
    assert _kept(again)[volume].startswith("data of dbdata, which a cleanup removed ")


def test_a_data_container_named_in_volumes_from_is_never_removed(engine, monkeypatch, tmp_path):
    """dbdata holds a *named* volume (so no anonymous volume shows the link) and app runs
    with ``--volumes-from dbdata:ro``; spare-data is referenced by nobody at the plan, and
    a deploy creates ``late`` with ``--volumes-from <its ID prefix>`` between the plan and
    the removal. Both data containers stopped days ago; both stay (app, late could not be
    recreated without them), in check mode and for real."""
    api = engine.api()
    build_busybox_image(engine, "db:1", filler_bytes=4096)
    engine.docker_cli("create", "-v", "dbdata-vol:/data", "--name", "dbdata", "db:1", "true")
    engine.docker_cli("create", "-v", "/spare", "--name", "spare-data", "db:1", "true")
    engine.docker_cli("run", "-d", "--volumes-from", "dbdata:ro", "--name", "app", "db:1",
                      "sleep", "3600")
    engine.backdate_containers({"dbdata": 3 * DAY, "spare-data": 3 * DAY})
    api = engine.api()
    engine.docker_cli("start", "app")
    spare_id = api.inspect_container("spare-data")["Id"]
    args = {"until": "0s", "containers": True, "containers_until": "24h", "volumes": "none",
            "images": "none", "builder_cache": False, "docker_host": engine.host,
            "state_dir": str(tmp_path)}
    check = dc.run_docker_cleanup(args, check_mode=True)
    assert [i["name"] for i in check["steps"][1]["planned"]] == ["spare-data"]
    plan_cleanup_steps = dc.plan_cleanup_steps

    def plan_then_deploy(state, options, now=None):
        plan = plan_cleanup_steps(state, options, now)
        engine.docker_cli("create", "--volumes-from", spare_id[:12], "--name", "late", "db:1", "true")
        return plan

    monkeypatch.setattr(dc, "plan_cleanup_steps", plan_then_deploy)
    result = dc.run_docker_cleanup(args)

    assert _kept(check)["dbdata"] == "a data container: app takes its volumes (--volumes-from)"
    assert result["steps"][1]["removed"] == [] and result["errors"] == [], result
    assert _kept(result) == {"dbdata": "a data container: app takes its volumes (--volumes-from)",
                             "spare-data": "a data container: late takes its volumes (--volumes-from)"}
    assert _exists(api, "container", "dbdata") and _exists(api, "container", "spare-data")
    engine.docker_cli("rm", "-f", "app")
    engine.docker_cli("run", "--name", "app", "--volumes-from", "dbdata", "db:1", "true")


def test_volumes_of_a_removed_container_stay_across_runs_for_containers_until(engine, tmp_path):
    """The emergency procedure is often run twice: the first run removes old-job and keeps
    its volume; the second finds the volume unused, and keeps it because the record says
    old-job was removed minutes ago; once the record is older than containers_until
    (24h), the volume goes."""
    api = engine.api()
    build_busybox_image(engine, "db:1", filler_bytes=4096)
    engine.docker_cli("run", "--name", "old-job", "-v", "/out", "db:1", "sh", "-c", "echo done > /out/result")
    volume = _volume_of(api, "old-job")
    engine.backdate_containers({"old-job": 3 * DAY})
    api = engine.api()
    args = {"until": "0s", "containers": True, "containers_until": "24h", "volumes": "anonymous",
            "images": "none", "builder_cache": False, "docker_host": engine.host,
            "state_dir": str(tmp_path)}

    first = run_module(engine, args)
    assert len(first["steps"][1]["removed"]) == 1 and _kept(first)[volume].startswith("data of old-job, which this run")
    check = run_module(engine, args, check=True)
    second = run_module(engine, args)
    for result in (check, second):
        assert result["steps"][3]["removed"] == [], result
        assert _kept(result)[volume].startswith("data of old-job, which a cleanup removed ")
        assert _kept(result)[volume].endswith(" ago; kept for 24h after that")
    assert _read(engine, volume, "result") == "done\n"

    record = dc.removed_volumes_path(str(tmp_path), api.info()["ID"])
    with open(record) as fh:
        data = json.load(fh)
    assert list(data["volumes"]) == [volume] and data["volumes"][volume]["container"] == "old-job"
    data["volumes"][volume]["removed_at"] -= 25 * HOUR
    with open(record, "w") as fh:
        json.dump(data, fh)
    third = run_module(engine, args)
    assert third["steps"][3]["removed"] == [volume] and not _exists(api, "volume", volume)


def test_a_container_created_between_the_check_and_a_forced_image_removal_is_reported(engine, monkeypatch):
    """An image with two names is removed by ID only with force, which lets a container
    created meanwhile keep a removed image; the module lists it in errors."""
    import docker

    api = engine.api()
    image = build_busybox_image(engine, "multi:1", filler_bytes=8196)
    engine.docker_cli("tag", "multi:1", "multi:latest")
    remove_image = docker.APIClient.remove_image

    def deploy_then_remove(self, ref, *args, **kwargs):
        engine.docker_cli("create", "--name", "late", "multi:1")
        return remove_image(self, ref, *args, **kwargs)

    monkeypatch.setattr(docker.APIClient, "remove_image", deploy_then_remove)
    result = dc.run_docker_cleanup({"until": "0s", "builder_cache": False, "docker_host": engine.host})
    assert result["steps"][2]["removed"] == [image] and not _exists(api, "image", image)
    assert result["errors"] == ["image multi:1, multi:latest: removed (several names need force), but "
                                "container late, created since the check, uses it: it cannot be "
                                "recreated from that image"]
    assert api.inspect_container("late")["Image"] == image


def test_an_engine_that_dies_after_the_plan_gives_one_error_line_per_step(engine, monkeypatch):
    """dockerd is killed between the plan and the first removal: every step that had work
    says so in one line (the build cache's /build/prune used to raise a traceback), and
    the run returns a result instead of raising."""
    build_busybox_image(engine, "cache:1", filler_bytes=4098, buildkit=True)
    engine.docker_cli("rmi", "cache:1")
    old = build_busybox_image(engine, "old:1", filler_bytes=4099)
    plan_cleanup_steps = dc.plan_cleanup_steps

    def plan_then_crash(state, options, now=None):
        plan = plan_cleanup_steps(state, options, now)
        engine.proc.kill()
        engine.proc.wait(timeout=30)
        return plan

    monkeypatch.setattr(dc, "plan_cleanup_steps", plan_then_crash)
    result = dc.run_docker_cleanup({"until": "0s", "docker_host": engine.host})
    assert result["changed"] is False
    assert [e.split(":")[0] for e in result["errors"]] == ["builder_cache", "image old"]
    assert result["errors"][0].startswith("builder_cache: the step failed: ")
    assert all("\n" not in line and "Traceback" not in line for line in result["errors"])
    assert result["steps"][2]["planned"][0]["id"] == old


def test_ages_are_judged_on_the_engine_clock_not_the_controllers(engine, monkeypatch):
    """The controller's clock runs an hour ahead of the engine's (a remote engine, a host
    without NTP). job stopped 90 min ago by the engine's clock: younger than
    ``containers_until: 2h``, so it stays, though by the controller's clock it stopped 2.5 h
    ago; the result warns about the skew. Then the engine's own age decides: 3 h later (by
    both clocks) it goes."""
    import time as _time

    api = engine.api()
    build_busybox_image(engine, "db:1", filler_bytes=4096)
    engine.docker_cli("run", "--name", "job", "db:1", "true")
    engine.backdate_containers({"job": 90 * 60})
    args = {"until": "0s", "containers": True, "containers_until": "2h", "volumes": "none",
            "images": "none", "builder_cache": False, "docker_host": engine.host}
    real = _time.time
    monkeypatch.setattr(_time, "time", lambda: real() + HOUR)

    for result in (dc.run_docker_cleanup(args, check_mode=True), dc.run_docker_cleanup(args)):
        assert result["steps"][1]["removed"] == [], result["steps"][1]
        assert _kept(result)["job"].startswith("exited 1 h ago (exit 0), younger than 2h")
        assert any(w.startswith("the engine's clock is 59 min behind this host's")
                   or w.startswith("the engine's clock is 1 h behind this host's")
                   for w in result["warnings"]), result["warnings"]
    assert _exists(api, "container", "job")
    monkeypatch.setattr(_time, "time", real)
    engine.backdate_containers({"job": 3 * HOUR})
    assert len(dc.run_docker_cleanup(args)["steps"][1]["removed"]) == 1


def test_the_engine_prunes_build_cache_by_the_plans_cutoff_and_the_rest_is_counted(engine, monkeypatch):
    """Build cache last used 12 s before the plan, ``until: 20s``: the plan keeps it
    (younger) and says so (Docker 20.10 lists no build cache in a real run: the engine
    decides, by the plan's cutoff too). The earlier steps of a real run take time (here 14 s): by the
    ``/build/prune`` the records are 26 s old, and an engine given ``until=20s`` itself
    would remove them. The engine must remove exactly what the plan chose."""
    import time as _time

    build_busybox_image(engine, "cache:1", filler_bytes=4097, buildkit=True)
    engine.docker_cli("rmi", "cache:1")
    api = engine.api()
    used = [r for r in api.df()["BuildCache"] or [] if r.get("LastUsedAt")]
    assert used, "the build left no record with a last use: this tests nothing"
    _time.sleep(12)
    plan_cleanup_steps = dc.plan_cleanup_steps

    def plan_then_wait(state, options, now=None):
        plan = plan_cleanup_steps(state, options, now)
        _time.sleep(14)
        return plan

    monkeypatch.setattr(dc, "plan_cleanup_steps", plan_then_wait)
    result = dc.run_docker_cleanup({"until": "20s", "images": "none", "docker_host": engine.host})
    step = result["steps"][0]
    after = set(r["ID"] for r in api.df()["BuildCache"] or [])
    assert set(step["removed"]) == set(i["id"] for i in step["planned"]), step
    assert all(r["ID"] in after for r in used), "the engine pruned records the plan kept"
    if api.api_version == "1.41":  # no build cache listing in a real run: the engine decides
        assert step["younger"] == 0 and step["removed"] == []
        return
    assert step["younger"] == len(used) and result["until"] == "20s"
    assert any(line.strip().startswith("builder_cache") and line.endswith(
        ", %d younger than 20s left" % len(used)) for line in format_result(result)), format_result(result)

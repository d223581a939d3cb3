# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_cleanup tries to lose data, on real isolated engines: Docker 20.10 (API 1.41)
and Debian 13's Docker 26 (API 1.45), each test on both.

* a database created long ago that crashed a moment ago (exit 137) stays, with its data;
  a container the run removes keeps its volume until a later run;
* a tag that a deploy moves between the plan and the removal stays on its new image;
  an image named, or used by a container created, since the plan stays;
* one inventory per run: no full ``/system/df`` (which sizes every volume on 20.10) in a
  real run, the type-filtered one on API 1.42+.

Everything goes through ``run_docker_cleanup`` (or the module), as a user's run does;
the races are made by wrapping ``plan_cleanup_steps``, which runs between the inventory
and the first removal.
"""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest

from images import build_busybox_image
from isolated_engine import ENGINES

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_cleanup as dc

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="isolated engines need root")

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
KEEP = "runbook.ops.keep"
DAY = 86400
CONTAINERS_UNTIL = "48h"  # stopped containers: more than the 24 h floor after a crash


@pytest.fixture(params=ENGINES, ids=["docker-%s" % v for v in ENGINES])
def engine(request, isolated_engine_factory):
    return isolated_engine_factory("safety", data_root_size="300m", version=request.param,
                                   log_level="debug")


def _exists(api, kind, ref):
    try:
        getattr(api, "inspect_" + kind)(ref)
        return True
    except Exception:  # noqa: BLE001 - NotFound
        return False


def _volume_of(api, container):
    return [m["Name"] for m in api.inspect_container(container)["Mounts"] if m["Type"] == "volume"][0]


def _read(engine, volume, path):
    return engine.docker_cli("run", "--rm", "-v", "%s:/v:ro" % volume, "db:1", "cat", "/v/" + path).stdout


def run_module(engine, args, check=False):
    """``ansible localhost -m runbook.ops.docker_cleanup -a ARGS``; the task result."""
    env = dict(os.environ, **engine.env)
    env.update({"ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_LOAD_CALLBACK_PLUGINS": "1",
                "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg")})
    argv = ["ansible", "localhost", "-m", "runbook.ops.docker_cleanup", "-a", json.dumps(args)]
    proc = subprocess.run(argv + (["--check"] if check else []), capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=600, check=False)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


# --- item 4: stopped containers are aged by when they stopped ------------------------------

def test_a_database_that_just_crashed_stays_with_its_data(engine, tmp_path):
    """db-1 was created ten days ago and killed (exit 137) a moment ago; old-job stopped ten
    days ago. containers: true removes old-job only, and keeps old-job's volume for this
    run; a later run without a record of that removal (no state_dir) removes that volume
    and still keeps db-1."""
    api = engine.api()
    build_busybox_image(engine, "db:1", filler_bytes=4096)
    engine.docker_cli("run", "--name", "old-job", "-v", "/out", "db:1", "sh", "-c", "echo done > /out/result")
    engine.docker_cli("run", "-d", "--name", "db-1", "-v", "/var/lib/db", "db:1",
                      "sh", "-c", "echo row-1 > /var/lib/db/table; exec sleep 3600")
    db_volume, job_volume = _volume_of(api, "db-1"), _volume_of(api, "old-job")
    engine.backdate_containers({"old-job": 10 * DAY, "db-1": 10 * DAY})
    api = engine.api()
    engine.docker_cli("start", "db-1")
    time.sleep(1)
    engine.docker_cli("kill", "db-1")  # SIGKILL: what ENOSPC usually ends in
    assert api.wait("db-1", timeout=30)["StatusCode"] == 137
    args = {"until": "0s", "containers": True, "containers_until": CONTAINERS_UNTIL,
            "volumes": "anonymous", "images": "none", "builder_cache": False,
            "docker_host": engine.host, "state_dir": str(tmp_path)}

    check = dc.run_docker_cleanup(args, check_mode=True)
    result = run_module(engine, args)
    assert not result.get("failed"), result
    old_job = check["steps"][1]["removed"]
    assert [s["removed"] for s in result["steps"]] == [s["removed"] for s in check["steps"]]
    assert len(old_job) == 1 and not _exists(api, "container", "old-job")
    assert api.inspect_container("db-1")["State"]["ExitCode"] == 137
    assert _read(engine, db_volume, "table") == "row-1\n"
    assert _read(engine, job_volume, "result") == "done\n", "the removed container's data went with it"
    for run in (check, result):
        kept = dict((k["name"], k) for k in run["kept"])
        assert set(kept) == {"db-1", job_volume}
        assert kept["db-1"]["exit_code"] == 137 and kept["db-1"]["kind"] == "container"
        assert kept["db-1"]["reason"].startswith("exited ")
        assert kept["db-1"]["reason"].endswith("ago (exit 137), younger than %s" % CONTAINERS_UNTIL)
        assert kept[job_volume]["reason"] == ("data of old-job, which this run removes; "
                                              "a later run may remove it")

    again = dc.run_docker_cleanup(dict(args, state_dir=None))
    assert again["steps"][3]["removed"] == [job_volume]
    assert _exists(api, "container", "db-1") and _exists(api, "volume", db_volume)
    assert [k["name"] for k in again["kept"]] == ["db-1"]


# --- item 5: images are removed by ID; a moved tag stays where it went ---------------------

def test_a_tag_moved_between_plan_and_removal_stays_on_its_new_image(engine, monkeypatch):
    api = engine.api()
    old = build_busybox_image(engine, "app:1", filler_bytes=8192)
    other = build_busybox_image(engine, "other:1", filler_bytes=8193)
    deployed = {}
    plan_cleanup_steps = dc.plan_cleanup_steps

    def plan_then_deploy(state, options, now=None):
        plan = plan_cleanup_steps(state, options, now)
        # the deploy builds the new release as app:1, which now points to it
        deployed["new"] = build_busybox_image(engine, "app:1", filler_bytes=8194, labels={KEEP: "true"})
        return plan

    monkeypatch.setattr(dc, "plan_cleanup_steps", plan_then_deploy)
    result = dc.run_docker_cleanup({"until": "0s", "builder_cache": False, "docker_host": engine.host})

    new = deployed["new"]
    assert api.inspect_image("app:1")["Id"] == new, "the new release lost its tag"
    assert api.inspect_image(new)["Config"]["Labels"][KEEP] == "true"
    assert not _exists(api, "image", old) and not _exists(api, "image", other)
    assert sorted(result["steps"][2]["removed"]) == sorted([old, other])
    assert result["moved_tags"] == [{"tag": "app:1", "planned_image": old, "image": new}]
    assert result["steps"][2]["moved_tags"] == result["moved_tags"]
    assert result["errors"] == []


def test_an_image_named_or_used_since_the_plan_stays(engine, monkeypatch):
    """A dangling image tagged for a rollback and an image with two tags that a new
    (stopped) container uses, both after the plan, stay; an unused image with two tags
    goes (by ID: the engine needs force there, and refuses running containers anyway)."""
    api = engine.api()
    dangling = build_busybox_image(engine, None, filler_bytes=8195)
    used = build_busybox_image(engine, "multi:1", filler_bytes=8196)
    engine.docker_cli("tag", "multi:1", "registry.local:5000/multi:1")
    spare = build_busybox_image(engine, "spare:1", filler_bytes=8197)
    engine.docker_cli("tag", "spare:1", "spare:latest")
    plan_cleanup_steps = dc.plan_cleanup_steps

    def plan_then_race(state, options, now=None):
        plan = plan_cleanup_steps(state, options, now)
        engine.docker_cli("tag", dangling, "rollback:1")
        engine.docker_cli("create", "--name", "late", "multi:1")
        return plan

    monkeypatch.setattr(dc, "plan_cleanup_steps", plan_then_race)
    result = dc.run_docker_cleanup({"until": "0s", "builder_cache": False, "docker_host": engine.host})

    assert sorted(result["steps"][2]["planned"][i]["id"] for i in range(3)) == sorted([dangling, used, spare])
    assert result["steps"][2]["removed"] == [spare] and not _exists(api, "image", spare)
    assert api.inspect_image("rollback:1")["Id"] == dangling
    assert sorted(api.inspect_image(used)["RepoTags"]) == ["multi:1", "registry.local:5000/multi:1"]
    kept = dict((k["id"], k["reason"]) for k in result["kept"])
    assert kept == {dangling: "named rollback:1 since the plan",
                    used: "used by container late since the plan"}
    assert result["errors"] == [] and result["moved_tags"] == []


def test_the_engine_behaves_as_removal_by_id_relies_on(engine):
    """What ``_remove_image`` relies on, per engine (moby daemon/images/image_delete.go):
    by ID without force the engine refuses an image with several names and one a stopped
    container uses; with force it still refuses one a running container or a child image
    uses, but not one a stopped container uses (hence our own check first)."""
    import docker

    api = engine.api()

    def refused(ref, force, why):
        with pytest.raises(docker.errors.APIError) as info:
            api.remove_image(ref, force=force)
        assert info.value.status_code == 409 and why in str(info.value.explanation)

    multi = build_busybox_image(engine, "multi:1", filler_bytes=100)
    engine.docker_cli("tag", "multi:1", "other/multi:2")
    refused(multi, False, "referenced in multiple repositories")
    stopped = build_busybox_image(engine, "stopped:1", filler_bytes=101)
    engine.docker_cli("create", "--name", "user", "stopped:1")
    refused(stopped, False, "being used by stopped container")
    running = build_busybox_image(engine, "running:1", filler_bytes=102)
    engine.docker_cli("tag", "running:1", "running:2")
    engine.docker_cli("run", "-d", "--name", "live", "running:1")
    refused(running, True, "being used by running container")
    base = build_busybox_image(engine, "base:1", filler_bytes=103)
    engine.docker_cli("tag", "base:1", "base:2")
    build_busybox_image(engine, "child:1", base="base:1", filler_bytes=104)
    refused(base, True, "has dependent child images")
    api.remove_image(stopped, force=True)  # force skips the stopped-container check
    assert not _exists(api, "image", stopped)
    api.remove_image(multi, force=True)
    assert not _exists(api, "image", "multi:1") and not _exists(api, "image", "other/multi:2")


# --- item 9: one inventory per run ---------------------------------------------------------

def _df_calls(engine, since):
    return [call for call in engine.api_calls()[since:] if "/system/df" in call]


def test_one_inventory_per_run_and_never_the_full_one_in_a_real_run(engine):
    """The emergency's options, with a photo volume in use: a real run asks no full
    ``/system/df`` (on 20.10 it walks that volume); check mode on 20.10 asks exactly one
    (only it lists build cache there); API 1.42+ asks the type-filtered one, once."""
    api = engine.api()
    build_busybox_image(engine, "shop/app:1", filler_bytes=4096)
    build_busybox_image(engine, "shop/app:0", filler_bytes=4097)
    build_busybox_image(engine, "cache:1", filler_bytes=4098, buildkit=True)
    engine.docker_cli("run", "-d", "--name", "app", "-v", "photos:/photos", "shop/app:1", "sh", "-c",
                      "mkdir -p /photos/2026 && cd /photos/2026 && for i in $(seq 2000); do echo $i > p$i; done;"
                      " exec sleep 3600")
    args = {"until": "0s", "containers": True, "containers_until": "24h", "volumes": "anonymous",
            "docker_host": engine.host}
    typed = api.api_version != "1.41"  # /system/df?type=... since API 1.42
    want = ["GET /v%s/system/df?type=image&type=build-cache" % api.api_version] if typed else []

    mark = len(engine.api_calls())
    result = dc.run_docker_cleanup(args)
    assert result["steps"][2]["removed"] and result["data_root_measured"]
    assert _df_calls(engine, mark) == want

    engine.docker_cli("run", "--name", "done", "shop/app:1", "true")
    engine.backdate_containers({"done": 2 * DAY})  # stopped long enough ago to go
    engine.docker_cli("start", "app")
    mark = len(engine.api_calls())
    check = dc.run_docker_cleanup(args, check_mode=True)
    assert check["steps"][1]["removed"]
    assert _df_calls(engine, mark) == (want or ["GET /v1.41/system/df"])

    mark = len(engine.api_calls())
    dc.run_docker_cleanup(dict(args, builder_cache=False), check_mode=True)
    assert _df_calls(engine, mark) == [call.replace("&type=build-cache", "") for call in want]
    assert _exists(api, "volume", "photos")


def test_a_volume_used_since_the_plan_stays_and_the_refusal_is_reported(engine, monkeypatch):
    """The engine refuses to remove a volume a container created after the plan mounts;
    the rest goes on and the refusal is an error (the CLI exits 1, the module warns)."""
    api = engine.api()
    build_busybox_image(engine, "db:1", filler_bytes=4096)
    orphans = []
    for name in ("tmp-a", "tmp-b"):
        engine.docker_cli("run", "--name", name, "-v", "/scratch", "db:1", "sh", "-c", "echo x > /scratch/x")
        orphans.append(_volume_of(api, name))
        engine.docker_cli("rm", name)
    plan_cleanup_steps = dc.plan_cleanup_steps

    def plan_then_mount(state, options, now=None):
        plan = plan_cleanup_steps(state, options, now)
        engine.docker_cli("create", "--name", "late", "-v", "%s:/data" % orphans[0], "db:1")
        return plan

    monkeypatch.setattr(dc, "plan_cleanup_steps", plan_then_mount)
    result = dc.run_docker_cleanup({"until": "0s", "images": "none", "builder_cache": False,
                                    "volumes": "anonymous", "docker_host": engine.host})
    assert sorted(result["steps"][3]["planned"][i]["name"] for i in range(2)) == sorted(orphans)
    assert result["steps"][3]["removed"] == [orphans[1]]
    assert _exists(api, "volume", orphans[0]) and not _exists(api, "volume", orphans[1])
    assert len(result["errors"]) == 1 and result["errors"][0].startswith("volume %s: " % orphans[0])
    assert "in use" in result["errors"][0]


# --- an engine whose data root cannot be measured from here --------------------------------

@pytest.mark.parametrize("version", ENGINES)
def test_a_remote_engine_says_what_it_could_not_measure(isolated_engine_factory, version):
    """Through TCP the data root is not visible: usage is null, target_percent is ignored
    with a warning, planned volumes are reported as unsized, and reclaimed bytes are the
    engine's and the plan's figures (the images it removed, sized by their layers)."""
    engine = isolated_engine_factory("remote", version=version, tcp=True)
    image = build_busybox_image(engine, "old:1", filler_bytes=300 * 1024)
    engine.docker_cli("run", "--name", "gone", "-v", "/scratch", "old:1", "true")
    engine.docker_cli("rm", "gone")  # its anonymous volume stays behind
    args = {"until": "0s", "builder_cache": False, "volumes": "anonymous",
            "target_percent": 50, "docker_host": engine.tcp_host}
    check = dc.run_docker_cleanup(args, check_mode=True)
    result = dc.run_docker_cleanup(args)
    for run in (check, result):
        assert run["data_root_measured"] is False and run["usage_before_percent"] is None
        assert run["target_reached"] is None
        assert any(w.startswith("target_percent ignored") for w in run["warnings"])
        assert any(w.startswith("size of 1 planned volume(s) unknown") for w in run["warnings"])
    assert result["steps"][2]["removed"] == [image] and len(result["steps"][3]["removed"]) == 1
    assert 300 * 1024 < result["steps"][2]["reclaimed_bytes"] == check["steps"][2]["estimated_bytes"]

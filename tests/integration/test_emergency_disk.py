# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/emergency-disk.yml end to end, on a Docker data root that is really full.

An isolated engine keeps its data root on a 160 MiB tmpfs. It gets a running container,
a named volume with a file in it (no container uses it: Docker 20.10's own
``volume prune`` would delete it), build cache (BuildKit builds whose images were
removed) and unused images, until the tmpfs is past the critical 85%. The playbook runs
against localhost with the engine's socket; first in --check (nothing may change), then
for real (usage ends below the 70% target, the running container's image and the named
volume survive, the summary's byte counts match the drop measured here), then again
(healthy: nothing to do, nothing changed).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time

import pytest

from images import build_busybox_image
from tmpfs import mounted_tmpfs

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(REPO, "tests", "fakes"))
from fake_telegram import FakeTelegram  # noqa: E402
from host_layout import install_host_cli  # noqa: E402

PLAYBOOK = os.path.join(REPO, "playbooks", "emergency-disk.yml")
ANSIBLE_PLAYBOOK = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
MIB = 1024 * 1024
DAY = 86400


def fs_used(path):
    """(used_bytes, percent) as df shows them: used * 100 / (used + avail), rounded up."""
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    return used, -(-used * 100 // (used + avail))


def run_emergency(engine, extra_vars, check=False):
    """Run the playbook against localhost; returns (returncode, summary, json output)."""
    env = dict(os.environ)
    env.update(engine.env)
    env.update({"ANSIBLE_STDOUT_CALLBACK": "ansible.posix.json",
                "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
                "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, ".collections")})
    argv = [ANSIBLE_PLAYBOOK, PLAYBOOK, "-e", json.dumps(extra_vars)]
    if check:
        argv.append("--check")
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("ansible-playbook did not print JSON (rc %d):\n%s\n%s"
                    % (proc.returncode, proc.stdout[-4000:], proc.stderr[-4000:]))
    summary = None
    for play in out["plays"]:
        for task in play["tasks"]:
            result = task["hosts"].get("localhost", {})
            facts = result.get("ansible_facts") or {}
            if "emergency_disk_summary" in facts:
                summary = facts["emergency_disk_summary"]
    return proc.returncode, summary, out


def changed_tasks(out):
    return [task["task"]["name"] for play in out["plays"] for task in play["tasks"]
            if task["hosts"].get("localhost", {}).get("changed")]


def printed_table(out):
    for play in out["plays"]:
        for task in play["tasks"]:
            if task["task"]["name"] == "Print the summary":
                return task["hosts"]["localhost"]["msg"]
    return []


@pytest.fixture
def full_engine(isolated_engine_factory, tmp_path):
    """An engine whose 160 MiB data root is at 86% or more; returns (engine, facts)."""
    engine = isolated_engine_factory("emergency", data_root_size="160m")
    client = engine.client()
    root = engine.data_root
    facts = {}
    facts["app_image"] = build_busybox_image(engine, "shop/app:live", filler_bytes=2 * MIB)
    app = client.containers.run("shop/app:live", name="app", detach=True)
    facts["app_container"] = app.id
    client.volumes.create("shop_media")
    client.containers.run("shop/app:live", ["sh", "-c", "echo photo-1 > /media/keep.txt; "
                                            "dd if=/dev/urandom of=/media/blob bs=1024 count=512"],
                          volumes={"shop_media": {"bind": "/media", "mode": "rw"}}, remove=True)
    # build cache: BuildKit builds whose images are removed again leave only cache records
    # (about 2.5x the filler: the context snapshot and the layer), ~13% of the tmpfs, so
    # the build-cache step alone does not reach the target and the images step runs too
    build_busybox_image(engine, "cache/1:tmp", buildkit=True, filler_bytes=8 * MIB)
    engine.docker_cli("rmi", "cache/1:tmp")
    facts["build_cache_bytes"] = sum(r.get("Size") or 0 for r in engine.api().df()["BuildCache"] or [])
    assert facts["build_cache_bytes"] >= 16 * MIB, engine.api().df()["BuildCache"]
    # unused images until the tmpfs is past the critical threshold
    facts["old_images"] = []
    n = 0
    while fs_used(root)[1] < 87:
        st = os.statvfs(root)
        room = st.f_bavail * st.f_frsize
        # a build needs well over twice its filler while it copies the context
        size = 8 * MIB if room > 40 * MIB else room // 5
        facts["old_images"].append(build_busybox_image(engine, "shop/app:old%d" % n,
                                                       filler_bytes=size))
        n += 1
        assert n < 20, "could not fill the data root (%d%% used)" % fs_used(root)[1]
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "app.log").write_text("current\n")
    facts["log_dir"] = str(logs)
    client.close()
    return engine, facts


def test_emergency_disk_frees_below_target_and_keeps_what_is_used(full_engine):
    engine, facts = full_engine
    root = engine.data_root
    extra = {"emergency_disk_path": root,
             "emergency_disk_docker_host": engine.host,
             "emergency_disk_until": "0s",  # the images were built seconds ago
             "emergency_disk_log_dir": facts["log_dir"],
             "emergency_disk_journal_vacuum": False,  # never this machine's journal
             "emergency_disk_telegram": False}
    used_before, percent_before = fs_used(root)
    assert percent_before >= 85

    # --check: every step previewed, nothing removed
    images_before = sorted(i.id for i in engine.client().images.list(all=True))
    rc, summary, out = run_emergency(engine, extra, check=True)
    assert rc == 0, printed_table(out)
    assert summary["active"] and summary["check_mode"]
    assert summary["before_percent"] == percent_before
    assert summary["after_percent"] < 70
    assert summary["steps"][0]["estimated_bytes"] > 0
    assert sorted(i.id for i in engine.client().images.list(all=True)) == images_before
    assert abs(fs_used(root)[0] - used_before) < MIB
    # check mode reports changed for what it would remove: the cleanup steps, nothing else
    assert all(name.startswith(("Step | remove", "Logs | remove", "Logs | vacuum"))
               for name in changed_tasks(out))

    # for real
    used_before, percent_before = fs_used(root)
    rc, summary, out = run_emergency(engine, extra)
    table = printed_table(out)
    print("\n".join(table))
    assert rc == 0, table
    used_after, percent_after = fs_used(root)
    assert percent_after < 70, table
    assert summary["before_percent"] == percent_before
    assert summary["after_percent"] == percent_after
    assert not summary["escalate"]

    steps = {s["id"]: s for s in summary["steps"]}
    assert steps["build_cache"]["ran"] and steps["images"]["ran"]
    assert not steps["containers_volumes"]["ran"], "stops once below the target"
    assert not steps["logs"]["ran"]
    drop = used_before - used_after
    assert drop > 0
    assert summary["freed_bytes"] == pytest.approx(drop, rel=0.05)
    assert sum(s["freed_bytes"] or 0 for s in summary["steps"]) == pytest.approx(drop, rel=0.05)
    # what Docker says it reclaimed agrees with what the filesystem got back
    assert summary["estimated_bytes"] == pytest.approx(drop, rel=0.05)
    assert not engine.api().df()["BuildCache"]

    client = engine.client()
    app = client.containers.get("app")
    assert app.status == "running"
    assert app.image.id == facts["app_image"]
    assert client.volumes.get("shop_media")
    kept = client.containers.run("shop/app:live", ["cat", "/media/keep.txt"],
                                 volumes={"shop_media": {"bind": "/media", "mode": "ro"}},
                                 remove=True)
    assert kept == b"photo-1\n"
    remaining = {i.id for i in client.images.list(all=True)}
    assert not remaining & set(facts["old_images"])
    assert any(d["path"] == root for d in summary["largest"])

    # now healthy: reports, changes nothing
    rc, summary, out = run_emergency(engine, extra)
    assert rc == 0
    assert not summary["active"]
    assert changed_tasks(out) == []
    assert "nothing to do" in printed_table(out)[-1]


def test_a_forced_preview_shows_every_step_and_a_forced_run_still_stops_at_the_target(
        isolated_engine_factory, tmp_path):
    """``-e emergency_disk_force=true`` on a host far below the target (an unused image on a
    quiet engine, an old rotated log on another filesystem). With ``--check``: every step
    previewed with what it would free, in IEC units, each marked as one a real run would not
    reach, the log's bytes shown but not counted for the engine's disk. For real: the
    procedure stops at the target, so the image and the log stay."""
    engine = isolated_engine_factory("emergency-forced", data_root_size="160m")
    old = build_busybox_image(engine, "shop/app:old", filler_bytes=3 * MIB)
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "app.log.1").write_bytes(b"x" * 300 * 1024)
    os.utime(logs / "app.log.1", (0, 0))
    assert fs_used(engine.data_root)[1] < 70
    extra = {"emergency_disk_path": engine.data_root, "emergency_disk_docker_host": engine.host,
             "emergency_disk_force": True, "emergency_disk_until": "0s",
             "emergency_disk_log_dir": str(logs), "emergency_disk_journal_vacuum": False,
             "emergency_disk_telegram": False}
    rc, summary, out = run_emergency(engine, extra, check=True)
    table = printed_table(out)
    print("\n".join(table))
    assert rc == 0, table
    assert summary["forced"] and summary["preview_all"]
    steps = {s["id"]: s for s in summary["steps"]}
    assert all(step["ran"] and step["note"].endswith("; a real run stops before this step (below the target)")
               for step in steps.values()), table
    assert steps["images"]["estimated_bytes"] >= 3 * MIB, table
    assert steps["logs"]["estimated_bytes"] == 300 * 1024, table
    assert "; on %s, not counted for %s" % (mount_of(str(logs)), engine.data_root) in steps["logs"]["note"]
    assert summary["after_used_bytes"] == summary["before_used_bytes"] - steps["images"]["estimated_bytes"], table
    assert steps["logs"]["note"].startswith("1 old log file, 0 archived journal files (journal vacuum off)")
    assert "MiB" in [line for line in table if line.startswith("Docker images unused")][0], table
    assert [line for line in table if line.startswith("would free ")][0].endswith("MiB"), table

    rc, summary, out = run_emergency(engine, extra)
    assert rc == 0, printed_table(out)
    assert not any(step["ran"] for step in summary["steps"]), printed_table(out)
    assert old in [image.id for image in engine.client().images.list(all=True)]
    assert (logs / "app.log.1").exists()


def mount_of(path):
    """The mount point holding ``path`` (as df prints it)."""
    path = os.path.realpath(path)
    while not os.path.ismount(path):
        path = os.path.dirname(path)
    return path


def test_emergency_keeps_a_database_that_just_crashed_and_says_so(isolated_engine_factory, tmp_path):
    """db-1 was created ten days ago and killed (exit 137) just before the emergency;
    old-job stopped ten days ago. Every step runs (forced, target 1%: db-1 alone holds
    more): old-job goes, its volume stays for this run, db-1 and its data stay, and the
    summary says what it kept and why."""
    until = "48h"  # emergency_disk_containers_until: longer than the 24 h floor after a crash
    engine = isolated_engine_factory("emergency-crash", data_root_size="160m")
    api = engine.api()
    build_busybox_image(engine, "shop/db:1", filler_bytes=MIB)
    engine.docker_cli("run", "--name", "old-job", "-v", "/out", "shop/db:1", "sh", "-c",
                      "echo done > /out/result")
    engine.docker_cli("run", "-d", "--name", "db-1", "-v", "/var/lib/db", "shop/db:1", "sh", "-c",
                      "echo row-1 > /var/lib/db/table; exec sleep 3600")
    volumes = dict((name, [m["Name"] for m in api.inspect_container(name)["Mounts"]][0])
                   for name in ("old-job", "db-1"))
    logs = tmp_path / "log"
    logs.mkdir()
    engine.backdate_containers({"old-job": 10 * DAY, "db-1": 10 * DAY})
    api = engine.api()
    engine.docker_cli("start", "db-1")
    time.sleep(1)
    engine.docker_cli("kill", "db-1")
    assert api.wait("db-1", timeout=30)["StatusCode"] == 137

    rc, summary, out = run_emergency(engine, {
        "emergency_disk_path": engine.data_root, "emergency_disk_docker_host": engine.host,
        "emergency_disk_containers_until": until, "emergency_disk_until": "0s",
        "emergency_disk_state_dir": str(tmp_path / "state"), "emergency_disk_force": True,
        "emergency_disk_target_percent": 1, "emergency_disk_log_dir": str(logs),
        "emergency_disk_journal_vacuum": False, "emergency_disk_telegram": False})
    table = printed_table(out)
    print("\n".join(table))
    assert rc == 0, table
    steps = {s["id"]: s for s in summary["steps"]}
    assert steps["containers_volumes"]["ran"], table
    assert api.inspect_container("db-1")["State"]["ExitCode"] == 137
    for name, content in (("db-1", "row-1"), ("old-job", "done")):
        path = "table" if name == "db-1" else "result"
        assert engine.docker_cli("run", "--rm", "-v", "%s:/v:ro" % volumes[name], "shop/db:1",
                                 "cat", "/v/" + path).stdout == content + "\n"
    assert "old-job" not in [c["Names"][0].lstrip("/") for c in api.containers(all=True)]
    kept_lines = [line for line in table if line.startswith("kept ")]
    assert len(kept_lines) == 2, table
    assert kept_lines[0].startswith("kept 1 stopped container: db-1 exited ")
    assert kept_lines[0].endswith(" ago (exit 137), younger than %s" % until)
    assert kept_lines[1] == ("kept 1 volume: %s… data of old-job, which this run removes; "
                             "a later run may remove it" % volumes["old-job"][:12])


def run_playbook(args):
    """``ansible-playbook emergency-disk.yml ARGS`` against localhost, no engine; returns
    (returncode, json output, stderr)."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json",
               ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"))
    proc = subprocess.run([ANSIBLE_PLAYBOOK, PLAYBOOK] + args, cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600, check=False)
    return proc.returncode, json.loads(proc.stdout), proc.stderr


def task_results(out):
    """[(task name, localhost result)] in the order they ran."""
    return [(task["task"]["name"], task["hosts"]["localhost"]) for play in out["plays"]
            for task in play["tasks"] if "localhost" in task["hosts"]]


@pytest.fixture
def small_fs(tmp_path):
    """An empty 4 MiB tmpfs (usage 0%): a host far below any threshold."""
    with mounted_tmpfs(tmp_path / "fs", "size=4m") as path:
        yield str(path)


QUIET = ["-e", "emergency_disk_telegram=false", "-e", "emergency_disk_journal_vacuum=false"]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_a_bad_setting_is_refused_before_the_first_step(small_fs, tmp_path):
    """``-e emergency_disk_until=7d`` (Go has no days) and a ``containers_until`` past Go's
    range: the host fails in the settings check, with one line per value naming the
    variable, its value and the rule (the forms accepted), no traceback, and no step -
    not even the first measurement - runs; the log directory is untouched."""
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "old.log.1").write_text("rotated\n")
    os.utime(logs / "old.log.1", (0, 0))
    rc, out, err = run_playbook(QUIET + [
        "-e", "emergency_disk_path=" + small_fs, "-e", "emergency_disk_force=true",
        "-e", "emergency_disk_log_dir=%s" % logs, "-e", "emergency_disk_until=7d",
        "-e", "emergency_disk_containers_until=3000000h"])
    ran = task_results(out)
    assert rc != 0 and "Traceback" not in err
    assert ran[-1][0] == "Stop on a bad setting, before the first step" and ran[-1][1]["failed"]
    lines = ran[-1][1]["msg"].split("; emergency_disk_")
    assert lines[0] == ("emergency_disk_until: '7d' is not a duration; use a Go duration, numbers with a "
                        "unit h, m, s, ms, us or ns (168h, 24h, 1h30m, 90m, 0s); no days in Go: 7d is 168h")
    assert lines[1].startswith("containers_until: '3000000h' is longer than Docker accepts")
    assert len(lines) == 2 and "\n" not in ran[-1][1]["msg"]
    assert not any(name.startswith(("Measure", "Step", "Run the steps")) for name, _result in ran), ran
    assert (logs / "old.log.1").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_a_percent_written_with_a_percent_sign_is_read_as_that_number(small_fs):
    """``emergency_disk_crit_percent: "85%"`` (as people write it) is 85, never ``(0)``:
    the summary says the disk is below the critical 85%."""
    rc, out, _err = run_playbook(QUIET + ["-e", json.dumps({
        "emergency_disk_path": small_fs, "emergency_disk_crit_percent": "85%",
        "emergency_disk_target_percent": "70 %"})])
    summary = [r for name, r in task_results(out) if name == "Print the summary"][0]["msg"]
    assert rc == 0, summary
    assert "usage 0% is below the critical 85%: nothing to do" in summary, summary


ALERT_TOKEN = "555:AAEmergency_secret_0123456789abcdefGH"


def alerting_host(host, fake):
    """The host's ``runbook-ops`` (as the base role installs it) sending to ``fake``; returns
    the command the playbook's ``__ed_runbook_ops_cli`` names."""
    host.mkdir()
    install_host_cli(host)
    (host / "telegram.token").write_text(ALERT_TOKEN)
    (host / "telegram.token").chmod(0o600)
    (host / "runtime.json").write_text(json.dumps({
        "host_label": "web1", "state_dir": str(host / "state"), "log_dir": str(host / "log"),
        "lock_dir": str(host / "lock"), "fallback_state_dir": str(host / "fallback"),
        "alert": {"telegram_api_url": fake.url, "telegram_chat_id": "42",
                  "telegram_token_file": str(host / "telegram.token")}}))
    cli = host / "runbook-ops-here"
    cli.write_text('#!/bin/sh\nexec %s --runtime %s "$@"\n' % (host / "runbook-ops", host / "runtime.json"))
    cli.chmod(0o755)
    return cli


def test_a_failed_step_ends_red_after_a_critical_alert_that_names_it(tmp_path):
    """The Docker engine does not answer (a socket nobody listens on, as after dockerd died
    on a full disk). The logs step still runs, the summary and the alert - through the real
    ``runbook-ops alert`` to a fake Telegram on loopback - go out, the alert is critical and
    names the failed step, and only then the host fails."""
    logs = tmp_path / "log"
    logs.mkdir()
    (logs / "old.log.1").write_text("rotated\n")
    os.utime(logs / "old.log.1", (0, 0))
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(tmp_path / "docker.sock"))
    sock.close()
    with FakeTelegram(ALERT_TOKEN) as fake:
        cli = alerting_host(tmp_path / "host", fake)
        rc, out, err = run_playbook(["-e", json.dumps({
            "emergency_disk_path": str(tmp_path), "emergency_disk_force": True,
            "emergency_disk_docker_host": "unix://%s" % (tmp_path / "docker.sock"),
            "emergency_disk_log_dir": str(logs), "emergency_disk_journal_vacuum": False,
            "emergency_disk_target_percent": 1, "emergency_disk_crit_percent": 99,
            "emergency_disk_escalate_percent": 99, "__ed_runbook_ops_cli": str(cli)})])
        sent = list(fake.requests)
    ran = task_results(out)
    names = [name for name, _result in ran]
    assert rc != 0 and "Traceback" not in err
    assert names[-1].startswith("Fail the hosts where a step failed") and ran[-1][1]["failed"]
    assert names.index("Send the summary (the token stays in /etc/runbook-ops/telegram.token)") < len(names) - 1
    assert not (logs / "old.log.1").exists(), "the logs step must still run"
    assert "emergency step(s) failed: Docker build cache" in ran[-1][1]["msg"], ran[-1][1]["msg"]
    assert "failed: cannot reach the Docker daemon" in ran[-1][1]["msg"]
    texts = [r["text"] for r in sent if "text" in r]
    assert len(texts) == 1, sent
    assert "CRITICAL" in texts[0] and "FAILED: Docker build cache" in texts[0], texts[0]
    assert "failed: cannot reach the Docker daemon" in texts[0]


def test_a_procedure_that_stops_before_its_summary_alerts_critical_and_ends_red(tmp_path):
    """The module fails (here: the path is gone from the host, which the settings check on
    the controller cannot see): steps may already have removed data and there is no summary,
    so the host still sends a critical alert saying so, and the recap is red."""
    with FakeTelegram(ALERT_TOKEN) as fake:
        cli = alerting_host(tmp_path / "host", fake)
        rc, out, err = run_playbook(["-e", json.dumps({
            "emergency_disk_path": str(tmp_path / "gone"), "emergency_disk_force": True,
            "emergency_disk_journal_vacuum": False, "__ed_runbook_ops_cli": str(cli)})])
        texts = [r["text"] for r in fake.requests if "text" in r]
    ran = task_results(out)
    assert rc != 0 and "Traceback" not in err
    assert ran[-1][0] == "Fail the host (the procedure stopped before its summary)" and ran[-1][1]["failed"]
    assert len(texts) == 1 and "CRITICAL" in texts[0], texts
    assert "the emergency disk procedure stopped before its summary" in texts[0]
    assert str(tmp_path / "gone") in texts[0]


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_a_logs_step_that_fails_is_reported_and_turns_the_recap_red(tmp_path):
    """The rotated log lies on a file system that went read-only (as ext4 does on
    errors): the logs step cannot remove it; the Docker engine the settings name has no
    socket (dockerd gone). The failure is recorded as the step's note,
    the summary is printed with a FAILED line, and the host fails at the end - not
    mid-way with a raw task error and no summary."""
    with mounted_tmpfs(tmp_path / "ro-log") as logs:
        (logs / "old.log.1").write_text("rotated\n")
        os.utime(logs / "old.log.1", (0, 0))
        subprocess.run(["mount", "-o", "remount,ro", str(logs)], check=True)
        rc, out, err = run_playbook(QUIET + ["-e", json.dumps({
            "emergency_disk_path": str(tmp_path), "emergency_disk_force": True,
            "emergency_disk_docker_host": "unix://%s" % (tmp_path / "no-engine.sock"),
            "emergency_disk_log_dir": str(logs), "emergency_disk_target_percent": 1,
            "emergency_disk_crit_percent": 99, "emergency_disk_escalate_percent": 99})])
        assert (logs / "old.log.1").exists()
    ran = task_results(out)
    summary = [r for name, r in ran if name == "Print the summary"][0]["msg"]
    assert rc != 0 and "Traceback" not in err
    assert any(line.startswith("FAILED: Docker build cache: failed: no Docker engine at ")
               and "; Journal and rotated logs: failed: " in line for line in summary), summary
    assert ran[-1][0].startswith("Fail the hosts where a step failed") and ran[-1][1]["failed"]
    # the engine the settings name has no socket: a failed step too, not "no Docker here"
    assert "2 emergency step(s) failed: Docker build cache: failed: no Docker engine at unix://" in ran[-1][1]["msg"]
    assert "; Journal and rotated logs: failed: " in ran[-1][1]["msg"], ran[-1][1]["msg"]
    notes = [line for line in summary if line.startswith(("Docker images", "Containers stopped"))]
    assert len(notes) == 2 and all("skipped: the Docker engine failed in Docker build cache" in n
                                   for n in notes), summary

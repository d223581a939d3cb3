# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""emergency.run_emergency_disk: the emergency procedure on real small filesystems.

Each test mounts a tmpfs of known size, fills it, and runs the procedure with a Docker
engine that is not there (a socket path nobody made, or a socket nobody listens on, as
after dockerd died on a full disk): the Docker steps fail or are skipped by the rules, the
logs step removes real files. The Docker steps on real engines are the integration tests'
(tests/integration/test_emergency_disk.py).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys

import jinja2
import pytest
from hypothesis import given
from hypothesis import strategies as st

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import emergency  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402

KIB = 1024
OLD = 946684800  # 2000-01-01


def write(path, size, mtime=None):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x" * size)
    if mtime is not None:
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return path


def used(path):
    st = os.statvfs(path)
    used_bytes = (st.f_blocks - st.f_bfree) * st.f_frsize
    return used_bytes, -(-used_bytes * 100 // (used_bytes + st.f_bavail * st.f_frsize))


@pytest.fixture
def disk(tmpfs):
    """A 1 MiB tmpfs with 600 KiB of old rotated logs, a young one, a hidden one and a
    link to an old one under log/, a current log, and an engine address with no socket."""
    root = tmpfs("disk", "size=1m")
    log = root / "log"
    write(log / "app.log.1", 300 * KIB, OLD)
    write(log / "nginx" / "access.log.2.gz", 300 * KIB, OLD)
    write(log / "young.log.1", 8 * KIB)
    write(log / ".hidden.log.1", 8 * KIB, OLD)
    write(log / "app.log", 8 * KIB, OLD)
    os.symlink("app.log.1", str(log / "link.old"))
    return root


def settings(root, **extra):
    base = {"path": str(root), "log_dir": str(root / "log"), "journal_vacuum": False,
            "docker_host": "unix://%s" % (root / "no-engine.sock"), "target_percent": 20,
            "crit_percent": 50, "escalate_percent": 30, "state_dir": str(root / "state")}
    base.update(extra)
    return base


def test_a_host_below_critical_is_only_measured(disk):
    before = used(str(disk))
    result = emergency.run_emergency_disk(settings(disk, crit_percent=99, escalate_percent=99),
                                          host_label="web1")
    summary = result["summary"]
    assert not result["changed"] and not summary["active"]
    assert summary["before_percent"] == summary["after_percent"] == before[1]
    assert summary["host"] == "web1" and summary["steps"] == [] and summary["media_gate"] is None
    assert (disk / "log" / "app.log.1").exists()


def test_a_bad_setting_is_refused_before_anything_changes(disk):
    with pytest.raises(OpsError) as caught:
        emergency.run_emergency_disk(settings(disk, until="7d", force=True, crit_percent=1))
    assert caught.value.message.startswith("emergency_disk_until: '7d' is not a duration")
    assert len(caught.value.message.split("; emergency_disk_")) == 2  # and crit 1 is not above target 20
    assert (disk / "log" / "app.log.1").exists()


def test_a_configured_engine_without_socket_fails_its_step_and_the_logs_still_go(disk):
    """dockerd gone: build cache is a failed step, the later Docker steps are skipped with
    a note, the old rotated logs go (the young, hidden, current and linked ones stay), and
    the usage is measured after every step."""
    used_before, percent_before = used(str(disk))
    result = emergency.run_emergency_disk(settings(disk))
    summary = result["summary"]
    steps = dict((s["id"], s) for s in summary["steps"])
    assert steps["build_cache"]["ran"] and steps["build_cache"]["failed"]
    assert steps["build_cache"]["note"] == (
        "failed: no Docker engine at unix://%s (emergency_disk_docker_host): no socket there"
        % (disk / "no-engine.sock"))
    for step_id in ("images", "containers_volumes"):
        assert not steps[step_id]["ran"] and not steps[step_id]["failed"]
        assert steps[step_id]["note"] == "skipped: the Docker engine failed in Docker build cache"
    logs = steps["logs"]
    assert logs["ran"] and not logs["failed"]
    assert logs["note"] == "2 old log files, 0 archived journal files (journal vacuum off)"
    assert logs["estimated_bytes"] == 600 * KIB
    remaining = sorted(p.name for p in (disk / "log").rglob("*"))
    assert remaining == [".hidden.log.1", "app.log", "link.old", "nginx", "young.log.1"]
    used_after, percent_after = used(str(disk))
    assert summary["before_percent"] == percent_before and summary["after_percent"] == percent_after
    assert summary["freed_bytes"] == used_before - used_after == logs["freed_bytes"]
    assert summary["failed_steps"] == ["Docker build cache: " + steps["build_cache"]["note"]]
    assert result["changed"] and summary["escalate"] == (percent_after > 30)


def test_an_engine_that_does_not_answer_is_a_failed_step_with_its_message(disk):
    """A socket nobody listens on: docker_cleanup's own "cannot reach" line is the note."""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(disk / "docker.sock"))
    sock.close()
    summary = emergency.run_emergency_disk(settings(
        disk, docker_host="unix://%s" % (disk / "docker.sock")), check_mode=True)["summary"]
    first = summary["steps"][0]
    assert first["failed"] and first["note"].startswith("failed: cannot reach the Docker daemon")
    assert len(first["note"]) <= len("failed: ") + 200
    assert summary["steps"][1]["note"] == "skipped: the Docker engine failed in Docker build cache"


def test_check_mode_removes_nothing_and_projects_the_usage_from_the_estimates(disk):
    used_before, percent_before = used(str(disk))
    result = emergency.run_emergency_disk(settings(disk), check_mode=True)
    summary = result["summary"]
    assert result["changed"] and summary["check_mode"] and summary["freed_bytes"] is None
    assert (disk / "log" / "app.log.1").exists() and (disk / "log" / "nginx" / "access.log.2.gz").exists()
    assert used(str(disk))[0] == used_before
    logs = summary["steps"][-1]
    assert logs["estimated_bytes"] == 600 * KIB and logs["freed_bytes"] is None
    projected = used_before - 600 * KIB
    assert summary["after_used_bytes"] == projected
    assert summary["after_percent"] == -(-projected * 100 // summary["total_bytes"])
    assert summary["before_percent"] == percent_before


def test_a_real_run_stops_once_below_the_target(disk):
    """Target 90%: usage is below it from the start (forced), so nothing runs and nothing goes."""
    summary = emergency.run_emergency_disk(settings(disk, force=True, target_percent=90,
                                                    crit_percent=95, escalate_percent=95))["summary"]
    assert summary["forced"] and not summary["preview_all"]
    assert not any(s["ran"] for s in summary["steps"])
    assert all(s["note"].startswith("skipped: usage ") for s in summary["steps"])
    assert (disk / "log" / "app.log.1").exists()


def test_a_forced_preview_previews_every_step_and_marks_those_a_real_run_would_not_reach(disk):
    summary = emergency.run_emergency_disk(settings(disk, force=True, target_percent=90,
                                                    crit_percent=95, escalate_percent=95),
                                           check_mode=True)["summary"]
    assert summary["preview_all"]
    assert all(s["note"].endswith("; a real run stops before this step (below the target)")
               for s in summary["steps"])
    assert summary["steps"][-1]["ran"] and summary["steps"][-1]["estimated_bytes"] == 600 * KIB
    assert (disk / "log" / "app.log.1").exists()


def test_logs_on_another_filesystem_are_shown_but_not_counted_in_check_mode(disk, tmpfs):
    other = tmpfs("other", "size=1m")
    write(other / "old.log.1", 100 * KIB, OLD)
    summary = emergency.run_emergency_disk(settings(disk, log_dir=str(other)), check_mode=True)["summary"]
    logs = summary["steps"][-1]
    assert logs["estimated_bytes"] == 100 * KIB
    assert logs["note"].endswith("; on %s, not counted for %s" % (other, disk))
    assert summary["after_used_bytes"] == summary["before_used_bytes"]


def test_a_log_that_cannot_be_removed_fails_the_step_and_the_others_still_go(disk, tmpfs):
    readonly = tmpfs("disk/log/ro", "size=64k")
    write(readonly / "stuck.log.1", 4 * KIB, OLD)
    subprocess.run(["mount", "-o", "remount,ro", str(readonly)], check=True)
    summary = emergency.run_emergency_disk(settings(disk))["summary"]
    logs = summary["steps"][-1]
    assert logs["failed"] and logs["ran"]
    assert logs["note"] == ("failed: could not remove 1 of 3 old log files: %s: Read-only file system"
                            % (readonly / "stuck.log.1"))
    assert not (disk / "log" / "app.log.1").exists()
    assert summary["failed_steps"][-1] == "Journal and rotated logs: " + logs["note"]


def test_a_file_name_that_is_not_utf8_never_costs_the_summary_of_what_was_removed(disk, tmpfs):
    """The controller refuses a module result that is not valid UTF-8 (whole, summary
    included): a stuck rotated log named in Latin-1 must come back escaped, while the
    other old logs are gone."""
    readonly = tmpfs("disk/log/ro", "size=64k")
    stuck = os.path.join(os.fsencode(str(readonly)), b"caf\xe9.log.1")
    with open(stuck, "wb") as handle:
        handle.write(b"x" * 4 * KIB)
    os.utime(stuck, (OLD, OLD))
    subprocess.run(["mount", "-o", "remount,ro", str(readonly)], check=True)
    result = emergency.run_emergency_disk(settings(disk))
    json.dumps(result, ensure_ascii=False).encode("utf-8")  # strict: no surrogate left
    logs = result["summary"]["steps"][-1]
    assert logs["failed"] and "caf\\xe9.log.1: Read-only file system" in logs["note"]
    assert not (disk / "log" / "app.log.1").exists()


def test_the_largest_directories_stop_two_levels_below_each_root_and_the_media_gate_answers(disk):
    write(disk / "media" / "a" / "b" / "c" / "photo.jpg", 200 * KIB)
    summary = emergency.run_emergency_disk(settings(
        disk, media_path=str(disk / "media"), media_size_limit="100kB", largest_count=2),
        check_mode=True)["summary"]
    assert [d["path"] for d in summary["largest"]] == [str(disk / "log"), str(disk / "log" / "nginx")]
    summary = emergency.run_emergency_disk(settings(
        disk, media_path=str(disk / "media"), media_size_limit="100kB", largest_count=10),
        check_mode=True)["summary"]
    paths = [d["path"] for d in summary["largest"]]
    assert str(disk / "media") in paths and str(disk / "media" / "a" / "b") in paths
    assert str(disk / "media" / "a" / "b" / "c") not in paths
    assert all(p.startswith((str(disk / "media"), str(disk / "log"))) for p in paths)
    assert summary["media_gate"]["activate"] and summary["media_gate"]["media_bytes"] >= 200 * KIB
    assert summary["media_gate"]["fired"] and summary["media_gate"]["dry_run_command"] == ""
    assert summary["largest_partial"] is False


@pytest.mark.parametrize("docker_host,exists,expected", [
    ("", True, "present"), ("", False, "absent"), ("unix:///run/d.sock", True, "present"),
    ("unix:///run/d.sock", False, "configured_missing"), ("tcp://10.0.0.2:2376", False, "present"),
    ("ssh://deploy@web1", False, "present"), ("/run/docker.sock", False, "configured_missing"),
], ids=["default-socket", "no-docker", "unix", "unix-gone", "tcp", "ssh", "bare-path"])
def test_engine_presence(docker_host, exists, expected):
    asked = []

    def socket_exists(path):
        asked.append(path)
        return exists

    assert emergency.engine_presence(docker_host, socket_exists) == expected
    if expected != "present" or not docker_host.startswith(("tcp", "ssh")):
        assert asked == ["/run/d.sock" if docker_host.startswith("unix") else "/var/run/docker.sock"]


@given(st.text(alphabet=st.sampled_from("ab :/."), max_size=260), st.integers(3, 220))
def test_shorten_cuts_as_jinjas_truncate(text, length):
    environment = jinja2.Environment()
    expected = environment.from_string("{{ t | truncate(%d) }}" % length).render(t=text)
    assert emergency.shorten(text, length) == expected


def test_find_old_files_lists_what_ansible_find_lists(tmp_path):
    write(tmp_path / "a.gz", 10, OLD)
    write(tmp_path / ".b.gz", 10, OLD)
    write(tmp_path / ".dir" / "c.1", 10, OLD)
    write(tmp_path / "d.log", 10, OLD)
    write(tmp_path / "e.old", 10)
    os.symlink("a.gz", str(tmp_path / "f.old"))
    found = emergency.find_old_files([str(tmp_path), str(tmp_path / "missing")],
                                     emergency.LOG_PATTERNS, 86400)
    assert sorted(os.path.relpath(f["path"], str(tmp_path)) for f in found) == [".dir/c.1", "a.gz"]
    assert all(f["size"] == 10 for f in found)

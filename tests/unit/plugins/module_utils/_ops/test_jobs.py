# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""jobs.py: the cron wrapper with real subprocesses, real locks and the fake Bot API."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))
sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))

from fake_telegram import FakeTelegram  # noqa: E402
from host_layout import install_host_cli  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import jobs  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    merge_runtime)

TOKEN = "987654321:AAJobs_secret_token_0123456789abcdEF"
STAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ ")


@pytest.fixture
def fake(tmp_path):
    with FakeTelegram(TOKEN) as server:
        yield server


@pytest.fixture
def host(tmp_path, fake):
    """A host layout in tmp_path: the CLI as the base role installs it, and runtime.json."""
    launcher = install_host_cli(tmp_path)
    token_file = tmp_path / "telegram.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    data = {"host_label": "web1", "state_dir": str(tmp_path / "state"),
            "log_dir": str(tmp_path / "log"),
            "alert": {"telegram_api_url": fake.url, "telegram_chat_id": "-1001",
                      "telegram_token_file": str(token_file), "cooldown_seconds": 86400},
            "jobs": {"pinged": {"ping_url": fake.url + "/ping/abc-123"},
                     "unpingable": {"ping_url": "http://127.0.0.1:%d/x" % _closed_port()}}}
    runtime_file = tmp_path / "runtime.json"
    runtime_file.write_text(json.dumps(data))

    class Host:
        root = tmp_path
        runtime = merge_runtime(data)

        @staticmethod
        def cli(*args, **kwargs):
            return subprocess.Popen([str(launcher), "--runtime", str(runtime_file)] + list(args),
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                    **kwargs)

        @staticmethod
        def log(name):
            return (tmp_path / "log" / (name + ".log")).read_text()

    return Host


def _closed_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_success_is_logged_with_timestamps_and_recorded_in_state(host, fake):
    record = jobs.run_job(host.runtime, "hello", ["sh", "-c", "echo one; echo two >&2"])
    assert record["rc"] == 0 and record["skipped"] is False
    lines = host.log("hello").splitlines()
    assert all(STAMP.match(line) for line in lines)
    assert [line[21:] for line in lines[1:3]] == ["one", "two"]
    assert "job hello started" in lines[0] and "finished (rc 0" in lines[-1]
    state = json.loads((host.root / "state" / "jobs" / "hello.json").read_text())
    assert set(state) == {"job", "started", "finished", "rc", "seconds", "timed_out"}
    assert state["rc"] == 0
    assert fake.requests == []  # success after success: nothing to say


def test_failure_alerts_once_within_cooldown_then_recovery_once(host, fake):
    for _attempt in range(2):
        record = jobs.run_job(host.runtime, "backup", ["sh", "-c", "echo restic: repo locked; exit 3"])
        assert record["rc"] == 3
    assert len(fake.messages) == 1
    text = fake.messages[0]["text"]
    assert text.startswith("🚨 web1 CRITICAL: job backup failed with exit status 3")
    assert "restic: repo locked" in text
    for _attempt in range(2):
        jobs.run_job(host.runtime, "backup", ["true"])
    assert [m["text"].split()[0] for m in fake.messages] == ["🚨", "✅"]
    assert "not sent: in cooldown" in host.log("backup")


def test_missing_command_fails_with_127_and_alerts(host, fake):
    record = jobs.run_job(host.runtime, "ghost", ["/nonexistent/cmd"])
    assert record["rc"] == 127
    assert "cannot run /nonexistent/cmd" in fake.messages[0]["text"]


def test_timeout_kills_the_whole_process_group(host, fake, tmp_path):
    pidfile = tmp_path / "child.pid"
    started = time.monotonic()
    record = jobs.run_job(host.runtime, "hang",
                          ["sh", "-c", "sleep 60 & echo $! > %s; echo waiting; wait" % pidfile],
                          timeout=1)
    assert time.monotonic() - started < 8
    assert record["rc"] == 124 and record["timed_out"] is True
    child = int(pidfile.read_text())
    time.sleep(0.2)
    assert not os.path.exists("/proc/%d" % child) or \
        open("/proc/%d/stat" % child).read().split()[2] == "Z"
    assert "timed out after 1" in fake.messages[0]["text"]
    assert "waiting" in fake.messages[0]["text"]


def test_dead_man_pings_start_then_success_or_fail(host, fake):
    jobs.run_job(host.runtime, "pinged", ["true"])
    jobs.run_job(host.runtime, "pinged", ["false"])
    assert [r["ping"] for r in fake.requests if "ping" in r] == [
        "abc-123/start", "abc-123", "abc-123/start", "abc-123/fail"]


def test_failed_ping_is_logged_without_url_and_does_not_fail_the_job(host):
    record = jobs.run_job(host.runtime, "unpingable", ["true"])
    assert record["rc"] == 0
    log = host.log("unpingable")
    assert "dead-man ping (start) failed" in log and "dead-man ping (success) failed" in log
    assert "127.0.0.1" not in log


@pytest.mark.parametrize("name", ["", "../etc/passwd", "a b", ".hidden", "x" * 101])
def test_bad_job_names_are_refused(host, name):
    with pytest.raises(OpsError):
        jobs.run_job(host.runtime, name, ["true"])


def test_second_concurrent_run_says_so_and_exits_0_without_running(host):
    script = "echo begin; sleep 2; echo end"
    first = host.cli("run", "--job", "slow", "--", "sh", "-c", script)
    time.sleep(0.7)
    second = host.cli("run", "--job", "slow", "--", "sh", "-c", "echo SECOND")
    out2, err2 = second.communicate(timeout=10)
    first.communicate(timeout=10)
    assert second.returncode == 0
    assert re.fullmatch(r"job slow is already running \(pid \d+\); skipping\n", out2)
    assert "pid %d" % first.pid in out2
    assert first.returncode == 0
    assert "SECOND" not in host.log("slow")


def test_concurrent_runs_with_wait_run_one_after_the_other(host):
    script = "echo begin $(date +%s.%N); sleep 1.5; echo end $(date +%s.%N)"
    procs = [host.cli("run", "--job", "serial", "--wait", "20", "--", "sh", "-c", script)
             for _attempt in range(2)]
    for proc in procs:
        proc.communicate(timeout=30)
        assert proc.returncode == 0
    marks = [(line.split()[1], float(line.split()[2]))
             for line in host.log("serial").splitlines() if line.split()[1] in ("begin", "end")]
    assert [kind for kind, _stamp in marks] == ["begin", "end", "begin", "end"]
    assert marks[1][1] <= marks[2][1]  # the second began after the first ended


def test_cli_run_exit_status_and_json_record(host, fake):
    proc = host.cli("run", "--job", "failing", "--json", "--", "sh", "-c", "exit 5")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 1
    record = json.loads(out)
    assert record["rc"] == 5 and record["alert"]["sent"] is True
    assert TOKEN not in out + err + host.log("failing")

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Review of #16 items 1-4: ways the cron wrapper still goes quiet or harms, on real processes.

Each test states what must hold and fails on b380045.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

sys.path.insert(0, os.path.join(os.path.abspath(os.path.join(
    os.path.dirname(__file__), *[".."] * 5)), "tests", "fakes"))

from fake_telegram import FakeTelegram  # noqa: E402
from host_layout import install_host_cli  # noqa: E402
from waiting import wait_for  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import jobs  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import merge_runtime  # noqa: E402

TOKEN = "987654321:AAReview_secret_token_0123456789abcdEF"
NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.fixture
def fake():
    with FakeTelegram(TOKEN) as server:
        yield server


@pytest.fixture
def sticky():
    """A world-writable sticky directory, as /run/lock is on Debian and Ubuntu (1777)."""
    path = tempfile.mkdtemp(prefix="rbo-review-lock-", dir="/tmp")
    os.chmod(path, 0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _host(tmp_path, fake, lock_dir):
    launcher = install_host_cli(tmp_path)
    token_file = tmp_path / "telegram.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    data = {"host_label": "web1", "state_dir": str(tmp_path / "state"),
            "log_dir": str(tmp_path / "log"), "lock_dir": lock_dir,
            "fallback_state_dir": str(tmp_path / "run" / "state"),
            "alert": {"telegram_api_url": fake.url, "telegram_chat_id": "-1001",
                      "telegram_token_file": str(token_file), "cooldown_seconds": 86400}}
    runtime_file = tmp_path / "runtime.json"
    runtime_file.write_text(json.dumps(data))
    return [str(launcher), "--runtime", str(runtime_file)], merge_runtime(data)


def _as_nobody(*argv, **kwargs):
    return subprocess.Popen(NOBODY + list(argv), **kwargs)


def test_another_user_cannot_silence_a_job_by_holding_its_lock_in_run_lock(
        tmp_path, fake, sticky):
    """/run/lock is 1777: any local user (www-data after an RCE, a deploy user, an
    ``@reboot`` line in their crontab) can create ``runbook-ops/`` there first and hold
    ``health-monitor.lock`` with a note that has no timeout. Every run is then skipped
    with exit 0 and no alert: the health monitor is off, silently, for good."""
    lock_dir = os.path.join(sticky, "runbook-ops")
    argv, _runtime = _host(tmp_path, fake, lock_dir)
    subprocess.run(NOBODY + ["mkdir", lock_dir], check=True)
    lock = os.path.join(lock_dir, "health-monitor.lock")
    subprocess.run(NOBODY + ["sh", "-c", "echo '%s' > %s" % (
        json.dumps({"pid": 1, "started": time.time()}), lock)], check=True)
    holder = _as_nobody("flock", lock, "sleep", "60")
    try:
        assert wait_for(lambda: subprocess.run(
            ["flock", "-n", lock, "true"], check=False).returncode == 1), "nobody holds the lock"
        marker = tmp_path / "ran"
        proc = subprocess.run(argv + ["run", "--job", "health-monitor", "--timeout", "120",
                                      "--", "touch", str(marker)],
                              capture_output=True, text=True, timeout=60, check=False)
    finally:
        holder.kill()
        holder.wait()
    assert marker.exists() or fake.messages, (
        "the job did not run and nobody was told (rc %d, stdout %r)"
        % (proc.returncode, proc.stdout))


def test_root_never_writes_through_a_symlink_planted_in_the_lock_directory(
        tmp_path, fake, sticky):
    """The same foothold: a symlink ``NAME.lock`` -> a root-only file. The wrapper, as
    root, opens it with ``a+``, truncates it and writes its JSON note into it."""
    lock_dir = os.path.join(sticky, "runbook-ops")
    argv, _runtime = _host(tmp_path, fake, lock_dir)
    victim = tmp_path / "precious"  # stands for /etc/shadow, /etc/sudoers, a restic key
    victim.write_text("root:$y$precious-hash:19000:0:99999:7:::\n")
    victim.chmod(0o600)
    subprocess.run(NOBODY + ["mkdir", lock_dir], check=True)
    subprocess.run(NOBODY + ["ln", "-s", str(victim), os.path.join(lock_dir, "backup.lock")],
                   check=True)
    subprocess.run(argv + ["run", "--job", "backup", "--timeout", "60", "--", "true"],
                   capture_output=True, text=True, timeout=60, check=False)
    assert victim.read_text() == "root:$y$precious-hash:19000:0:99999:7:::\n"


def test_a_stuck_holder_alerts_even_when_the_syslog_pipe_is_gone(tmp_path, fake):
    """The cron line is ``... 2>&1 | logger -t runbook-ops``. When logger is not there
    (or exited), the skipped run's "already running" line hits a closed pipe before the
    stuck alert is sent: BrokenPipeError, traceback into the same closed pipe, no alert."""
    lock_dir = str(tmp_path / "lock")
    argv, _runtime = _host(tmp_path, fake, lock_dir)
    os.makedirs(lock_dir)
    lock = os.path.join(lock_dir, "disk-monitor.lock")
    # What a wrapper frozen for hours leaves: a note past its timeout, the flock held.
    note = {"pid": 4242, "started": time.time() - 7200, "timeout": 3600}
    holder = subprocess.Popen(["sh", "-c", "echo '%s' > %s; exec flock %s sleep 60"
                               % (json.dumps(note), lock, lock)])
    try:
        assert wait_for(lambda: subprocess.run(
            ["flock", "-n", lock, "true"], check=False).returncode == 1)
        read_end, write_end = os.pipe()
        os.close(read_end)  # `logger: not found`, or logger gone
        proc = subprocess.run(argv + ["run", "--job", "disk-monitor", "--timeout", "3600",
                                      "--", "true"], stdout=write_end, stderr=write_end,
                              timeout=60, check=False)
        os.close(write_end)
    finally:
        holder.kill()
        holder.wait()
    assert proc.returncode == 1
    assert [m["text"][:39] for m in fake.messages] == [
        "🚨 web1 CRITICAL: job disk-monitor is st"]


def _read_only(dirs, argv):
    mounts = "".join('mount -t tmpfs -o size=1m tmpfs "%s" && mount -o remount,ro "%s" && '
                     % (d, d) for d in dirs)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            mounts + 'exec "$@"', "sh"] + list(argv)


def test_a_failure_alerted_while_state_was_read_only_gets_its_recovery(tmp_path, fake):
    """The failure alert goes out with its cooldown recorded in the fallback directory;
    once the state directory is writable again the job's alert state is read from
    /var/lib/runbook-ops, which never saw it: the recovery is never sent, and the team
    is left believing the backup still fails."""
    argv, runtime = _host(tmp_path, fake, str(tmp_path / "run" / "lock"))
    (tmp_path / "state").mkdir()
    failing = subprocess.run(_read_only([tmp_path / "state"], argv + [
        "run", "--job", "backup", "--timeout", "60", "--", "sh", "-c", "echo boom; exit 3"]),
        capture_output=True, text=True, timeout=60, check=False)
    if "unshare" in failing.stderr or "mount" in failing.stderr:
        pytest.skip("no mount namespace here: %s" % failing.stderr.strip())
    assert failing.returncode == 1
    assert any(m["text"].startswith("🚨 web1 CRITICAL: job backup failed with exit status 3")
               for m in fake.messages)
    jobs.run_job(runtime, "backup", ["true"], out=open(os.devnull, "w"))  # writable again
    assert "✅ web1 recovered: job backup succeeds again" in [m["text"] for m in fake.messages]


_PID_REUSE_DRIVER = r'''
import os, subprocess, sys, time
argv, pidfile = sys.argv[2:], sys.argv[1]
wrapper = subprocess.Popen(argv + ["run", "--job", "daemonizes", "--", "sh", "-c",
                                   "echo $$ > %s; setsid sleep 30 & echo started" % pidfile])
while not (os.path.exists(pidfile) and open(pidfile).read().strip()):
    time.sleep(0.01)
leader = int(open(pidfile).read())
while os.path.exists("/proc/%d" % leader):  # the wrapper reaped its command
    time.sleep(0.01)
with open("/proc/sys/kernel/ns_last_pid", "w") as handle:
    handle.write(str(leader - 1))
innocent = subprocess.Popen(["setsid", "sleep", "100"])  # a new group leader, pid reused
wrapper.wait(timeout=60)
try:
    innocent.wait(timeout=1)
except subprocess.TimeoutExpired:
    innocent.kill()
    innocent.wait()
    print("reused=%d innocent=alive" % (innocent.pid == leader))
else:
    print("reused=%d innocent=killed-by-signal-%d" % (innocent.pid == leader, -innocent.returncode))
'''


def test_the_wrapper_never_signals_a_process_group_it_does_not_own(tmp_path, fake):
    """A command that exits while a ``setsid`` child holds its output: the wrapper reaps
    the command (``poll``), waits 2 s for the output, then ``killpg(command_pid)``. The
    group is empty by then, so that pid is free; a process group created meanwhile with
    the same number (a pid reused: 32768 pids on a busy host, or a container's pid
    namespace) gets SIGTERM, and SIGKILL 10 s later."""
    argv, _runtime = _host(tmp_path, fake, str(tmp_path / "lock"))
    driver = tmp_path / "driver.py"
    driver.write_text(_PID_REUSE_DRIVER)
    proc = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "python3",
                           str(driver), str(tmp_path / "leader.pid")] + argv,
                          capture_output=True, text=True, timeout=120, check=False)
    if proc.returncode != 0 and "unshare" in proc.stderr:
        pytest.skip("no pid namespace here: %s" % proc.stderr.strip())
    assert "reused=1" in proc.stdout, proc.stdout + proc.stderr
    assert "innocent=alive" in proc.stdout, proc.stdout

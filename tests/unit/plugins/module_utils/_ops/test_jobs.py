# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""jobs.py: the cron wrapper with real subprocesses, real locks and the fake Bot API."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

import pytest

from waiting import wait_for

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
            "log_dir": str(tmp_path / "log"), "lock_dir": str(tmp_path / "run" / "lock"),
            "fallback_state_dir": str(tmp_path / "run" / "state"),
            "alert": {"telegram_api_url": fake.url, "telegram_chat_id": "-1001",
                      "telegram_token_file": str(token_file), "cooldown_seconds": 86400},
            "jobs": {"pinged": {"ping_url": fake.url + "/ping/abc-123"},
                     "unpingable": {"ping_url": "http://127.0.0.1:%d/x" % _closed_port()}}}
    runtime_file = tmp_path / "runtime.json"
    runtime_file.write_text(json.dumps(data))

    class Host:
        root = tmp_path
        runtime = merge_runtime(data)
        argv = [str(launcher), "--runtime", str(runtime_file)]

        @staticmethod
        def cli(*args, **kwargs):
            return subprocess.Popen(Host.argv + list(args), stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE, text=True, **kwargs)

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
    assert set(state) == {"job", "started", "finished", "rc", "seconds", "timed_out", "last_success"}
    assert state["rc"] == 0 and state["last_success"] == state["started"]
    assert fake.requests == []  # success after success: nothing to say


def test_the_command_is_told_which_job_lock_the_wrapper_holds_for_it(host, fake):
    """`backup run` takes its job's lock when run by hand; under the wrapper it is told
    the wrapper holds it (it could not take it: the wrapper's flock excludes it)."""
    record = jobs.run_job(host.runtime, "hello", ["sh", "-c", "echo locked=$RUNBOOK_OPS_LOCKED_JOB"])
    assert record["rc"] == 0
    assert "locked=hello" in host.log("hello")


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
        "abc-123/start", "abc-123", "abc-123/start", "abc-123/fail"], host.log("pinged")


def test_a_ping_whose_connection_drops_once_is_sent_again(host, fake):
    """A reset (a proxy restarting, a loaded endpoint) must not cost the job its ping: the
    dead-man service would alert for a job that ran."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    def reset_first_then_forward():
        conn, _peer = listener.accept()
        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        conn.close()  # RST: "Connection reset by peer"
        conn, _peer = listener.accept()
        with conn, socket.create_connection(("127.0.0.1", int(fake.url.rsplit(":", 1)[1]))) as up:
            up.sendall(conn.recv(65536))
            conn.sendall(up.recv(65536))
        listener.close()

    threading.Thread(target=reset_first_then_forward, daemon=True).start()
    lines = []

    class Log:
        line = staticmethod(lines.append)
    assert jobs.ping("http://127.0.0.1:%d/ping/abc-123" % port, Log, "success") is True, lines
    assert [r["ping"] for r in fake.requests] == ["abc-123"] and lines == []


def test_failed_ping_is_logged_without_url_and_does_not_fail_the_job(host):
    record = jobs.run_job(host.runtime, "unpingable", ["true"])
    assert record["rc"] == 0
    log = host.log("unpingable")
    assert "dead-man ping (start) failed" in log and "dead-man ping (success) failed" in log
    assert "127.0.0.1" not in log


@pytest.mark.parametrize("name", ["", "../etc/passwd", "a b", ".hidden", "x" * 101,
                                  "backup.daily", "-x", "backup\n"])
def test_bad_job_names_are_refused(host, name):
    with pytest.raises(OpsError) as caught:
        jobs.run_job(host.runtime, name, ["true"])
    assert caught.value.message.startswith("--job %r is not a valid job name: use letters, "
                                           "digits, '_' and '-'" % name)
    assert not (host.root / "log").exists()  # refused before anything was written


def test_a_dot_in_the_job_name_is_refused_in_one_line_naming_cron(host):
    proc = host.cli("run", "--job", "backup.daily", "--", "true")
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and out == ""
    assert err == ("runbook-ops: job backup.daily: error: --job 'backup.daily' is not a valid "
                   "job name: use letters, digits, '_' and '-' (not first), at most 100 "
                   "characters (no dot: Debian's cron silently ignores /etc/cron.d files with "
                   "one)\n")


def test_second_concurrent_run_says_so_and_exits_0_without_running(host):
    script = "echo begin; sleep 2; echo end"
    first = host.cli("run", "--job", "slow", "--", "sh", "-c", script)
    time.sleep(0.7)
    second = host.cli("run", "--job", "slow", "--", "sh", "-c", "echo SECOND")
    out2, err2 = second.communicate(timeout=10)
    first.communicate(timeout=10)
    assert second.returncode == 0
    assert re.fullmatch(r"job slow is already running \(pid \d+, since \S+Z\); skipping\n",
                        out2)
    assert "pid %d" % first.pid in out2
    assert first.returncode == 0
    assert "SECOND" not in host.log("slow")
    assert "runbook-ops: " + out2.strip() in host.log("slow")  # the skip is in the job's log


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


# --------------------------------------------------------------------------- never silent

def _in_read_only_namespace(read_only_dirs, argv):
    """``argv`` run in a private mount namespace where each of ``read_only_dirs`` is an
    empty tmpfs remounted read-only, as ``errors=remount-ro`` leaves a root filesystem."""
    mounts = "".join('mount -t tmpfs -o size=1m tmpfs "%s" && mount -o remount,ro "%s" && '
                     % (d, d) for d in read_only_dirs)
    return ["unshare", "--mount", "--propagation", "private", "sh", "-c",
            mounts + 'exec "$@"', "sh"] + list(argv)


@pytest.fixture
def read_only(host):
    """Runs the CLI with the state and log directories on a read-only filesystem."""
    dirs = [host.root / "state", host.root / "log"]
    for directory in dirs:
        directory.mkdir()
    probe = subprocess.run(_in_read_only_namespace(dirs, ["true"]), capture_output=True,
                           text=True, check=False)
    if probe.returncode != 0:
        pytest.skip("no mount namespace here: %s" % probe.stderr.strip())

    def run(*args):
        return subprocess.run(_in_read_only_namespace(dirs, host.argv + list(args)),
                              capture_output=True, text=True, timeout=60, check=False)
    return run


def test_read_only_state_still_runs_the_job_keeps_state_in_run_and_alerts_once(
        host, fake, read_only):
    marker = host.root / "ran"
    job = ["sh", "-c", 'echo "state=$RUNBOOK_OPS_STATE_DIR"; touch %s' % marker]
    first = read_only("run", "--job", "disk-monitor", "--timeout", "60", "--", *job)
    assert first.returncode == 0, first.stderr
    assert marker.exists(), "the job must run on a read-only state directory"
    fallback = host.root / "run" / "state"
    # The log cannot be written: its lines go to stderr, which the cron line sends to syslog.
    assert "state=%s\n" % fallback in first.stderr
    assert ("cannot write the state directory %s (Read-only file system)" % (host.root / "state")
            in first.stderr)
    assert "cannot open %s/disk-monitor.log: Read-only file system" % (host.root / "log") \
        in first.stderr
    record = json.loads((fallback / "jobs" / "disk-monitor.json").read_text())
    assert record["rc"] == 0
    assert len(fake.messages) == 1
    text = fake.messages[0]["text"]
    assert text.startswith("🚨 web1 CRITICAL: job disk-monitor: cannot write the state "
                           "directory %s (Read-only file system)" % (host.root / "state"))
    assert "errors=remount-ro" in text
    second = read_only("run", "--job", "disk-monitor", "--", "true")
    assert second.returncode == 0 and len(fake.messages) == 1, "one alert per cooldown"
    assert "alert runbook-ops:storage not sent: in cooldown" in second.stderr
    # Writable again (remounted, or rebooted): one recovery, and state back in place.
    jobs.run_job(host.runtime, "disk-monitor", ["true"])
    assert [m["text"] for m in fake.messages][1:] == [
        "✅ web1 recovered: the state directory %s and the job logs are writable again"
        % (host.root / "state")]
    assert (host.root / "state" / "jobs" / "disk-monitor.json").exists()


def test_a_failing_job_on_read_only_state_alerts_its_failure_too(host, fake, read_only):
    proc = read_only("run", "--job", "backup", "--", "sh", "-c", "echo restic: boom; exit 3")
    assert proc.returncode == 1
    texts = [m["text"] for m in fake.messages]
    assert len(texts) == 2
    assert "cannot write the state directory" in texts[0]
    assert texts[1].startswith("🚨 web1 CRITICAL: job backup failed with exit status 3")
    assert "restic: boom" in texts[1]


def test_unreadable_runtime_config_exits_2_with_one_line_for_syslog(host, tmp_path):
    broken = tmp_path / "broken-runtime.json"
    broken.write_text('{"alert": ')  # a torn write
    marker = tmp_path / "ran"
    proc = subprocess.run([host.argv[0], "--runtime", str(broken), "run", "--job", "x", "--",
                           "touch", str(marker)], capture_output=True, text=True, timeout=20,
                          check=False)
    assert proc.returncode == 2 and not marker.exists()
    assert proc.stderr.startswith("runbook-ops: job x: error: runtime config %s: not valid JSON"
                                  % broken)
    assert len(proc.stderr.splitlines()) == 1


def _pids_of(pattern):
    proc = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True, check=False)
    return [int(p) for p in proc.stdout.split()]


@pytest.fixture
def escaped():
    """A unique command line for a grandchild that leaves the job's session; killed after."""
    marker = "sleep 1000.%d%d" % (os.getpid(), time.monotonic_ns() % 10 ** 6)
    yield "setsid %s &" % marker, marker
    for pid in _pids_of(marker):
        os.kill(pid, 9)


def test_timeout_ends_the_run_even_when_a_setsid_grandchild_holds_the_pipe(host, fake, escaped):
    spawn, marker = escaped
    started = time.monotonic()
    proc = host.cli("run", "--job", "stuck", "--timeout", "1", "--", "sh", "-c",
                    "%s echo spawned; sleep 1000" % spawn)
    try:
        out, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the wrapper kept reading after its timeout")
    elapsed = time.monotonic() - started
    assert proc.returncode == 124, err
    assert elapsed < 1 + jobs.KILL_GRACE_SECONDS + 2 * jobs.READ_GRACE_SECONDS + 3
    assert _pids_of(marker), "the escaped process outlives the job (it is not ours to kill)"
    log = host.log("stuck")
    assert "timed out after 1" in log and "started with setsid?" in log
    assert fake.messages[0]["text"].startswith("🚨 web1 CRITICAL: job stuck timed out after 1")
    again = host.cli("run", "--job", "stuck", "--", "echo", "next")
    assert again.communicate(timeout=30)[0] == "" and again.returncode == 0, "lock released"


def test_a_command_that_exits_while_an_escaped_process_holds_its_output_ends(host, escaped):
    spawn, _marker = escaped
    proc = host.cli("run", "--job", "daemonizes", "--", "sh", "-c", "%s echo done" % spawn)
    try:
        proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the wrapper waited for a process outside the job (no timeout given)")
    assert proc.returncode == 0
    assert "done" in host.log("daemonizes")


def test_processes_the_command_left_in_its_group_are_stopped(host, tmp_path):
    pidfile = tmp_path / "left.pid"
    proc = host.cli("run", "--job", "leaves", "--", "sh", "-c",
                    "sleep 1000 & echo $! > %s; echo bye" % pidfile)
    proc.communicate(timeout=30)
    assert proc.returncode == 0
    left = int(pidfile.read_text())
    time.sleep(0.2)
    assert not os.path.exists("/proc/%d" % left) or \
        open("/proc/%d/stat" % left).read().split()[2] == "Z"
    assert "processes it started still hold its output; stopping them" in host.log("leaves")


def test_a_run_skipped_behind_a_stuck_holder_alerts_once_then_recovers(host, fake):
    """A wrapper frozen past its own timeout (SIGSTOP) holds the lock; time is injected."""
    holder = host.cli("run", "--job", "frozen", "--timeout", "2", "--", "sleep", "30")
    lock = host.root / "run" / "lock" / "frozen.lock"
    assert wait_for(lambda: lock.exists() and '"timeout": 2' in lock.read_text())
    os.kill(holder.pid, signal.SIGSTOP)
    try:
        later = time.time() + 2 + jobs.STUCK_GRACE_SECONDS + 5
        boot_later = jobs.boot_seconds() + 2 + jobs.STUCK_GRACE_SECONDS + 5  # both clocks on
        records = [jobs.run_job(host.runtime, "frozen", ["true"], clock=lambda: later,
                                boot_clock=lambda: boot_later, out=open(os.devnull, "w"))
                   for _attempt in range(2)]
        on_time = jobs.run_job(host.runtime, "frozen", ["true"], out=open(os.devnull, "w"))
    finally:
        os.kill(holder.pid, signal.SIGCONT)
    holder.communicate(timeout=30)
    assert [r["stuck"] for r in records] == [True, True] and on_time["stuck"] is False
    assert [r["rc"] for r in records] == [1, 1] and on_time["rc"] == 0
    assert records[0]["holder"]["pid"] == holder.pid
    texts = [m["text"] for m in fake.messages]
    assert texts[0].startswith("🚨 web1 CRITICAL: job frozen is stuck: the run started ")
    assert "past its 2 s timeout and still holds %s" % lock in texts[0]
    assert holder.returncode == 124  # woken up, it stopped its command at once
    assert len(texts) == 3 and texts[1].startswith(
        "🚨 web1 CRITICAL: job frozen timed out after 2 s")
    assert texts[2] == ("✅ web1 recovered: job frozen: the stuck run has ended, later runs "
                        "are no longer skipped")
    jobs.run_job(host.runtime, "frozen", ["true"])
    assert [m["text"] for m in fake.messages][3:] == [
        "✅ web1 recovered: job frozen succeeds again"]
    assert host.log("frozen").count("is already running") == 3


def test_cli_exit_status_is_124_for_a_timeout(host):
    proc = host.cli("run", "--job", "slowpoke", "--timeout", "0.5", "--", "sleep", "30")
    proc.communicate(timeout=30)
    assert proc.returncode == 124


# --------------------------------------------------------------------------- #16 review fixes

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]


@pytest.mark.parametrize("value", ["0", "-5", "soon"])
def test_a_timeout_of_0_or_less_is_refused_in_one_line_and_nothing_runs(host, tmp_path, value):
    marker = tmp_path / "ran"
    proc = host.cli("run", "--job", "backup", "--timeout", value, "--", "touch", str(marker))
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 2 and out == "" and not marker.exists()
    assert err == ("runbook-ops: job backup: error: --timeout %r is not a valid timeout: use a "
                   "number of seconds greater than 0\n" % value)


def test_a_lock_directory_another_user_owns_is_not_used_and_says_so_until_fixed(host, fake):
    """Made by nobody (as anyone can in /run/lock): the job runs with its lock in the state
    directory, one runbook-ops:locks alert says why; once root owns it, one recovery."""
    lock_dir = host.root / "run" / "lock"
    lock_dir.mkdir(parents=True)
    os.chown(lock_dir, int(subprocess.check_output(["id", "-u", "nobody"])), -1)
    record = jobs.run_job(host.runtime, "backup", ["true"], out=open(os.devnull, "w"))
    assert record["rc"] == 0
    assert (host.root / "state" / "locks" / "backup.lock").exists()
    assert not (lock_dir / "backup.lock").exists()
    assert [m["text"] for m in fake.messages] == [
        "🚨 web1 CRITICAL: job backup: the lock directory %s cannot be used: %s is owned by uid "
        "65534, not 0. The job's lock is taken in %s instead. Only root may own or write it: if "
        "you did not make it so, another user may be trying to hold the jobs' locks or to make "
        "root write through a link there." % (lock_dir, lock_dir, host.root / "state" / "locks")]
    os.chown(lock_dir, 0, -1)
    jobs.run_job(host.runtime, "backup", ["true"], out=open(os.devnull, "w"))
    jobs.run_job(host.runtime, "backup", ["true"], out=open(os.devnull, "w"))
    assert [m["text"] for m in fake.messages][1:] == [
        "✅ web1 recovered: the lock directory %s is private again" % lock_dir]
    assert (lock_dir / "backup.lock").exists()


def _hold(path):
    """``flock`` ``path`` read-only in another process, as an older wrapper holds its lock."""
    holder = subprocess.Popen(["flock", "--no-fork", "-s", str(path), "sleep", "60"])
    assert wait_for(lambda: subprocess.run(["flock", "-n", str(path), "true"], check=False).returncode == 1)
    return holder


def test_an_older_wrapper_holding_the_state_directory_lock_is_waited_for(host, fake):
    """Wrappers before /run/runbook-ops/locks took <state_dir>/locks/NAME.lock: during an
    upgrade the new one must not start the job that an old one still runs."""
    old_lock = host.root / "state" / "locks" / "backup.lock"
    old_lock.parent.mkdir(parents=True)
    old_lock.write_text("4242\n")  # the oldest wrappers noted a bare pid
    holder = _hold(old_lock)
    try:
        record = jobs.run_job(host.runtime, "backup", ["true"], out=open(os.devnull, "w"))
    finally:
        holder.kill()
        holder.wait()
    assert record["skipped"] is True and record["lock"] == str(old_lock)
    assert record["holder"] == {"pid": "4242"}
    assert jobs.run_job(host.runtime, "backup", ["true"])["skipped"] is False
    assert old_lock.read_text() == "4242\n", "an old lock file is only ever read"


def test_an_older_wrapper_lock_is_honoured_on_a_read_only_state_directory(host, fake, tmp_path):
    state = host.root / "state"
    state.mkdir()
    script = ('mount -t tmpfs -o size=1m tmpfs "$1" && mkdir "$1/locks" && echo 4242 > '
              '"$1/locks/backup.lock" && mount -o remount,ro "$1" && '
              '{ flock -F -s "$1/locks/backup.lock" sleep 30 >/dev/null 2>&1 & holder=$!; }; '
              'sleep 1; shift; "$@" run --job backup -- touch %s; echo "rc=$?"; kill $holder'
              % (tmp_path / "ran"))
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script,
                           "sh", str(state)] + host.argv, capture_output=True, text=True,
                          timeout=60, check=False)
    if "unshare" in proc.stderr:
        pytest.skip("no mount namespace here: %s" % proc.stderr.strip())
    assert "rc=0" in proc.stdout and "job backup is already running (pid 4242)" in proc.stdout
    assert not (tmp_path / "ran").exists()


def test_the_old_default_lock_directory_is_honoured_only_when_root_made_it(
        host, fake, monkeypatch):
    """/run/lock/runbook-ops (wrappers of b380045): held there means running; the same
    directory made by another user is ignored (its locks are nobody's to trust)."""
    old_dir = host.root / "old-run-lock"
    old_dir.mkdir()
    monkeypatch.setattr(jobs, "OLD_DEFAULT_LOCK_DIR", str(old_dir))
    monkeypatch.setattr(jobs, "DEFAULT_LOCK_DIR", host.runtime["lock_dir"])
    (old_dir / "backup.lock").write_text('{"pid": 77, "started": 1, "timeout": null}\n')
    holder = _hold(old_dir / "backup.lock")
    try:
        held = jobs.run_job(host.runtime, "backup", ["true"], out=open(os.devnull, "w"))
        os.chown(old_dir, int(subprocess.check_output(["id", "-u", "nobody"])), -1)
        ignored = jobs.run_job(host.runtime, "backup", ["true"], out=open(os.devnull, "w"))
    finally:
        holder.kill()
        holder.wait()
    assert held["skipped"] is True and held["holder"]["pid"] == 77
    assert ignored["skipped"] is False and ignored["rc"] == 0


def test_a_clock_step_neither_invents_nor_hides_a_stuck_run(host, fake):
    """The holder's note carries its boot id and boot-clock start: two days of wall clock
    jump (NTP fixing a dead RTC) do not make a fresh run stuck; the boot clock does."""
    holder = host.cli("run", "--job", "steady", "--timeout", "2", "--", "sleep", "30")
    lock = host.root / "run" / "lock" / "steady.lock"
    assert wait_for(lambda: lock.exists() and '"boot_id"' in lock.read_text())
    note = json.loads(lock.read_text())
    assert note["pid"] == holder.pid and note["pid_start"] == jobs.process_start(holder.pid)
    try:
        jumped = jobs.run_job(host.runtime, "steady", ["true"], clock=lambda: time.time() + 2 * 86400,
                              out=open(os.devnull, "w"))
        assert jumped["skipped"] is True and jumped["stuck"] is False and fake.messages == []
        os.kill(holder.pid, signal.SIGSTOP)
        later = jobs.boot_seconds() + 2 + jobs.STUCK_GRACE_SECONDS + 5
        stuck = jobs.run_job(host.runtime, "steady", ["true"], clock=lambda: time.time() - 86400,
                             boot_clock=lambda: later, out=open(os.devnull, "w"))
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        holder.communicate(timeout=30)
    assert stuck["stuck"] is True and "ps -o pid,etime,stat,cmd -s %d" % holder.pid in \
        fake.messages[0]["text"]


def test_a_stuck_note_whose_pid_no_longer_runs_points_at_the_lock_file(host, fake):
    lock = host.root / "run" / "lock" / "orphan.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps({"pid": 4242, "pid_start": 1, "boot_id": jobs.boot_id(),
                                "started": time.time() - 7200,
                                "started_boot": jobs.boot_seconds() - 7200, "timeout": 60}))
    holder = _hold(lock)
    try:
        record = jobs.run_job(host.runtime, "orphan", ["true"], out=open(os.devnull, "w"))
    finally:
        holder.kill()
        holder.wait()
    assert record["stuck"] is True
    assert "Look at it with `fuser -v %s` (pid 4242 no longer runs" % lock in \
        fake.messages[0]["text"]


def test_a_run_that_waited_for_the_lock_counts_its_time_from_taking_it(host):
    first = host.cli("run", "--job", "queue", "--json", "--", "sleep", "2")
    lock = host.root / "run" / "lock" / "queue.lock"
    assert wait_for(lambda: lock.exists() and lock.read_text())
    second = host.cli("run", "--job", "queue", "--wait", "20", "--json", "--", "true")
    waited = json.loads(second.communicate(timeout=30)[0])
    first_record = json.loads(first.communicate(timeout=30)[0])
    assert waited["started"] >= first_record["finished"] > first_record["started"]


def test_state_kept_in_the_fallback_is_merged_back_once_writable(host, fake, read_only):
    failing = read_only("run", "--job", "backup", "--", "sh", "-c", "exit 3")
    assert failing.returncode == 1
    fallback = host.root / "run" / "state"
    assert (fallback / "alerts.json").exists() and (fallback / "jobs" / "backup.json").exists()
    jobs.run_job(host.runtime, "disk-monitor", ["true"], out=open(os.devnull, "w"))
    state = json.loads((host.root / "state" / "alerts.json").read_text())
    assert state["job:backup"]["level"] == "critical" and "critical" in state["job:backup"]["sent"]
    assert json.loads((host.root / "state" / "jobs" / "backup.json").read_text())["rc"] == 3
    assert not (fallback / "alerts.json").exists() and not list((fallback / "jobs").iterdir())
    assert "is merged back (2 alert keys, 1 job records)" in host.log("disk-monitor")
    assert [m["text"][:30] for m in fake.messages] == [
        "🚨 web1 CRITICAL: job backup: c", "🚨 web1 CRITICAL: job backup fa",
        "✅ web1 recovered: the state di"]


def test_a_fallback_directory_another_user_owns_is_not_used(host, fake, read_only):
    fallback = host.root / "run" / "state"
    fallback.mkdir(parents=True)
    os.chown(fallback, int(subprocess.check_output(["id", "-u", "nobody"])), -1)
    proc = read_only("run", "--job", "backup", "--", "true")
    assert proc.returncode == 0, proc.stderr
    assert list(fallback.iterdir()) == [], "nothing written where another user can change it"
    assert fake.messages[0]["text"].startswith(
        "🚨 web1 CRITICAL: job backup: cannot write the state directory %s (Read-only file "
        "system), and the fallback cannot be used (%s is owned by uid 65534, not 0): nothing "
        "is recorded, so alerts repeat every run" % (host.root / "state", fallback))


def test_closed_stdout_and_stderr_never_change_the_exit_status(host, tmp_path):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the logger the cron line pipes into is gone
    try:
        ran = subprocess.run(host.argv + ["run", "--job", "quiet", "--json", "--", "true"],
                             stdout=write_end, stderr=write_end, timeout=30, check=False)
        refused = subprocess.run(host.argv + ["run", "--job", "bad.name", "--", "true"],
                                 stdout=write_end, stderr=write_end, timeout=30, check=False)
    finally:
        os.close(write_end)
    assert (ran.returncode, refused.returncode) == (0, 2)


@pytest.mark.parametrize("signum", [signal.SIGHUP, signal.SIGINT])
def test_a_signal_to_the_wrapper_stops_the_job_records_it_and_frees_the_lock(host, fake, signum):
    """A closed terminal (SIGHUP) or Ctrl-C (SIGINT) is handled like SIGTERM: the job is
    stopped, the run recorded with 128 + the signal, the lock released, no alert."""
    pid_file = host.root / "job.pid"
    wrapper = host.cli("run", "--job", "backup", "--timeout", "3600", "--", "sh", "-c",
                       "echo $$ > %s; exec sleep 120" % pid_file)
    assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip())
    job = int(pid_file.read_text())
    wrapper.send_signal(signum)
    rc = wrapper.wait(timeout=60)
    wrapper.communicate()
    assert rc == 128 + signum
    assert wait_for(lambda: jobs.process_start(job) is None or _zombie(job), 5)
    record = json.loads((host.root / "state" / "jobs" / "backup.json").read_text())
    assert record["rc"] == 128 + signum
    assert record["interrupted"] == signal.Signals(signum).name
    assert "interrupted by %s" % signal.Signals(signum).name in host.log("backup")
    assert subprocess.run(["flock", "-n", str(host.root / "run" / "lock" / "backup.lock"),
                           "true"], check=False).returncode == 0
    assert not fake.messages


def _zombie(pid) -> bool:
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            data = handle.read()
    except OSError:
        return True
    return data[data.rindex(b")") + 2:].split()[0] == b"Z"


# --------------------------------------------------------------------------- metrics

def _prom(path):
    """{family: value} of a job's textfile (one sample per family)."""
    return {line.split("{")[0]: float(line.rsplit(" ", 1)[1])
            for line in path.read_text().splitlines() if not line.startswith("#")}


def test_a_failed_run_keeps_the_last_success_in_record_and_metrics(host, fake):
    textfile = host.root / "textfile"
    runtime = dict(host.runtime, textfile_dir=str(textfile))
    prom = textfile / "runbook_ops_job_nightly.prom"
    day = 1768532400.0  # 2026-01-16T03:00:00Z
    first = jobs.run_job(runtime, "nightly", ["true"], clock=lambda: day)
    assert first["last_success"] == "2026-01-16T03:00:00Z"
    assert _prom(prom)["runbook_ops_job_last_success_timestamp_seconds"] == day
    for later in (day + 86400, day + 2 * 86400):  # two failed nights
        failed = jobs.run_job(runtime, "nightly", ["sh", "-c", "exit 3"], clock=lambda: later)
        assert failed["rc"] == 3 and failed["last_success"] == "2026-01-16T03:00:00Z"
        metrics = _prom(prom)
        assert metrics["runbook_ops_job_last_success_timestamp_seconds"] == day
        assert metrics["runbook_ops_job_last_run_timestamp_seconds"] == later
        assert metrics["runbook_ops_job_last_exit_code"] == 3
        assert "runbook_ops_job_duration_seconds" in metrics  # finished - started: the clock is injected
    record = json.loads((host.root / "state" / "jobs" / "nightly.json").read_text())
    assert record["last_success"] == "2026-01-16T03:00:00Z" and record["rc"] == 3
    assert os.listdir(str(textfile)) == ["runbook_ops_job_nightly.prom"]  # no temp or probe file left


def test_a_job_that_never_succeeded_has_no_last_success_sample(host, fake):
    runtime = dict(host.runtime, textfile_dir=str(host.root / "textfile"))
    record = jobs.run_job(runtime, "broken", ["false"])
    assert "last_success" not in record
    metrics = _prom(host.root / "textfile" / "runbook_ops_job_broken.prom")
    assert metrics["runbook_ops_job_last_exit_code"] == 1
    assert 0 <= metrics["runbook_ops_job_duration_seconds"] == record["seconds"] < 30
    assert "runbook_ops_job_last_success_timestamp_seconds" not in metrics


@pytest.mark.parametrize("previous, expected", [
    (None, None),
    ({"rc": 0, "started": "2026-01-15T03:00:00Z"}, "2026-01-15T03:00:00Z"),  # an older wrapper's record
    ({"rc": 1, "started": "2026-01-15T03:00:00Z"}, None),
    ({"rc": 1, "started": "2026-01-15T03:00:00Z", "last_success": "2026-01-14T03:00:00Z"},
     "2026-01-14T03:00:00Z"),
], ids=["no-record", "old-success", "old-failure", "kept"])
def test_last_success_comes_from_the_previous_record(previous, expected):
    assert jobs.last_success(previous) == expected


def test_metrics_that_cannot_be_written_are_logged_and_alerted_and_the_job_still_counts(host, fake):
    """The directory is fine when the run starts and gone when it ends (the job's command
    replaces it with a file): the run is recorded, the problem logged and alerted once."""
    textfile = host.root / "textfile"
    runtime = dict(host.runtime, textfile_dir=str(textfile))
    record = jobs.run_job(runtime, "metered", ["sh", "-c", "rm -rf %s && touch %s" % (textfile, textfile)])
    assert record["rc"] == 0 and record["state_saved"] is True
    problem = "cannot write %s/runbook_ops_job_metered.prom: File exists" % textfile  # makedirs
    assert record["metrics_error"] == problem + " (the metrics of job metered are stale)"
    assert "runbook-ops: " + problem in host.log("metered")
    assert len(fake.messages) == 1 and problem in fake.messages[0]["text"]
    assert fake.messages[0]["text"].startswith("🚨 web1 CRITICAL: job metered: ")
    # A lasting problem is found before the run: no recovery at its start, no new alert.
    again = jobs.run_job(runtime, "metered", ["true"])
    assert again["rc"] == 0 and again["metrics_error"].startswith(problem)
    assert "cannot write the metrics directory %s" % textfile in host.log("metered")
    assert len(fake.messages) == 1, [m["text"] for m in fake.messages]

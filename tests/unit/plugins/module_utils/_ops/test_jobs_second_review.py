# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""SECOND REVIEW of #16 items 1-4 (branch review-wrapper): ways a scheduled job still fails
without anyone finding out, holds its lock, loses its state or mis-times its alerts.

Tests only, no fixes: each test fails on 7a5c92f for the reason its docstring states and
passes once that is fixed. Real processes, real files, real tmpfs, loopback endpoints.
"""

from __future__ import annotations

import functools
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import jinja2
import pytest
import yaml

from waiting import wait_for

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))

from fake_syslog import FakeSyslog  # noqa: E402
from fake_telegram import FakeTelegram  # noqa: E402
from host_layout import install_host_cli  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import alerts, jobs  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import merge_runtime  # noqa: E402

TOKEN = "987654321:AASecondReview_token_0123456789abcd"
DEVNULL = open(os.devnull, "w")  # pylint: disable=consider-using-with,unspecified-encoding


@pytest.fixture
def fake():
    with FakeTelegram(TOKEN) as server:
        yield server


def _runtime(tmp_path, api_url, lock_dir=None, jobs_settings=None):
    """runtime.json of a host laid out under ``tmp_path``; ``(argv of the CLI, runtime)``."""
    launcher = install_host_cli(tmp_path / "host")
    token_file = tmp_path / "telegram.token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    data = {"host_label": "web1", "state_dir": str(tmp_path / "state"),
            "log_dir": str(tmp_path / "log"),
            "lock_dir": lock_dir or str(tmp_path / "run" / "lock"),
            "fallback_state_dir": str(tmp_path / "run" / "state"),
            "alert": {"telegram_api_url": api_url, "telegram_chat_id": "-1001",
                      "telegram_token_file": str(token_file), "cooldown_seconds": 86400},
            "jobs": jobs_settings or {}}
    runtime_file = tmp_path / "runtime.json"
    runtime_file.write_text(json.dumps(data))
    return [str(launcher), "--runtime", str(runtime_file)], merge_runtime(data)


def _running(pid) -> bool:
    """Whether ``pid`` runs (a zombie waiting for its reaper does not)."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as handle:
            data = handle.read()
    except OSError:
        return False
    return data[data.rindex(b")") + 2:].split()[0] != b"Z"


class _Endpoint:
    """A TCP server on loopback answering every connection with ``answer(conn, stop)``."""

    def __init__(self, answer):
        self.answer = answer
        self.stop = threading.Event()
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.sock.getsockname()[1]

    def _serve(self):
        while not self.stop.is_set():
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn):
        try:
            conn.settimeout(5)
            request = b""
            while b"\r\n\r\n" not in request:
                chunk = conn.recv(65536)
                if not chunk:
                    break
                request += chunk
            self.answer(conn, self.stop)
        except OSError:
            pass
        finally:
            conn.close()

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc_info):
        self.stop.set()
        self.thread.join(5)
        self.sock.close()


def _not_http(conn, _stop):
    """What a ping URL with the wrong port (or scheme) reaches: a service that is not HTTP."""
    conn.sendall(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")


def _trickle(conn, stop):
    """A half-broken proxy: a status line, then one header byte every 0.2 s, never done.
    Each byte arrives well within any per-read socket timeout."""
    conn.sendall(b"HTTP/1.1 200 OK\r\n")
    while not stop.wait(0.2):
        conn.sendall(b"X")


def _in_thread(target):
    """Run ``target`` in a daemon thread; ``(thread, box)`` where ``box`` gets its result
    (``"result"``) or exception (``"error"``)."""
    box = {}

    def run():
        try:
            box["result"] = target()
        except BaseException as exc:  # pylint: disable=broad-except
            box["error"] = exc
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


# --------------------------------------------------------------------------- silent failures

def test_a_start_ping_url_that_is_not_http_never_stops_the_job(tmp_path, fake):
    """FINDING 1 (silent failure). ``ping`` catches URLError/OSError/ValueError, but a ping
    URL whose port answers something that is not HTTP (a typo'd port, an ssh or smtp
    service, a TLS-only port behind http://) raises ``http.client.BadStatusLine``, an
    ``HTTPException``. The start ping is sent under the lock before the command: the
    exception leaves ``run_job``, the job never runs, nothing is recorded, no alert goes
    out, and the next run does the same - only a traceback in syslog, every run."""
    with _Endpoint(_not_http) as endpoint:
        _argv, runtime = _runtime(tmp_path, fake.url, jobs_settings={
            "backup": {"ping_url": endpoint.url + "/ping/abc"}})
        marker = tmp_path / "ran"
        try:
            record = jobs.run_job(runtime, "backup", ["touch", str(marker)], timeout=60,
                                  out=DEVNULL)
        except Exception as exc:  # pylint: disable=broad-except
            record = {"raised": "%s: %s" % (type(exc).__name__, exc)}
    assert marker.exists(), "the job did not run because of its dead-man ping: %r" % record
    assert record["rc"] == 0
    assert "dead-man ping (start) failed" in (tmp_path / "log" / "backup.log").read_text()


def test_a_telegram_endpoint_that_is_not_http_is_logged_not_delivered(tmp_path, monkeypatch):
    """FINDING 2 (silent failure). ``send_telegram`` catches URLError/OSError only; an API URL
    (a self-hosted Bot API or proxy, a wrong port) that answers something that is not HTTP
    raises ``BadStatusLine`` out of ``notify`` and out of ``run_job``: the failure alert
    is never sent, never logged as "NOT delivered" in the job's log, the fail ping and the
    ``lock:NAME`` recovery are skipped, and the CLI dies with a traceback (exit 1)."""
    monkeypatch.setattr(alerts, "send_telegram", functools.partial(
        alerts.send_telegram, attempts=2, backoff_seconds=0.01))
    with _Endpoint(_not_http) as endpoint:
        _argv, runtime = _runtime(tmp_path, endpoint.url)
        try:
            record = jobs.run_job(runtime, "backup", ["sh", "-c", "echo restic: boom; exit 3"],
                                  timeout=60, out=DEVNULL)
        except Exception as exc:  # pylint: disable=broad-except
            record = {"raised": "%s: %s" % (type(exc).__name__, exc)}
    assert "raised" not in record, record
    assert "error" in record["alert"]
    assert "alert job:backup critical NOT delivered" in (
        tmp_path / "log" / "backup.log").read_text()


def _cron_commands():
    """``(where, command)`` of every cron line a role installs that runs the wrapper,
    rendered as the role would (any value a variable may take works here)."""
    class _Any(jinja2.ChainableUndefined):
        def __str__(self):
            return "60"

    env = jinja2.Environment(undefined=_Any)
    env.filters["comment"] = lambda text: "# %s" % (text,)
    env.filters["bool"] = lambda value: str(value).lower() in ("1", "true", "yes", "on")
    with open(os.path.join(_REPO, "roles", "job", "templates", "cron.j2"), encoding="utf-8") as handle:
        cron = env.from_string(handle.read())
    with open(os.path.join(_REPO, "roles", "job", "vars", "main.yml"), encoding="utf-8") as handle:
        job_vars = yaml.safe_load(handle)
    found = []
    for path in sorted(glob.glob(os.path.join(_REPO, "roles", "*", "tasks", "*.yml"))):
        with open(path, encoding="utf-8") as handle:
            for given in _job_includes(yaml.safe_load(handle) or []):
                values = dict(job_vars, **given)
                values = dict((key, env.from_string(value).render(**values) if isinstance(value, str) else value)
                              for key, value in values.items())
                for line in cron.render(**values).splitlines():
                    if "runbook-ops run " in line and not line.startswith("#"):
                        found.append((os.path.relpath(path, _REPO), line.split(None, 6)[6]))
    assert len({where.split(os.sep)[1] for where, _c in found}) == 6, found  # the six job roles
    return found


def _job_includes(tasks):
    """The vars of each ``include_role: runbook.ops.job`` that installs a cron file."""
    for task in tasks:
        yield from _job_includes(task.get("block") or [])
        include = task.get("ansible.builtin.include_role") or {}
        given = task.get("vars") or {}
        if include.get("name") == "runbook.ops.job" and given.get("job_state") != "absent":
            yield given


_CRON = _cron_commands()


@pytest.mark.parametrize("where,command", _CRON, ids=[os.path.basename(w) for w, _c in _CRON])
def test_every_cron_line_sends_what_the_wrapper_says_to_syslog(tmp_path, where, command):
    """FINDING 3 (silent failure). Item 1: "Cron lines send stderr somewhere a person finds
    it, never /dev/null", and the README says every line ends in ``2>&1 | logger -t
    runbook-ops``. The media cleanup's review reminder still ends in ``>/dev/null 2>&1``:
    with runtime.json torn or invalid the wrapper exits 2 and its one line is lost, so the
    reminder stops and nobody learns why. Each line runs as cron runs it (``/bin/sh -c``),
    the real ``logger`` writing to a fake syslog socket."""
    broken = tmp_path / "runtime.json"
    broken.write_text('{"alert": ')  # a torn write
    launcher = install_host_cli(tmp_path / "host")
    shims = tmp_path / "bin"
    shims.mkdir()
    socket_path = str(tmp_path / "log.sock")
    (shims / "logger").write_text('#!/bin/sh\nexec /usr/bin/logger --socket %s "$@"\n'
                                  % socket_path)
    (shims / "logger").chmod(0o755)
    line = command.replace("/usr/local/bin/runbook-ops run ", "%s --runtime %s run "
                           % (launcher, broken), 1)
    with FakeSyslog(socket_path) as syslog:
        subprocess.run(["/bin/sh", "-c", line], env={
            "PATH": "%s:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" % shims},
            cwd=str(tmp_path), timeout=60, check=False)
        assert wait_for(lambda: any("runtime config" in m for m in syslog.messages()), 5), (
            "%s: the wrapper's error never reached syslog: %s" % (where, command))


def test_a_missing_runtime_config_is_not_a_silent_host_without_alerts(tmp_path):
    """FINDING 11 (silent failure). ``load_runtime`` answers a missing runtime.json with the
    defaults (meant for before the base role has run): no chat id, so every alert of every
    job is "telegram not configured", written only into the job's own log. On a host whose
    /etc/runbook-ops/runtime.json was deleted (or never written by a failed base run) the
    jobs fail without a word to anyone - while a torn runtime.json goes to syslog with exit
    2 (README: "cannot be read or is invalid"). Run in a mount namespace whose /var/log,
    /var/lib and /run are empty tmpfs, so the defaults touch nothing on this machine."""
    launcher = install_host_cli(tmp_path / "host")
    missing = tmp_path / "etc" / "runtime.json"
    mounts = "".join("mount -t tmpfs -o size=4m tmpfs %s && " % d
                     for d in ("/var/log", "/var/lib", "/run"))
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c",
                           mounts + 'exec "$@"', "sh", launcher, "--runtime", str(missing),
                           "run", "--job", "backup", "--timeout", "60", "--", "sh", "-c",
                           "echo restic: boom; exit 3"],
                          capture_output=True, text=True, timeout=60, check=False)
    if "unshare" in proc.stderr or "mount:" in proc.stderr:
        pytest.skip("no mount namespace here: %s" % proc.stderr.strip())
    assert proc.returncode != 0
    assert str(missing) in proc.stderr or "not configured" in proc.stderr, (
        "the job failed, no alert could go out, and syslog got nothing: %r" % proc.stderr)


# --------------------------------------------------------------------------- SIGTERM

@pytest.fixture
def job_pid(tmp_path):
    """Where the job writes its pid; the job is killed after the test whatever happens."""
    pid_file = tmp_path / "job.pid"
    pids = []

    def read():
        assert wait_for(lambda: pid_file.exists() and pid_file.read_text().strip()), \
            "the job did not start"
        pids.append(int(pid_file.read_text()))
        return pids[-1]
    yield pid_file, read
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _terminated_run(tmp_path, fake, job_pid):
    """A wrapper running a long job, sent SIGTERM (systemd stopping cron's leftovers, an
    admin's ``kill``, ``timeout(1)`` around it); ``(argv, job's pid, wrapper's rc)``."""
    pid_file, read = job_pid
    argv, _runtime_data = _runtime(tmp_path, fake.url)
    wrapper = subprocess.Popen(argv + ["run", "--job", "backup", "--timeout", "3600", "--",
                                       "sh", "-c", "echo $$ > %s; exec sleep 120" % pid_file],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    pid = read()
    wrapper.send_signal(signal.SIGTERM)
    return argv, pid, wrapper.wait(timeout=60)


def test_sigterm_to_the_wrapper_stops_its_job_so_the_next_run_cannot_overlap_it(
        tmp_path, fake, job_pid):
    """FINDING 4a (silent overlap). The command runs in its own session
    (``start_new_session``) and the wrapper keeps Python's default SIGTERM action: the
    wrapper dies at once, its lock is released, and the job goes on alone. The next cron
    run takes the free lock and starts a second backup (restic, pg_dump, a cleanup) next
    to the first: "never overlapping" is broken without a word."""
    _argv, pid, _rc = _terminated_run(tmp_path, fake, job_pid)
    window = jobs.KILL_GRACE_SECONDS + jobs.READ_GRACE_SECONDS + 3
    assert wait_for(lambda: not _running(pid), window), (
        "the job (pid %d) still runs %g s after its wrapper got SIGTERM, and its lock is free"
        % (pid, window))


def test_sigterm_to_the_wrapper_leaves_a_record_of_the_interrupted_run(tmp_path, fake, job_pid):
    """FINDING 4b (silent failure, lost state). The README says a wrapper "killed mid-run"
    cannot report; SIGTERM can be caught. Today the run ends with no record in
    ``jobs/NAME.json`` and a log that ends at "started": the morning check reads the
    previous night's success."""
    _argv, _pid, rc = _terminated_run(tmp_path, fake, job_pid)
    record = tmp_path / "state" / "jobs" / "backup.json"
    assert record.exists(), "no record of the interrupted run (wrapper rc %d); log:\n%s" % (
        rc, (tmp_path / "log" / "backup.log").read_text())
    assert json.loads(record.read_text())["rc"] != 0


# --------------------------------------------------------------------------- lock held

def test_a_trickling_ping_endpoint_cannot_hold_the_lock_and_keep_the_job_from_starting(
        tmp_path, fake, monkeypatch):
    """FINDING 5 (lock held forever). ``PING_TIMEOUT_SECONDS`` is handed to urllib, where it
    bounds each socket read, not the request: an endpoint (or proxy) that trickles a byte
    every few seconds keeps the start ping - sent under the lock, before the command and
    before ``--timeout`` starts counting - waiting for ever. The job never starts and every
    later run is skipped (after timeout + 60 s as "stuck", pointing at the wrapper)."""
    monkeypatch.setattr(jobs, "PING_TIMEOUT_SECONDS", 1.0)
    marker = tmp_path / "ran"
    with _Endpoint(_trickle) as endpoint:
        _argv, runtime = _runtime(tmp_path, fake.url, jobs_settings={
            "health-monitor": {"ping_url": endpoint.url + "/ping/abc"}})
        thread, box = _in_thread(lambda: jobs.run_job(
            runtime, "health-monitor", ["touch", str(marker)], timeout=60, out=DEVNULL))
        started = wait_for(marker.exists, 10)
    thread.join(10)
    assert started, ("the start ping still hangs 10 s into the run though "
                     "PING_TIMEOUT_SECONDS is 1: the lock is held and the job never starts")
    assert "error" not in box, box


def test_a_trickling_telegram_endpoint_cannot_keep_the_wrapper_running(tmp_path, monkeypatch):
    """FINDING 6 (alert timing, piling wrappers). The same per-read timeout in
    ``send_telegram``: a trickling API keeps ``notify`` - and the wrapper - running for
    ever, holding ``alerts.lock``, so every other job's every ``notify`` waits 120 s for it;
    the fail ping after the alert never goes, and a new wrapper piles up every period.
    ``send_telegram`` here makes 2 attempts of 0.5 s each."""
    monkeypatch.setattr(alerts, "send_telegram", functools.partial(
        alerts.send_telegram, timeout=0.5, attempts=2, backoff_seconds=0.01))
    with _Endpoint(_trickle) as endpoint:
        _argv, runtime = _runtime(tmp_path, endpoint.url)
        thread, box = _in_thread(lambda: jobs.run_job(
            runtime, "backup", ["sh", "-c", "echo boom; exit 3"], timeout=60, out=DEVNULL))
        thread.join(10)
        hung = thread.is_alive()
    thread.join(10)
    assert not hung, "run_job still delivering its alert 10 s later (2 attempts of 0.5 s)"
    assert "error" in box.get("result", {}).get("alert", {}), box


def test_a_job_named_alerts_does_not_hold_every_other_jobs_alerts(tmp_path, fake, job_pid):
    """FINDING 7 (wrong alert timing, a name collision). Alert state is locked at
    ``<state_dir>/locks/alerts.lock``, the very path ``JobLock`` flocks as "an older
    wrapper's lock" for a job named ``alerts`` (a valid name): while that job runs, every
    ``notify`` of every other job (four per run, quiet ones included) waits up to 120 s for
    it. Here a one-second job waits as long as the ``alerts`` job runs (30 s). The other
    way round, the ``alerts`` job is skipped ("already running", exit 0) whenever it starts
    while another wrapper is delivering an alert."""
    pid_file, read = job_pid
    argv, _runtime_data = _runtime(tmp_path, fake.url)
    alerts_job = subprocess.Popen(argv + ["run", "--job", "alerts", "--timeout", "120", "--",
                                          "sh", "-c", "echo $$ > %s; exec sleep 30" % pid_file],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        read()
        started = time.monotonic()
        other = subprocess.run(argv + ["run", "--job", "disk-monitor", "--timeout", "60", "--",
                                       "true"], capture_output=True, timeout=100, check=False)
        seconds = time.monotonic() - started
    finally:
        alerts_job.wait(timeout=100)
    assert other.returncode == 0
    assert seconds < 10, "a quiet run of another job took %.0f s while job 'alerts' ran" % seconds


def test_a_holder_whose_note_could_not_be_written_is_still_judged_stuck(tmp_path, fake, tmpfs):
    """FINDING 8 (lock held forever, silently). ``write_note`` truncates the lock file and
    ignores a failed write: on a full ``/run`` (a small tmpfs; docker and others keep files
    there) the note is empty, ``holder_overdue({})`` is 0, and a holder that never ends
    (frozen here with SIGSTOP; a hung ping above) is never judged stuck: every later run is
    "already running (pid unknown)", exit 0, no alert, for good."""
    run_dir = tmpfs("run", "size=64k,mode=0755")
    lock_dir = run_dir / "lock"
    lock_dir.mkdir()
    filler = os.open(str(run_dir / "filler"), os.O_WRONLY | os.O_CREAT, 0o600)
    try:  # /run is full
        while os.write(filler, b"\0" * 4096):
            pass
    except OSError:
        pass
    finally:
        os.close(filler)
    argv, runtime = _runtime(tmp_path, fake.url, lock_dir=str(lock_dir))
    holder = subprocess.Popen(argv + ["run", "--job", "frozen", "--timeout", "2", "--",
                                      "sleep", "30"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    lock = lock_dir / "frozen.lock"
    try:
        assert wait_for(lambda: lock.exists() and subprocess.run(
            ["flock", "-n", str(lock), "true"], check=False).returncode == 1)
        os.kill(holder.pid, signal.SIGSTOP)
        later = time.time() + 2 + jobs.STUCK_GRACE_SECONDS + 5
        boot_later = jobs.boot_seconds() + 2 + jobs.STUCK_GRACE_SECONDS + 5
        record = jobs.run_job(runtime, "frozen", ["true"], timeout=2, clock=lambda: later,
                              boot_clock=lambda: boot_later, out=DEVNULL)
    finally:
        os.kill(holder.pid, signal.SIGCONT)
        holder.wait(timeout=60)  # woken up, it stops its command at its timeout
    assert record["stuck"], "a holder %d s into its 2 s timeout is not judged stuck; note %r" % (
        2 + jobs.STUCK_GRACE_SECONDS + 5, record.get("holder"))


def test_a_timeout_also_stops_what_the_job_started_in_another_group_of_its_session(
        tmp_path, fake, job_pid):
    """FINDING 10 (overlap after a timeout). GNU ``timeout`` (``timeout 3h restic backup``
    in a hook or script), ``set -m`` and ``make`` put their commands in a process group of
    their own, in the job's session. ``--timeout`` signals only the job's group, then stops
    reading: the run ends 124 and releases the lock while those processes go on, so the
    next run overlaps them. They never left the session (``setsid``), so the wrapper can
    find them (``/proc/PID/stat`` field 6, the session id, is the command's pid)."""
    pid_file, read = job_pid
    _argv, runtime = _runtime(tmp_path, fake.url)
    script = "timeout 100 sh -c 'echo $$ > %s; exec sleep 100'" % pid_file
    record = jobs.run_job(runtime, "backup", ["sh", "-c", script], timeout=1, out=DEVNULL)
    pid = read()
    assert record["timed_out"] and record["rc"] == jobs.TIMEOUT_RC
    assert not _running(pid), ("pid %d, started by the job in its session, still runs after "
                               "the run timed out and released the lock" % pid)


# --------------------------------------------------------------------------- cosmetic

def test_the_failure_alert_keeps_the_last_output_line_when_lines_are_long(tmp_path, fake):
    """FINDING 9 (cosmetic, but it hides the cause). The alert carries the last 20 lines of
    up to 300 characters (6000+), and ``cut_message`` keeps the start of the text for
    Telegram's 4096: with long lines (JSON logs, compose or restic progress) the lines cut
    are the last ones - the error itself - and the alert shows only the noise before it."""
    _argv, runtime = _runtime(tmp_path, fake.url)
    noise = "progress " + "=" * 280
    script = "for i in $(seq 1 19); do echo '%s'; done; echo 'Fatal: repository is locked'; " \
             "exit 1" % noise
    jobs.run_job(runtime, "backup", ["sh", "-c", script], timeout=60, out=DEVNULL)
    texts = [m["text"] for m in fake.messages]
    assert texts and texts[0].startswith("🚨 web1 CRITICAL: job backup failed with exit status 1")
    assert "Fatal: repository is locked" in texts[0], texts[0][-200:]

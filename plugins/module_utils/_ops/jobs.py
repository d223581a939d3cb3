# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cron wrapper: ``runbook-ops run --job NAME [--timeout S] [--wait S] -- COMMAND...``.

Flow of ``run_job``: probe ``<state_dir>`` (not writable: use ``<fallback_state_dir>``
for this run and its command, and alert ``runbook-ops:storage``) -> open
``<log_dir>/NAME.log`` (not writable: its lines go to stderr, which the cron line sends
to syslog) -> take ``<lock_dir>/NAME.lock`` (``flock``; ``<state_dir>/locks`` if the lock
directory is unusable), noting pid, start and timeout in it -> dead-man ping
``<ping_url>/start`` -> run the command in its own process group, each output line
appended to the log with a UTC timestamp -> stop the group on ``--timeout`` -> record
``{started, finished, rc, seconds}`` in ``<state_dir>/jobs/NAME.json`` -> release the lock
-> alert ``job:NAME`` (critical with the output tail on failure, recovery on success) ->
ping ``<ping_url>`` or ``<ping_url>/fail``.

A run that finds the lock held logs that it skipped; when the holder has outlived its
own timeout (plus ``STUCK_GRACE_SECONDS``) it alerts ``lock:NAME`` and counts as failed.

Why not ``runner.run_command``: a job's log must grow while the job runs (a job killed
by the timeout, or by a reboot, still leaves its output), and the timeout must stop the
whole process group and then stop reading even when a process that left the group
(``setsid worker &``) still holds the pipe. That lives here and nowhere else.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import json
import os
import select
import shlex
import signal
import subprocess
import sys
import time

from .alerts import notify
from .errors import OpsError
from .runtime import LOCKED_JOB_ENV, STATE_DIR_ENV, job_name_problem, job_settings
from .state import write_json_atomic

TAIL_LINES = 20
TAIL_LINE_CHARS = 300
KILL_GRACE_SECONDS = 10.0  # SIGTERM -> SIGKILL
READ_GRACE_SECONDS = 2.0  # output still arriving after the command (or its group) ended
POLL_SECONDS = 0.5
MAX_LINE_BYTES = 65536
PING_TIMEOUT_SECONDS = 10.0
# A lock holder is stuck once it has run this long past its own timeout: the timeout's
# stop (KILL_GRACE + 2 x READ_GRACE) and the start ping (PING_TIMEOUT) fit well inside.
STUCK_GRACE_SECONDS = 60.0
TIMEOUT_RC = 124
NOT_FOUND_RC = 127
STORAGE_KEY = "runbook-ops:storage"


def utc_stamp(epoch=None) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for ``epoch`` (now by default)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def _seconds(value) -> str:
    return "%g" % float(value)


def check_job_name(name) -> str:
    """Return ``name`` if it is a valid job name; raise ``OpsError`` with the rule otherwise."""
    problem = job_name_problem(name, "--job")
    if problem:
        raise OpsError(problem)
    return name


def probe_writable(directory) -> str:
    """``""`` when a file can be created and written in ``directory``, else the reason."""
    probe = os.path.join(directory, ".write-probe-%d" % os.getpid())
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        return exc.strerror or str(exc)
    try:
        os.write(fd, b"x")
        return ""
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        os.close(fd)
        try:
            os.unlink(probe)
        except OSError:
            pass


class JobLog:
    """Timestamped lines into a job's log; stderr when the log cannot be written.

    ``problem`` says why the log could not be opened or written (``""`` while fine).
    A failing disk never stops the job: lines that do not fit go to stderr instead.
    """

    def __init__(self, path, name):
        self.path = path
        self.name = name
        self.problem = ""
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.handle = open(path, "ab")
        except OSError as exc:
            self.handle = None
            self.problem = "cannot open %s: %s: its lines go to stderr (syslog)" % (
                path, exc.strerror or exc)

    def _stderr(self, text) -> None:
        try:
            sys.stderr.write("%s %s: %s\n" % (utc_stamp(), self.name, text))
            sys.stderr.flush()
        except (OSError, ValueError):
            pass

    def line(self, text: str) -> None:
        if self.handle is not None:
            try:
                self.handle.write(("%s %s\n" % (utc_stamp(), text)).encode("utf-8", "replace"))
                self.handle.flush()
                return
            except OSError as exc:
                if not self.problem:
                    self.problem = "cannot write %s: %s: its lines go to stderr (syslog)" % (
                        self.path, exc.strerror or exc)
        self._stderr(text)

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError:
                pass


# --------------------------------------------------------------------------- the lock

def lock_paths(runtime, name) -> list:
    """Where job ``name``'s lock may live, in order of preference."""
    return [os.path.join(runtime["lock_dir"], name + ".lock"),
            os.path.join(runtime["state_dir"], "locks", name + ".lock")]


def read_lock_note(handle) -> dict:
    """The holder's note (``pid``, ``started``, ``timeout``); ``{}`` when unreadable."""
    try:
        handle.seek(0)
        text = handle.read(4096).strip()
    except (OSError, ValueError):
        return {}
    try:
        note = json.loads(text)
    except ValueError:
        return {"pid": text} if text else {}
    return note if isinstance(note, dict) else {}


def acquire_job_lock(paths, wait_seconds=0.0, note=None):
    """``flock`` the first of ``paths`` that can be opened.

    Returns ``(handle, path, None)`` with ``note`` (JSON) written into the file, or
    ``(None, path, holder_note)`` when another process holds it past ``wait_seconds``.
    Raises ``OpsError`` naming every path and why when none can be opened.
    """
    problems = []
    for path in paths:
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            handle = open(path, "a+")
        except OSError as exc:
            problems.append("%s: %s" % (path, exc.strerror or exc))
            continue
        if not _flock(handle, wait_seconds):
            holder = read_lock_note(handle)
            handle.close()
            return None, path, holder
        try:
            handle.seek(0)
            handle.truncate()
            # Unbuffered, so a full disk fails here (ignored) and never later, in close().
            os.write(handle.fileno(), (json.dumps(note or {}) + "\n").encode("utf-8"))
        except OSError:
            pass  # the lock holds all the same, only the note is missing
        return handle, path, None
    raise OpsError("cannot open a lock file (%s); the job did not run. Check that the "
                   "directories exist and are writable" % "; ".join(problems))


def _flock(handle, wait_seconds) -> bool:
    deadline = time.monotonic() + max(0.0, float(wait_seconds or 0))
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def holder_overdue(note, now) -> float:
    """Seconds the lock holder has run past its timeout plus grace; 0 if it has not."""
    try:
        started, timeout = float(note["started"]), float(note["timeout"])
    except (KeyError, TypeError, ValueError):
        return 0.0  # no timeout (or an unreadable note): never judged stuck
    return max(0.0, now - (started + timeout + STUCK_GRACE_SECONDS))


# --------------------------------------------------------------------------- the command

def ping(url, log, what) -> bool:
    """GET ``url`` (dead-man switch); failures are logged without the URL and ignored."""
    import urllib.error  # lazily: most jobs have no ping URL, and every cron run pays for imports
    import urllib.request

    try:
        with urllib.request.build_opener().open(url, timeout=PING_TIMEOUT_SECONDS) as response:
            response.read(256)
        return True
    except urllib.error.HTTPError as exc:
        log.line("runbook-ops: dead-man ping (%s) failed: HTTP %d" % (what, exc.code))
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        log.line("runbook-ops: dead-man ping (%s) failed: %s"
                 % (what, getattr(reason, "strerror", None) or reason))
    return False


class _Output:
    """The read end of the job's pipe: lines into the log and the tail, read with deadlines."""

    def __init__(self, stream, log, tail):
        self.stream = stream
        self.fd = stream.fileno()
        self.log = log
        self.tail = tail
        self.pending = b""
        self.eof = False
        self.idle = 0.01

    def _emit(self, raw) -> None:
        text = raw.decode("utf-8", "replace").rstrip("\r\n")
        self.log.line(text)
        self.tail.append(text[:TAIL_LINE_CHARS])

    def _take(self, chunk) -> None:
        self.pending += chunk
        while b"\n" in self.pending:
            raw, self.pending = self.pending.split(b"\n", 1)
            self._emit(raw)
        if len(self.pending) > MAX_LINE_BYTES:
            self._emit(self.pending)
            self.pending = b""

    def read_until(self, deadline, done) -> bool:
        """Read until ``done()`` is true (returns True) or ``deadline`` passes (False)."""
        while not done():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            wait = min(POLL_SECONDS, left)
            if self.eof:  # nothing to read; wait for done() from 10 ms up to POLL_SECONDS
                time.sleep(min(wait, self.idle))
                self.idle = min(self.idle * 2, POLL_SECONDS)
                continue
            ready, _w, _x = select.select([self.fd], [], [], wait)
            if ready:
                chunk = os.read(self.fd, 65536)
                if chunk:
                    self._take(chunk)
                else:
                    self.eof = True
        return True

    def close(self) -> None:
        if self.pending:
            self._emit(self.pending)
            self.pending = b""
        self.stream.close()


def _signal_group(pgid, signum) -> bool:
    """Send ``signum`` to process group ``pgid``; False when the group is gone."""
    try:
        os.killpg(pgid, signum)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def _stop_group(proc, output, log) -> None:
    """SIGTERM the job's group, SIGKILL what is left after the grace, then stop reading.

    Whatever still holds the pipe after that left the group (``setsid``): the wrapper
    stops reading rather than wait for it, and says so.
    """
    def settled():  # the command is gone, and so is its output or its whole group
        return proc.poll() is not None and (output.eof or not _signal_group(proc.pid, 0))

    if _signal_group(proc.pid, signal.SIGTERM):
        output.read_until(time.monotonic() + KILL_GRACE_SECONDS, settled)
        _signal_group(proc.pid, signal.SIGKILL)
    output.read_until(time.monotonic() + READ_GRACE_SECONDS, lambda: output.eof)
    if not output.eof:
        log.line("runbook-ops: a process outside the job's process group (started with "
                 "setsid?) still holds its output; stopped reading it")


def _run_streaming(argv, log, tail, timeout, env=None):
    """Run ``argv``, stream its output into ``log`` and ``tail``; returns ``(rc, timed_out)``.

    The run ends when the command has exited and its output is closed. After
    ``timeout`` seconds the process group is stopped (``_stop_group``). A command that
    exits while processes it left behind keep its output open past ``READ_GRACE_SECONDS``
    has those processes stopped the same way, so nothing holds the lock forever.
    """
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    except OSError as exc:
        message = "runbook-ops: cannot run %s: %s" % (argv[0], exc.strerror or exc)
        log.line(message)
        tail.append(message)
        return NOT_FOUND_RC, False
    output = _Output(proc.stdout, log, tail)
    end = time.monotonic() + (timeout if timeout else 10.0 ** 9)
    exited = output.read_until(end, lambda: proc.poll() is not None)
    timed_out = not exited
    if timed_out:
        log.line("runbook-ops: timed out after %s s; stopping the process group"
                 % _seconds(timeout))
        _stop_group(proc, output, log)
    elif not output.read_until(time.monotonic() + READ_GRACE_SECONDS, lambda: output.eof):
        log.line("runbook-ops: the command exited but processes it started still hold its "
                 "output; stopping them")
        _stop_group(proc, output, log)
    output.close()
    try:
        rc = proc.wait(timeout=READ_GRACE_SECONDS)
    except subprocess.TimeoutExpired:  # unkillable (uninterruptible sleep): leave it
        rc = -signal.SIGKILL
    return (TIMEOUT_RC if timed_out else rc), timed_out


# --------------------------------------------------------------------------- the run

def state_for_run(runtime):
    """``(runtime, problem)``: ``runtime`` itself when its state_dir is writable, else a
    copy whose state_dir is the fallback, and one line saying what was wrong."""
    problem = probe_writable(runtime["state_dir"])
    if not problem:
        return runtime, ""
    return (dict(runtime, state_dir=runtime["fallback_state_dir"]),
            "cannot write the state directory %s (%s): state is kept in %s until it is "
            "writable (lost at reboot)" % (runtime["state_dir"], problem,
                                           runtime["fallback_state_dir"]))


def _alert_outcome(log, result, failed=True) -> None:
    if result.get("sent"):
        log.line("runbook-ops: alert %s %s sent (%s)" % (result["key"], result["level"],
                                                         result["reason"]))
    elif result.get("error"):
        log.line("runbook-ops: alert %s %s NOT delivered: %s" % (
            result["key"], result["level"], result["error"]))
    elif failed:
        log.line("runbook-ops: alert %s not sent: %s" % (result["key"], result["reason"]))


def report_storage(runtime, name, problems, log) -> dict:
    """Alert ``runbook-ops:storage`` (one key per host, so once per cooldown) about ``problems``.

    The alert state goes to the fallback state directory: the usual one is the problem.
    """
    text = "job %s: %s." % (name, "; ".join(problems))
    if "Read-only file system" in text:
        text += (" A read-only root filesystem usually means errors=remount-ro after disk "
                 "errors: check `findmnt /` and `dmesg`.")
    for problem in problems:
        log.line("runbook-ops: " + problem)
    result = notify(dict(runtime, state_dir=runtime["fallback_state_dir"]), STORAGE_KEY,
                    "critical", text)
    _alert_outcome(log, result)
    return result


def _storage_recovered(runtime, log) -> None:
    """Send the storage recovery once nothing is wrong any more (and an alert was sent)."""
    fallback = dict(runtime, state_dir=runtime["fallback_state_dir"])
    if os.path.exists(os.path.join(fallback["state_dir"], "alerts.json")):
        result = notify(fallback, STORAGE_KEY, "ok",
                        "the state directory %s and the job logs are writable again"
                        % runtime["state_dir"])
        _alert_outcome(log, result, failed=False)


def run_job(runtime, name, argv, *, timeout=None, wait_seconds=0.0, out=None,
            clock=time.time) -> dict:
    """Run one cron job under its lock; returns the run's record.

    The record is ``{"job", "started", "finished", "rc", "seconds", "timed_out",
    "skipped", "state_dir", "state_saved", "alert"}`` (``state_error`` when the record
    could not be saved), or for a run that found the lock held ``{"job", "skipped":
    True, "stuck", "holder", "lock", "rc"}`` (``alert`` when stuck). ``clock`` gives
    the wall time (tests inject it). Raises ``OpsError`` for a bad name, an empty
    command, a bad timeout or no usable lock directory (after alerting ``lock:NAME``);
    a failing command is a result, not an exception.
    """
    out = out or sys.stdout
    check_job_name(name)
    argv = list(argv)
    if not argv:
        raise OpsError("no command given; use: runbook-ops run --job %s -- COMMAND [ARGS...]"
                       % name)
    if timeout is not None and timeout <= 0:
        raise OpsError("--timeout must be a positive number of seconds, got %s" % timeout)
    runtime, state_problem = state_for_run(runtime)
    log = JobLog(os.path.join(runtime["log_dir"], name + ".log"), name)
    try:
        problems = [p for p in (state_problem, log.problem) if p]
        if problems:
            report_storage(runtime, name, problems, log)
        else:
            _storage_recovered(runtime, log)
        started = clock()
        note = {"pid": os.getpid(), "started": started, "timeout": timeout}
        try:
            handle, lock_path, holder = acquire_job_lock(lock_paths(runtime, name),
                                                         wait_seconds, note)
        except OpsError as exc:
            log.line("runbook-ops: " + exc.message)
            _alert_outcome(log, notify(runtime, "lock:" + name, "critical",
                                       "job %s did not run: %s" % (name, exc.message)))
            raise
        if handle is None:
            return _skipped(runtime, name, lock_path, holder, log, out, clock())
        ping_url = (job_settings(runtime, name).get("ping_url") or "").rstrip("/")
        try:
            record, tail = _run_locked(runtime, name, argv, timeout, log, started, ping_url,
                                       state_problem)
        finally:
            handle.close()
        late = [p for p in (record.get("state_error"), log.problem)
                if p and p not in problems]
        if late:
            report_storage(runtime, name, late, log)
        _report_result(runtime, name, record, tail, timeout, log)
        if ping_url:
            failed = record["rc"] != 0
            ping(ping_url + ("/fail" if failed else ""), log, "fail" if failed else "success")
        return record
    finally:
        log.close()


def _skipped(runtime, name, lock_path, holder, log, out, now) -> dict:
    """A run that found the lock held: log it; alert when the holder is overdue."""
    pid = holder.get("pid", "unknown")
    since = holder.get("started")
    message = "job %s is already running (pid %s%s); skipping" % (
        name, pid, (", since %s" % utc_stamp(since)) if isinstance(since, (int, float)) else "")
    log.line("runbook-ops: " + message)
    out.write(message + "\n")
    out.flush()
    record = {"job": name, "skipped": True, "stuck": False, "holder": holder, "rc": 0,
              "lock": lock_path}
    overdue = holder_overdue(holder, now)
    if overdue:
        text = ("job %s is stuck: the run started %s (pid %s) is %d s past its %s s timeout "
                "and still holds %s, so every later run is skipped. Look at it with "
                "`ps -o pid,etime,stat,cmd -s %s` and end it." % (
                    name, utc_stamp(holder["started"]), pid, overdue,
                    _seconds(holder["timeout"]), lock_path, pid))
        record.update(stuck=True, rc=1)
        record["alert"] = notify(runtime, "lock:" + name, "critical", text)
        _alert_outcome(log, record["alert"])
    return record


def _run_locked(runtime, name, argv, timeout, log, started, ping_url, state_problem):
    """Ping, run, record; returns ``(record, tail)``. Runs while the lock is held."""
    tail = collections.deque(maxlen=TAIL_LINES)
    log.line("runbook-ops: job %s started (pid %d): %s"
             % (name, os.getpid(), " ".join(shlex.quote(a) for a in argv)))
    if ping_url:
        ping(ping_url + "/start", log, "start")
    env = dict(os.environ)
    env[LOCKED_JOB_ENV] = name  # the command need not (and cannot) take this lock itself
    if state_problem:
        env[STATE_DIR_ENV] = runtime["state_dir"]
    rc, timed_out = _run_streaming(argv, log, tail, timeout, env)
    finished = time.time()
    seconds = round(finished - started, 3)
    log.line("runbook-ops: job %s %s (rc %d, %.1f s)"
             % (name, "timed out" if timed_out else ("failed" if rc else "finished"),
                rc, seconds))
    record = {"job": name, "started": utc_stamp(started), "finished": utc_stamp(finished),
              "rc": rc, "seconds": seconds, "timed_out": timed_out, "skipped": False,
              "state_dir": runtime["state_dir"]}
    path = os.path.join(runtime["state_dir"], "jobs", name + ".json")
    try:
        record["state_saved"] = write_json_atomic(
            path, {k: record[k] for k in ("job", "started", "finished", "rc", "seconds",
                                          "timed_out")})
        reason = "" if record["state_saved"] else "disk full or read-only"
    except OSError as exc:
        record["state_saved"] = False
        reason = exc.strerror or str(exc)
    if reason:
        record["state_error"] = "cannot record the run in %s (%s)" % (path, reason)
    return record, tail


def _report_result(runtime, name, record, tail, timeout, log) -> None:
    """Alert ``job:NAME`` on failure (recovery on success); recover ``lock:NAME``."""
    failed = record["rc"] != 0
    if failed:
        what = (("timed out after %s s" % _seconds(timeout)) if record["timed_out"]
                else ("failed with exit status %d" % record["rc"]))
        text = "job %s %s (%.0f s).\nLast output:\n%s" % (
            name, what, record["seconds"], "\n".join(tail) if tail else "(no output)")
        result = notify(runtime, "job:" + name, "critical", text)
    else:
        result = notify(runtime, "job:" + name, "ok", "job %s succeeds again" % name)
    record["alert"] = result
    _alert_outcome(log, result, failed)
    _alert_outcome(log, notify(runtime, "lock:" + name, "ok",
                               "job %s: the stuck run has ended, later runs are no longer "
                               "skipped" % name), False)

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cron wrapper: ``runbook-ops run --job NAME [--timeout S] [--wait S] -- COMMAND...``.

Flow of ``run_job``: take ``<state_dir>/locks/NAME.lock`` (``flock``, so two runs of a job
never overlap; the second waits up to ``--wait`` seconds, then says so and exits 0) ->
dead-man ping ``<ping_url>/start`` -> run the command in its own process group, each
output line appended to ``<log_dir>/NAME.log`` with a UTC timestamp -> kill the group on
``--timeout`` -> record ``{started, finished, rc, seconds}`` in ``<state_dir>/jobs/NAME.json``
-> alert ``job:NAME`` (critical with the output tail on failure, recovery on success)
-> ping ``<ping_url>`` or ``<ping_url>/fail``.

Why not ``runner.run_command``: it captures output until the command ends, but a job's
log must grow while the job runs (a job killed by the timeout, or by a reboot, still
leaves its output) and the timeout must kill the whole process group, not only the
direct child. Streaming and process-group handling are specific to this wrapper, so
they live here and nowhere else.
"""

from __future__ import annotations

import collections
import errno
import fcntl
import os
import shlex
import signal
import subprocess
import sys
import threading
import time

from .alerts import notify
from .errors import OpsError
from .runtime import JOB_NAME_PATTERN, job_settings
from .state import write_json_atomic

TAIL_LINES = 20
TAIL_LINE_CHARS = 300
KILL_GRACE_SECONDS = 10.0
PING_TIMEOUT_SECONDS = 10.0
TIMEOUT_RC = 124
NOT_FOUND_RC = 127


def utc_stamp(epoch=None) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` for ``epoch`` (now by default)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def check_job_name(name) -> str:
    """Return ``name`` if it is safe as a file name; raise ``OpsError`` otherwise."""
    if not isinstance(name, str) or not JOB_NAME_PATTERN.match(name):
        raise OpsError("job name %r is not valid; use letters, digits, '.', '_' and '-' "
                       "(it names /var/log/NAME.log and the lock file)" % (name,))
    return name


class JobLog:
    """Appends timestamped lines to a job's log; a failing disk never stops the job."""

    def __init__(self, path):
        self.path = path
        self.errors = 0
        try:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            self.handle = open(path, "ab")
        except OSError as exc:
            self.handle = None
            sys.stderr.write("runbook-ops: cannot open %s: %s\n" % (path, exc.strerror or exc))

    def line(self, text: str) -> None:
        if self.handle is None:
            return
        try:
            self.handle.write(("%s %s\n" % (utc_stamp(), text)).encode("utf-8", "replace"))
            self.handle.flush()
        except OSError:
            self.errors += 1

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError:
                self.errors += 1


def _lock_holder(handle) -> str:
    try:
        handle.seek(0)
        return handle.read().strip() or "unknown"
    except OSError:
        return "unknown"


def acquire_job_lock(lock_path, wait_seconds=0.0):
    """Open and ``flock`` ``lock_path``; returns ``(handle, None)`` or ``(None, holder_pid)``."""
    os.makedirs(os.path.dirname(lock_path), exist_ok=True)
    handle = open(lock_path, "a+")
    deadline = time.monotonic() + max(0.0, float(wait_seconds or 0))
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                handle.close()
                raise
            if time.monotonic() >= deadline:
                holder = _lock_holder(handle)
                handle.close()
                return None, holder
            time.sleep(0.1)
    try:
        handle.seek(0)
        handle.truncate()
        # Unbuffered, so a full disk fails here (ignored below) and never later, in close().
        os.write(handle.fileno(), b"%d\n" % os.getpid())
    except OSError:
        pass  # A full disk: the lock holds all the same, only the pid note is missing.
    return handle, None


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


def _kill_group(proc, log, timeout):
    """Timer target: SIGTERM the job's process group, SIGKILL after a grace period."""
    log.line("runbook-ops: timed out after %s s; stopping the process group" % timeout)
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + KILL_GRACE_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except OSError:
        pass


def _run_streaming(argv, log, tail, timeout):
    """Run ``argv``, stream its output into ``log`` and ``tail``; returns ``(rc, timed_out)``."""
    try:
        proc = subprocess.Popen(list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, start_new_session=True)
    except (FileNotFoundError, PermissionError) as exc:
        message = "runbook-ops: cannot run %s: %s" % (argv[0], exc.strerror or exc)
        log.line(message)
        tail.append(message)
        return NOT_FOUND_RC, False
    timer = None
    fired = threading.Event()
    if timeout:
        def expire():
            fired.set()
            _kill_group(proc, log, timeout)
        timer = threading.Timer(float(timeout), expire)
        timer.daemon = True
        timer.start()
    try:
        for raw in proc.stdout:
            text = raw.decode("utf-8", "replace").rstrip("\r\n")
            log.line(text)
            tail.append(text[:TAIL_LINE_CHARS])
        proc.stdout.close()
        rc = proc.wait()
    finally:
        if timer is not None:
            timer.cancel()
    if fired.is_set():
        # The pipe closed because the group was killed; make sure nothing is left.
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            pass
    return rc, fired.is_set()


def run_job(runtime, name, argv, *, timeout=None, wait_seconds=0.0, out=None) -> dict:
    """Run one cron job under the lock; returns the record (``skipped`` if already running).

    The record is ``{"job", "started", "finished", "rc", "seconds", "timed_out",
    "state_saved", "alert"}``. Raises ``OpsError`` for a bad name, an empty command or
    a bad timeout; a failing command is a result, not an exception.
    """
    out = out or sys.stdout
    check_job_name(name)
    argv = list(argv)
    if not argv:
        raise OpsError("no command given; use: runbook-ops run --job %s -- COMMAND [ARGS...]"
                       % name)
    if timeout is not None and timeout <= 0:
        raise OpsError("--timeout must be a positive number of seconds, got %s" % timeout)
    state_dir = runtime["state_dir"]
    try:
        handle, holder = acquire_job_lock(os.path.join(state_dir, "locks", name + ".lock"),
                                          wait_seconds)
    except OSError as exc:
        raise OpsError("cannot open the lock file for job %s under %s: %s; check that %s "
                       "exists and is writable" % (name, state_dir, exc.strerror or exc,
                                                   state_dir))
    if handle is None:
        out.write("job %s is already running (pid %s); skipping\n" % (name, holder))
        out.flush()
        return {"job": name, "skipped": True, "holder_pid": holder, "rc": 0}
    try:
        return _run_locked(runtime, name, argv, timeout)
    finally:
        handle.close()


def _run_locked(runtime, name, argv, timeout) -> dict:
    ping_url = (job_settings(runtime, name).get("ping_url") or "").rstrip("/")
    log = JobLog(os.path.join(runtime["log_dir"], name + ".log"))
    tail = collections.deque(maxlen=TAIL_LINES)
    started = time.time()
    log.line("runbook-ops: job %s started (pid %d): %s"
             % (name, os.getpid(), " ".join(shlex.quote(a) for a in argv)))
    if ping_url:
        ping(ping_url + "/start", log, "start")
    rc, timed_out = _run_streaming(argv, log, tail, timeout)
    finished = time.time()
    seconds = round(finished - started, 3)
    if timed_out:
        rc = TIMEOUT_RC
    failed = rc != 0
    log.line("runbook-ops: job %s %s (rc %d, %.1f s)"
             % (name, "timed out" if timed_out else ("failed" if failed else "finished"),
                rc, seconds))
    record = {"job": name, "started": utc_stamp(started), "finished": utc_stamp(finished),
              "rc": rc, "seconds": seconds, "timed_out": timed_out, "skipped": False}
    try:
        record["state_saved"] = write_json_atomic(
            os.path.join(runtime["state_dir"], "jobs", name + ".json"),
            {k: record[k] for k in ("job", "started", "finished", "rc", "seconds", "timed_out")})
    except OSError as exc:
        record["state_saved"] = False
        log.line("runbook-ops: cannot record the run in %s: %s"
                 % (runtime["state_dir"], exc.strerror or exc))
    if failed:
        what = ("timed out after %s s" % timeout) if timed_out else ("failed with exit status %d" % rc)
        text = "job %s %s (%.0f s).\nLast output:\n%s" % (
            name, what, seconds, "\n".join(tail) if tail else "(no output)")
        result = notify(runtime, "job:" + name, "critical", text)
    else:
        result = notify(runtime, "job:" + name, "ok", "job %s succeeds again" % name)
    record["alert"] = result
    if result.get("sent"):
        log.line("runbook-ops: alert %s sent (%s)" % (result["level"], result["reason"]))
    elif result.get("error"):
        log.line("runbook-ops: alert %s NOT delivered: %s" % (result["level"], result["error"]))
    elif failed:
        log.line("runbook-ops: alert not sent: %s" % result["reason"])
    if ping_url:
        ping(ping_url + ("/fail" if failed else ""), log, "fail" if failed else "success")
    log.close()
    return record

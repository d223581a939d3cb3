# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The cron wrapper: ``runbook-ops run --job NAME [--timeout S] [--wait S] -- COMMAND...``.

Flow of ``run_job``: probe ``<state_dir>`` (not writable: use ``<fallback_state_dir>``
for this run and its command, and alert ``runbook-ops:storage``; writable: merge what
an earlier run left in the fallback back into it) -> open ``<log_dir>/NAME.log`` (not
writable: its lines go to stderr, which the cron line sends to syslog) -> open
``<lock_dir>/NAME.lock`` in a directory only root can write (``private_dir.py``; else
``<state_dir>/locks``, alerting ``runbook-ops:locks``) and any lock file an older wrapper
may hold -> ``flock`` them, noting pid, boot and start in ours -> dead-man ping
``<ping_url>/start`` -> run the command in its own process group, each output line
appended to the log with a UTC timestamp -> stop the group on ``--timeout`` -> record
``{started, finished, rc, seconds, last_success}`` in ``<state_dir>/jobs/NAME.json`` (and,
with ``textfile_dir`` set, ``<textfile_dir>/runbook_ops_job_NAME.prom``: ``job_metrics.py``)
-> release the lock -> alert ``job:NAME`` (critical with the output tail on failure,
recovery on success) -> ping ``<ping_url>`` or ``<ping_url>/fail``.

A run that finds the lock held logs that it skipped; when the holder has outlived its
own timeout (plus ``STUCK_GRACE_SECONDS``, measured on the boot clock, so a clock step
neither hides nor invents a stuck run) it alerts ``lock:NAME`` and counts as failed.

Why not ``runner.run_command``: a job's log must grow while the job runs (a job killed
by the timeout, or by a reboot, still leaves its output), and the timeout must stop the
whole process group and then stop reading even when a process that left the group
(``setsid worker &``) still holds the pipe. The command is reaped only after the last
signal to its group: until then its pid, which is the group's id, cannot be reused, so
no other process group is ever signalled. That lives here and nowhere else.
"""

from __future__ import annotations

import collections
import errno
import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
import time

from .alerts import merge_state, notify, with_tail
from .cli_output import write_line
from .errors import OpsError
from .private_dir import open_private_file, private_dir_problem
from .runner import start_process
from .runtime import (DEFAULT_LOCK_DIR, LOCKED_JOB_ENV, STATE_DIR_ENV, job_name_problem,
                      job_settings, timeout_problem)
from .state import flock_until, read_json, write_json_atomic
from .timestamps import iso_z

TAIL_LINES = 20
TAIL_LINE_CHARS = 300
KILL_GRACE_SECONDS = 10.0  # SIGTERM -> SIGKILL
READ_GRACE_SECONDS = 2.0  # output still arriving after the command (or its group) ended
POLL_SECONDS = 0.5
GROUP_SCAN_SECONDS = 0.1  # how often the stop looks for processes left in the group
MAX_LINE_BYTES = 65536
PING_TIMEOUT_SECONDS = 10.0
PING_RETRY_PAUSES = (0.5, 1.0)  # between tries after a dropped connection or a 5xx
# A lock holder is stuck once it has run this long past its own timeout: the timeout's
# stop (KILL_GRACE + 2 x READ_GRACE) and the start ping (PING_TIMEOUT) fit well inside.
STUCK_GRACE_SECONDS = 60.0
TIMEOUT_RC = 124
# What a run leaves in <state_dir>/jobs/<job>.json: the schema the morning check reads
# (health.describe_job); started, finished and last_success (the start of the last run
# that exited 0, kept through failed runs) as timestamps.iso_z.
JOB_RECORD_KEYS = ("job", "started", "finished", "rc", "seconds", "timed_out", "interrupted", "last_error",
                   "last_success")
NOT_FOUND_RC = 127
STORAGE_KEY = "runbook-ops:storage"
LOCKS_KEY = "runbook-ops:locks"
# Where wrappers before this one took their locks, besides <state_dir>/locks: a job they
# still run must not start twice during an upgrade.
OLD_DEFAULT_LOCK_DIR = "/run/lock/runbook-ops"
BOOT_ID_PATH = "/proc/sys/kernel/random/boot_id"
# The lock note is overwritten in place at this fixed size (space-padded), never
# truncated: once the file has its block, a full /run cannot leave it empty.
NOTE_BYTES = 1024


def _seconds(value) -> str:
    return "%g" % float(value)


def probe_writable(directory) -> str:
    """``""`` when a file can be created and written in ``directory``, else the reason."""
    probe = os.path.join(directory, ".write-probe-%d" % os.getpid())
    fd = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
        os.write(fd, b"x")
        return ""
    except OSError as exc:
        return exc.strerror or str(exc)
    finally:
        if fd is not None:
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

    def line(self, text: str, syslog=False) -> None:
        """Append ``text`` to the log; also to stderr (syslog) when ``syslog`` is true."""
        if self.handle is not None:
            try:
                self.handle.write(("%s %s\n" % (iso_z(time.time()), text)).encode("utf-8", "replace"))
                self.handle.flush()
                if not syslog:
                    return
            except OSError as exc:
                if not self.problem:
                    self.problem = "cannot write %s: %s: its lines go to stderr (syslog)" % (
                        self.path, exc.strerror or exc)
        write_line(sys.stderr, "%s %s: %s\n" % (iso_z(time.time()), self.name, text))

    def close(self) -> None:
        if self.handle is not None:
            try:
                self.handle.close()
            except OSError:
                pass


# --------------------------------------------------------------------------- the lock

def boot_seconds() -> float:
    """Seconds since boot, suspend included: the clock a stuck run is judged by."""
    return time.clock_gettime(time.CLOCK_BOOTTIME)


def boot_id() -> str:
    """This boot's id (``""`` when the kernel does not say)."""
    try:
        with open(BOOT_ID_PATH, encoding="ascii") as handle:
            return handle.read().strip()
    except OSError:
        return ""


def process_start(pid):
    """When process ``pid`` started, in clock ticks after boot (``/proc/PID/stat``); None
    when it does not run. Together with the boot id it tells a pid from its reuse."""
    try:
        with open("/proc/%d/stat" % int(pid), "rb") as handle:
            data = handle.read()
        return int(data[data.rindex(b")") + 2:].split()[19])
    except (OSError, ValueError, IndexError, TypeError):
        return None


def lock_note(started, started_boot, timeout) -> dict:
    """What the lock holder writes into its lock file for runs that find it held."""
    return {"pid": os.getpid(), "pid_start": process_start(os.getpid()), "boot_id": boot_id(),
            "started": started, "started_boot": started_boot, "timeout": timeout}


def read_lock_note(fd) -> dict:
    """The holder's note (``lock_note``, or an older wrapper's); ``{}`` when unreadable."""
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        return {}
    try:
        note = json.loads(text)
    except ValueError:
        note = None
    if isinstance(note, dict):
        return note
    return {"pid": text} if text else {}  # the oldest wrappers noted a bare pid


def lock_holder_pid(fd):
    """The pid holding a ``flock`` on the file open as ``fd``, from ``/proc/locks``
    (matched by device and inode); None when it cannot be told."""
    info = os.fstat(fd)
    wanted = (os.major(info.st_dev), os.minor(info.st_dev), info.st_ino)
    try:
        with open("/proc/locks", encoding="ascii") as handle:
            lines = handle.read().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if len(fields) < 6 or fields[1] != "FLOCK":  # "N: -> FLOCK ..." is a waiter
            continue
        try:
            major, minor, inode = fields[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == wanted:
                return int(fields[4])
        except ValueError:
            continue
    return None


def inferred_note(fd, now, boot_now, timeout):
    """A note for a holder whose own note is empty or unreadable (it could not be
    written): its pid from ``/proc/locks``, its start from ``/proc/PID/stat``, judged
    against a generous cap (twice this run's ``timeout``). ``{}`` when none is found."""
    pid = lock_holder_pid(fd)
    start = process_start(pid) if pid and pid > 0 else None
    if start is None:
        return {}
    started_boot = start / float(os.sysconf("SC_CLK_TCK"))
    note = {"pid": pid, "pid_start": start, "boot_id": boot_id(),
            "started_boot": started_boot, "started": now - (boot_now - started_boot),
            "inferred": True}
    if timeout:
        note["timeout"] = 2 * float(timeout)
    return note


def holder_overdue(note, now, boot_now) -> float:
    """Seconds the lock holder has run past its timeout plus grace; 0 if it has not.

    How long it has held the lock: a note with a boot id is judged on the boot clock
    (immune to clock steps), and only when it was written in this boot; an older
    wrapper's note by the wall clock. A note that cannot tell is never judged stuck.
    """
    try:
        timeout = float(note["timeout"])
    except (KeyError, TypeError, ValueError):
        return 0.0  # no timeout (or an unreadable note): never judged stuck
    try:
        if note.get("boot_id"):
            if note["boot_id"] != boot_id():
                return 0.0
            elapsed = boot_now - float(note["started_boot"])
        else:
            elapsed = now - float(note["started"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    return max(0.0, elapsed - timeout - STUCK_GRACE_SECONDS)


class JobLock:
    """A job's lock file, and the lock files older wrappers may hold for the same job.

    ``JobLock(runtime, name, main_state_dir)`` opens (never follows a link, never
    truncates through a path) ``<lock_dir>/NAME.lock`` when the lock directory is private
    (``private_dir``), else ``<state_dir>/locks/NAME.lock``; ``problems`` then says why
    the lock directory was not used. Raises ``OpsError`` when neither can be opened.
    It also opens, read-only, ``<main_state_dir>/locks/NAME.lock`` and the old default
    ``/run/lock/runbook-ops/NAME.lock`` when they exist in a private directory: a wrapper
    from before the upgrade holds those. ``acquire`` flocks them all; ``close`` releases.
    """

    def __init__(self, runtime, name, main_state_dir):
        self.fd, self.path, self.problems = None, "", []
        for directory in (runtime["lock_dir"], os.path.join(runtime["state_dir"], "locks")):
            path = os.path.join(directory, name + ".lock")
            fd, problem = open_private_file(path, create=True)
            if fd is not None:
                self.fd, self.path = fd, path
                break
            self.problems.append(problem or "%s cannot be opened" % path)
        if self.fd is None:
            raise OpsError("cannot open a lock file (%s); the job did not run. Check that the "
                           "directories exist, belong to root and only root can write them"
                           % "; ".join(self.problems))
        self.held = [(self.fd, self.path)]
        seen = {self._identity(self.fd)}
        old = [os.path.join(main_state_dir, "locks")]
        if runtime["lock_dir"] == DEFAULT_LOCK_DIR:
            old.append(OLD_DEFAULT_LOCK_DIR)
        for directory in old:
            path = os.path.join(directory, name + ".lock")
            fd, _problem = open_private_file(path, create=False)
            if fd is None:
                continue
            if self._identity(fd) in seen:
                os.close(fd)
                continue
            seen.add(self._identity(fd))
            self.held.append((fd, path))

    @staticmethod
    def _identity(fd):
        info = os.fstat(fd)
        return info.st_dev, info.st_ino

    def acquire(self, wait_seconds=0.0):
        """``None`` once every lock file is held, else ``(holder_note, path, fd)`` of the
        first one another process still holds after ``wait_seconds``."""
        deadline = time.monotonic() + max(0.0, float(wait_seconds or 0))
        for fd, path in self.held:
            if not flock_until(fd, deadline):
                return read_lock_note(fd), path, fd
        return None

    def write_note(self, note) -> str:
        """Overwrite the note in our lock file in place (through its descriptor, at
        ``NOTE_BYTES``, space-padded, never truncated); ``""`` or why it failed (the
        lock holds all the same; a skipped run then finds the holder in /proc/locks)."""
        data = (json.dumps(note) + "\n").encode("utf-8").ljust(NOTE_BYTES)
        try:
            if os.pwrite(self.fd, data, 0) == len(data):
                return ""
            problem = "short write"
        except OSError as exc:
            problem = exc.strerror or str(exc)
        return "cannot write the lock note in %s: %s" % (self.path, problem)

    def close(self) -> None:
        for fd, _path in self.held:
            os.close(fd)
        self.held = []


# --------------------------------------------------------------------------- the command

def ping(url, log, what) -> bool:
    """GET ``url`` (dead-man switch) within ``PING_TIMEOUT_SECONDS`` in all; a dropped
    connection or a 5xx is tried again (as ``curl --retry`` does) while time is left.
    Failures are logged without the URL and ignored: a ping never stops or fails a job."""
    import http.client  # lazily: most jobs have no ping URL, and every cron run pays for imports

    deadline = time.monotonic() + PING_TIMEOUT_SECONDS
    for pause in PING_RETRY_PAUSES + (None,):
        problem = _ping_once(url, deadline - time.monotonic())
        transient = isinstance(problem, (ConnectionResetError, ConnectionAbortedError,
                                         http.client.RemoteDisconnected)) \
            or (isinstance(problem, int) and problem >= 500)
        if problem is None or not transient or pause is None \
                or time.monotonic() + pause >= deadline:
            break
        time.sleep(pause)
    if problem is None:
        return True
    log.line("runbook-ops: dead-man ping (%s) failed: %s" % (what, _ping_problem_text(problem)))
    return False


def _ping_once(url, seconds):
    """None when ``url`` answered 2xx/3xx within ``seconds``; else the HTTP status (int)
    or the exception that ended the exchange."""
    import http.client
    import urllib.error

    from .http_deadline import deadline_opener

    try:
        with deadline_opener(seconds) as opener:
            with opener.open(url, timeout=seconds) as response:
                response.read(256)
        return None
    except urllib.error.HTTPError as exc:
        return exc.code
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", None)
        return reason if isinstance(reason, BaseException) else exc


def _ping_problem_text(problem) -> str:
    """One line for the log, never the URL."""
    import http.client

    if isinstance(problem, int):
        return "HTTP %d" % problem
    if isinstance(problem, http.client.HTTPException) \
            and not isinstance(problem, http.client.RemoteDisconnected):
        return "not an HTTP answer (%s)" % type(problem).__name__  # it answers, but not in HTTP
    return str(getattr(problem, "strerror", None) or getattr(problem, "reason", None) or problem)


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

    def read_until(self, deadline, done, interrupt=None) -> bool:
        """Read until ``done()`` is true (returns True), or ``deadline`` passes or
        ``interrupt`` (an ``Interrupt``) has caught a signal (False)."""
        while not done():
            left = deadline - time.monotonic()
            if left <= 0 or (interrupt is not None and interrupt.signum):
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


class Interrupt:
    """SIGTERM, SIGINT and SIGHUP while a job runs (systemd stopping cron, an admin's
    ``kill``, a closed terminal): the handler only notes the signal; the read loop sees
    it within ``POLL_SECONDS`` and the run stops its command as on a timeout, records
    the run and releases the lock. Handlers are installed only in the main thread."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)

    def __init__(self):
        self.signum = 0
        self.stopped = False  # the command was stopped (or not started) for the signal
        self.saved = {}

    def _note(self, signum, _frame) -> None:
        self.signum = self.signum or signum

    @property
    def name(self) -> str:
        return signal.Signals(self.signum).name if self.signum else ""

    def __enter__(self):
        for signum in self.SIGNALS:
            try:
                self.saved[signum] = signal.signal(signum, self._note)
            except ValueError:  # not the main thread (an embedding program, tests)
                break
        return self

    def __exit__(self, *exc_info):
        for signum, handler in self.saved.items():
            signal.signal(signum, handler)
        self.saved = {}


def has_exited(pid) -> bool:
    """Whether our child ``pid`` has exited, without reaping it (``WNOWAIT``): until it is
    reaped its pid, which is its process group's id, cannot go to another process."""
    try:
        info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    except ChildProcessError:
        return True
    return info is not None and info.si_pid != 0


def job_groups(leader):
    """The process groups of the job started as ``leader`` (its session and group id)
    that have a process other than ``leader``: its own group, and the groups its
    commands made in its session (GNU ``timeout``, ``set -m``, ``make``), read from
    ``/proc/PID/stat`` (fields 5 and 6); ``None`` when ``/proc`` cannot be read.

    ``killpg(pgid, 0)`` cannot tell: it succeeds while the unreaped leader is there.
    """
    try:
        names = os.listdir("/proc")
    except OSError:
        return None  # cannot look: assume someone is left, the grace period decides
    groups = set()
    for name in names:
        if not name.isdigit() or int(name) == leader:
            continue
        try:
            with open("/proc/%s/stat" % name, "rb") as handle:
                data = handle.read()
            fields = data[data.rindex(b")") + 2:].split()
            pgid, session = int(fields[2]), int(fields[3])
        except (OSError, ValueError, IndexError):
            continue
        if pgid == leader or session == leader:
            groups.add(pgid)
    return groups


def _signal_group(pgid, signum) -> None:
    """Send ``signum`` to process group ``pgid`` (its leader is not reaped yet, so the id
    is still ours); a group already gone is fine."""
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _signal_job(leader, signum) -> None:
    """Send ``signum`` to the job's group and to every other group in its session."""
    _signal_group(leader, signum)
    for pgid in sorted(job_groups(leader) or ()):
        if pgid != leader:
            _signal_group(pgid, signum)


def _stop_group(proc, output, log) -> None:
    """SIGTERM the job's group and the other groups of its session, SIGKILL what is left
    after the grace, then stop reading.

    Whatever still holds the pipe after that left the session (``setsid``): the wrapper
    stops reading rather than wait for it, and says so.
    """
    scanned = {"at": float("-inf"), "others": True}

    def others():
        if time.monotonic() - scanned["at"] >= GROUP_SCAN_SECONDS:
            groups = job_groups(proc.pid)
            scanned.update(at=time.monotonic(), others=groups is None or bool(groups))
        return scanned["others"]

    def settled():  # the command is gone, and so is the rest of its group and session
        return has_exited(proc.pid) and not others()

    _signal_job(proc.pid, signal.SIGTERM)
    output.read_until(time.monotonic() + KILL_GRACE_SECONDS, settled)
    _signal_job(proc.pid, signal.SIGKILL)
    output.read_until(time.monotonic() + READ_GRACE_SECONDS,
                      lambda: output.eof and not others())
    if not output.eof:
        log.line("runbook-ops: a process outside the job's process group (started with "
                 "setsid?) still holds its output; stopped reading it")


def _run_streaming(argv, log, tail, timeout, env, interrupt):
    """Run ``argv``, stream its output into ``log`` and ``tail``; returns ``(rc, timed_out)``.

    The run ends when the command has exited and its output is closed. After
    ``timeout`` seconds, or once ``interrupt`` caught a signal (rc 128 + its number),
    the process group is stopped (``_stop_group``). A command that
    exits while processes it left behind keep its output open past ``READ_GRACE_SECONDS``
    has those processes stopped the same way, so nothing holds the lock forever. The
    command is reaped last, after every signal to its group.
    """
    if interrupt.signum:
        log.line("runbook-ops: interrupted by %s before the command started" % interrupt.name)
        interrupt.stopped = True
        return 128 + interrupt.signum, False
    try:
        proc = start_process(argv, env=env)
    except OSError as exc:
        message = "runbook-ops: cannot run %s: %s" % (argv[0], exc.strerror or exc)
        log.line(message)
        tail.append(message)
        return NOT_FOUND_RC, False
    output = _Output(proc.stdout, log, tail)
    end = time.monotonic() + (timeout if timeout else 10.0 ** 9)
    exited = output.read_until(end, lambda: has_exited(proc.pid), interrupt)
    timed_out = not exited and not interrupt.signum
    if interrupt.signum and not exited:
        log.line("runbook-ops: interrupted by %s; stopping the process group" % interrupt.name)
        interrupt.stopped = True
        _stop_group(proc, output, log)
    elif timed_out:
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
    if interrupt.stopped:
        return 128 + interrupt.signum, False
    return (TIMEOUT_RC if timed_out else rc), timed_out


# --------------------------------------------------------------------------- state

def state_for_run(runtime):
    """``(runtime, problem)``: ``runtime`` itself when its state_dir is writable, else a
    copy whose state_dir is the fallback, and one line saying what was wrong.

    The fallback is used only when it is a private directory (``private_dir``); when it
    is not, the run keeps the unwritable state directory (alerts still go out, but
    nothing is recorded, so they repeat every run) and the line says why.
    """
    problem = probe_writable(runtime["state_dir"])
    if not problem:
        return runtime, ""
    fallback = runtime["fallback_state_dir"]
    unsafe = private_dir_problem(fallback, create=True)
    if unsafe:
        return runtime, ("cannot write the state directory %s (%s), and the fallback cannot "
                         "be used (%s): nothing is recorded, so alerts repeat every run"
                         % (runtime["state_dir"], problem, unsafe))
    return (dict(runtime, state_dir=fallback),
            "cannot write the state directory %s (%s): state is kept in %s until it is "
            "writable (lost at reboot)" % (runtime["state_dir"], problem, fallback))


def _merge_job_records(state_dir, fallback) -> int:
    """Move ``<fallback>/jobs/NAME.json`` into ``<state_dir>/jobs`` where newer; the count."""
    jobs_dir = os.path.join(fallback, "jobs")
    try:
        names = sorted(n for n in os.listdir(jobs_dir) if n.endswith(".json"))
    except OSError:
        return 0
    moved = 0
    for name in names:
        theirs = read_json(os.path.join(jobs_dir, name))
        target = os.path.join(state_dir, "jobs", name)
        ours = read_json(target)
        if isinstance(theirs, dict) and not (isinstance(ours, dict) and str(
                ours.get("finished", "")) >= str(theirs.get("finished", ""))):
            if not write_json_atomic(target, theirs):
                raise OSError(errno.EROFS, "disk full or read-only", target)
            moved += 1
        os.unlink(os.path.join(jobs_dir, name))
    return moved


def merge_fallback_state(runtime, log) -> None:
    """Bring back what runs recorded in the fallback while the state directory was not
    writable: alert state (so the recoveries of alerts sent then go out) and job
    records. Costs one ``stat`` when there is nothing to merge."""
    fallback = runtime["fallback_state_dir"]
    if not os.path.exists(os.path.join(fallback, "alerts.json")) and not os.path.exists(
            os.path.join(fallback, "jobs")):
        return
    unsafe = private_dir_problem(fallback)
    if unsafe:
        log.line("runbook-ops: state in %s not merged back: %s" % (fallback, unsafe))
        return
    try:
        keys = merge_state(runtime["state_dir"], fallback)
        records = _merge_job_records(runtime["state_dir"], fallback)
    except OSError as exc:
        log.line("runbook-ops: state in %s not merged back into %s yet: %s"
                 % (fallback, runtime["state_dir"], exc.strerror or exc))
        return
    log.line("runbook-ops: the state kept in %s while %s could not be written is merged "
             "back (%d alert keys, %d job records)"
             % (fallback, runtime["state_dir"], keys, records))


# --------------------------------------------------------------------------- alerts

def _alert(runtime, key, level, text, log) -> dict:
    """``notify`` of ``key``, and log what became of the alert; one that should have gone
    out and did not (not delivered, Telegram not configured) also goes to stderr, so to
    syslog. A recovery (``ok``) is sent only when its alert went out."""
    result = notify(runtime, key, level, text)
    if result.get("sent"):
        log.line("runbook-ops: alert %s %s sent (%s)" % (result["key"], result["level"],
                                                         result["reason"]))
    elif result.get("error"):
        log.line("runbook-ops: alert %s %s NOT delivered: %s" % (
            result["key"], result["level"], result["error"]), syslog=True)
    elif result.get("configured") is False:
        log.line("runbook-ops: alert %s %s not sent: %s" % (
            result["key"], result["level"], result["reason"]), syslog=True)
    elif level != "ok":
        log.line("runbook-ops: alert %s not sent: %s" % (result["key"], result["reason"]))
    return result


def report_storage(runtime, name, problems, log) -> dict:
    """Alert ``runbook-ops:storage`` (one key per host, so once per cooldown) about ``problems``.

    The alert state goes to the run's state directory: the fallback when the usual one
    is the problem (merged back once it is writable, so the recovery follows).
    """
    text = "job %s: %s." % (name, "; ".join(problems))
    if "Read-only file system" in text:
        text += (" A read-only root filesystem usually means errors=remount-ro after disk "
                 "errors: check `findmnt /` and `dmesg`.")
    for problem in problems:
        log.line("runbook-ops: " + problem)
    return _alert(runtime, STORAGE_KEY, "critical", text, log)


def report_lock_dir(runtime, name, lock, log) -> None:
    """Alert ``runbook-ops:locks`` when the lock directory was not private (else recover)."""
    directory = runtime["lock_dir"]
    if not lock.problems:
        _alert(runtime, LOCKS_KEY, "ok", "the lock directory %s is private again" % directory, log)
        return
    text = ("job %s: the lock directory %s cannot be used: %s. The job's lock is taken in %s "
            "instead. Only root may own or write it: if you did not make it so, another user "
            "may be trying to hold the jobs' locks or to make root write through a link "
            "there." % (name, directory, lock.problems[0], os.path.dirname(lock.path)))
    log.line("runbook-ops: lock directory %s cannot be used: %s" % (directory, lock.problems[0]))
    _alert(runtime, LOCKS_KEY, "critical", text, log)


# --------------------------------------------------------------------------- the run

def run_job(runtime, name, argv, *, timeout=None, wait_seconds=0.0, out=None,
            clock=time.time, boot_clock=boot_seconds) -> dict:
    """Run one cron job under its lock; returns the run's record.

    The record is ``{"job", "started", "finished", "rc", "seconds", "timed_out",
    "skipped", "state_dir", "state_saved", "alert"}`` and ``last_success`` when known
    (``state_error`` when the record could not be saved, ``metrics_error`` when the
    metrics could not be written: both alert ``runbook-ops:storage``), or for a run that
    found the lock held ``{"job", "skipped": True, "stuck", "holder", "lock", "rc"}``
    (``alert`` when stuck). ``clock`` gives
    the wall time and ``boot_clock`` the seconds since boot (tests inject them). Raises
    ``OpsError`` for a bad name, an empty command, a bad timeout or no usable lock
    file (after alerting ``lock:NAME``); a failing command is a result, not an exception.
    """
    out = out or sys.stdout
    problem = job_name_problem(name, "--job")
    if problem:
        raise OpsError(problem)
    argv = list(argv)
    if not argv:
        raise OpsError("no command given; use: runbook-ops run --job %s -- COMMAND [ARGS...]"
                       % name)
    if timeout is not None and timeout_problem(timeout, "--timeout"):
        raise OpsError(timeout_problem(timeout, "--timeout"))
    main_state_dir = runtime["state_dir"]
    runtime, state_problem = state_for_run(runtime)
    log = JobLog(os.path.join(runtime["log_dir"], name + ".log"), name)
    try:
        if not state_problem:
            merge_fallback_state(runtime, log)
        problems = [p for p in (state_problem, log.problem, textfile_problem(runtime)) if p]
        if problems:
            report_storage(runtime, name, problems, log)
        else:
            _alert(runtime, STORAGE_KEY, "ok", "the state directory %s and the job logs are "
                   "writable again" % runtime["state_dir"], log)
        lock = _open_lock(runtime, name, main_state_dir, log)
        try:
            report_lock_dir(runtime, name, lock, log)
            held = lock.acquire(wait_seconds)
            if held is not None:
                return _skipped(runtime, name, held, log, out, clock(), boot_clock(), timeout)
            started = clock()
            note_problem = lock.write_note(lock_note(started, boot_clock(), timeout))
            if note_problem:
                report_storage(runtime, name, [note_problem + " (later runs find this run "
                                               "through /proc/locks)"], log)
            ping_url = (job_settings(runtime, name).get("ping_url") or "").rstrip("/")
            with Interrupt() as interrupt:
                record, tail = _run_locked(runtime, name, argv, timeout, log, started,
                                           ping_url, state_problem, interrupt)
        finally:
            lock.close()
        late = [p for p in (record.get("state_error"), record.get("metrics_error"), log.problem)
                if p and p not in problems]
        if late:
            report_storage(runtime, name, late, log)
        if record.get("interrupted"):  # a shutdown: recorded and logged, no alert or ping
            return record
        _report_result(runtime, name, record, tail, timeout, log)
        if ping_url:
            failed = record["rc"] != 0
            ping(ping_url + ("/fail" if failed else ""), log, "fail" if failed else "success")
        return record
    finally:
        log.close()


def _open_lock(runtime, name, main_state_dir, log):
    """``JobLock`` for the run; when none can be opened, alert ``lock:NAME`` and raise."""
    try:
        return JobLock(runtime, name, main_state_dir)
    except OpsError as exc:
        log.line("runbook-ops: " + exc.message)
        _alert(runtime, "lock:" + name, "critical",
               "job %s did not run: %s" % (name, exc.message), log)
        raise


def _skipped(runtime, name, held, log, out, now, boot_now, timeout) -> dict:
    """A run that found the lock held: alert when the holder is overdue, then log it.

    A holder whose note is empty or unreadable is found through ``/proc/locks``
    (``inferred_note``). The alert goes first: stdout is a pipe to logger, which may be gone.
    """
    holder, lock_path, fd = held
    if not str(holder.get("pid", "")).isdigit():  # empty or unreadable: not written
        holder = inferred_note(fd, now, boot_now, timeout) or holder
    pid = holder.get("pid", "unknown")
    since = holder.get("started")
    message = "job %s is already running (pid %s%s); skipping" % (
        name, pid, (", since %s" % iso_z(since)) if isinstance(since, (int, float)) else "")
    record = {"job": name, "skipped": True, "stuck": False, "holder": holder, "rc": 0,
              "lock": lock_path}
    overdue = holder_overdue(holder, now, boot_now)
    if overdue:
        alive = holder.get("pid_start") is None or process_start(pid) == holder["pid_start"]
        look = ("`ps -o pid,etime,stat,cmd -s %s`" % pid) if alive else (
            "`fuser -v %s` (pid %s no longer runs: a process that inherited the lock holds it)"
            % (lock_path, pid))
        limit = ("%s s timeout" % _seconds(holder["timeout"])) if not holder.get("inferred") \
            else ("%s s (twice the timeout; its lock note is empty, so it was found through "
                  "/proc/locks and judged by its process start)" % _seconds(holder["timeout"]))
        text = ("job %s is stuck: the run started %s (pid %s) is %d s past its %s "
                "and still holds %s, so every later run is skipped. Look at it with %s and "
                "end it." % (name, iso_z(since) if isinstance(since, (int, float))
                             else "at an unknown time", pid, overdue, limit, lock_path, look))
        record.update(stuck=True, rc=1)
        record["alert"] = _alert(runtime, "lock:" + name, "critical", text, log)
    log.line("runbook-ops: " + message)
    write_line(out, message + "\n")
    return record


def _run_locked(runtime, name, argv, timeout, log, started, ping_url, state_problem,
                interrupt):
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
    rc, timed_out = _run_streaming(argv, log, tail, timeout, env, interrupt)
    finished = time.time()
    seconds = round(finished - started, 3)
    how = "timed out" if timed_out else ("failed" if rc else "finished")
    if interrupt.stopped:
        how = "interrupted by %s" % interrupt.name
    log.line("runbook-ops: job %s %s (rc %d, %.1f s)" % (name, how, rc, seconds))
    record = {"job": name, "started": iso_z(started), "finished": iso_z(finished),
              "rc": rc, "seconds": seconds, "timed_out": timed_out, "skipped": False,
              "state_dir": runtime["state_dir"]}
    if interrupt.stopped:
        record["interrupted"] = interrupt.name
    if rc:
        record["last_error"] = last_error_line(tail)
    _record_run(runtime, record)
    return record, tail


def last_success(previous):
    """When the last run that exited 0 started, from the job's record before this run
    (its ``last_success``; a record of an older wrapper: its own start when it succeeded);
    ``None`` when no record tells."""
    if not isinstance(previous, dict):
        return None
    return previous.get("last_success") or (previous.get("started") if previous.get("rc") == 0 else None)


def _record_run(runtime, record) -> None:
    """Save ``record`` in ``<state_dir>/jobs/NAME.json`` (``state_error`` when it cannot be)
    with its ``last_success``; then, with ``textfile_dir`` set, the job's metrics
    (``metrics_error`` when they cannot be written; the old file stays then)."""
    path = os.path.join(runtime["state_dir"], "jobs", record["job"] + ".json")
    success = record["started"] if record["rc"] == 0 else last_success(read_json(path))
    if success:
        record["last_success"] = success
    try:
        record["state_saved"] = write_json_atomic(path, {k: record[k] for k in JOB_RECORD_KEYS if k in record})
        reason = "" if record["state_saved"] else "disk full or read-only"
    except OSError as exc:
        record["state_saved"] = False
        reason = exc.strerror or str(exc)
    if reason:
        record["state_error"] = "cannot record the run in %s (%s)" % (path, reason)
    if runtime.get("textfile_dir"):
        from .job_metrics import write_job_metrics  # lazily: most hosts have no textfile directory

        problem = write_job_metrics(runtime["textfile_dir"], record)
        if problem:
            record["metrics_error"] = "%s (the metrics of job %s are stale)" % (problem, record["job"])


def textfile_problem(runtime) -> str:
    """Why the metrics directory (``textfile_dir``) cannot be written; ``""`` when it can
    or none is set. Checked before the run, so a lasting problem is not recovered at the
    start of every run and alerted again at its end."""
    directory = runtime.get("textfile_dir")
    problem = probe_writable(directory) if directory else ""
    return "cannot write the metrics directory %s (%s)" % (directory, problem) if problem else ""


ERROR_LINE = re.compile(r"error|fail|fatal|denied|refus|cannot|can't|unable|timed out|"
                        r"traceback|exception|critical|not found|no such", re.IGNORECASE)


def last_error_line(tail) -> str:
    """The line of a failed run's output that says why: the last one that reads like an
    error (``ERROR_LINE``), else the last line; ``""`` without output. The wrapper's own
    timeout notice counts too. Kept in the job's record for the morning check."""
    lines = [line.strip() for line in tail if line.strip()]
    for line in reversed(lines):
        if ERROR_LINE.search(line):
            return line
    return lines[-1] if lines else ""


def _report_result(runtime, name, record, tail, timeout, log) -> None:
    """Alert ``job:NAME`` on failure (recovery on success); recover ``lock:NAME``."""
    level, text = "ok", "job %s succeeds again" % name
    if record["rc"] != 0:
        what = (("timed out after %s s" % _seconds(timeout)) if record["timed_out"]
                else ("failed with exit status %d" % record["rc"]))
        level = "critical"
        text = with_tail(level, runtime["host_label"], "job %s %s (%.0f s).\nLast output:"
                         % (name, what, record["seconds"]), list(tail) or ["(no output)"])
    record["alert"] = _alert(runtime, "job:" + name, level, text, log)
    _alert(runtime, "lock:" + name, "ok", "job %s: the stuck run has ended, later runs are no "
           "longer skipped" % name, log)

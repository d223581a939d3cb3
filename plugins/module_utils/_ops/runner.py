# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The single gateway through which the core runs external commands.

Every subprocess of runbook.ops goes through ``run_command`` (or, for the cron
wrapper's streaming run, ``start_process``), so timeouts, the environment and error
wording are handled in one place. Secrets never travel in
``argv``: pass them through ``env`` or ``stdin_data``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from .errors import OpsError


class CommandResult:
    """What a finished command left: exit status, output, wall time."""

    __slots__ = ("argv", "rc", "stdout", "stderr", "seconds", "timed_out")

    def __init__(self, argv, rc, stdout, stderr, seconds, timed_out=False):
        self.argv = list(argv)
        self.rc = rc
        self.stdout = stdout
        self.stderr = stderr
        self.seconds = seconds
        self.timed_out = timed_out

    @property
    def ok(self) -> bool:
        return self.rc == 0 and not self.timed_out


# After a timeout, how long the output of a killed process group is still read: a
# process that left the group (setsid) may hold the pipe open for ever.
GROUP_READ_GRACE_SECONDS = 2


def run_command(argv, *, timeout=None, env=None, stdin_data=None, cwd=None, check=False,
                merge_env=True, text=True, kill_group=False):
    """Run ``argv`` (a list, never a shell string) and return a ``CommandResult``.

    ``env`` adds to (or, with ``merge_env=False``, replaces) the current environment.
    ``check=True`` raises ``OpsError`` naming the command and its exit status when it
    fails. A missing executable always raises ``OpsError``. ``kill_group=True`` runs the
    command in its own session and, at ``timeout``, kills its whole process group (a
    user's ``sh -c 'psql ...'`` leaves no hung ``psql`` behind), then reads what it wrote
    for at most ``GROUP_READ_GRACE_SECONDS``.
    """
    if isinstance(argv, str):
        raise TypeError("run_command takes a list of arguments, not a shell string")
    full_env = None
    if env is not None:
        full_env = dict(os.environ) if merge_env else {}
        full_env.update(env)
    if kill_group:
        return _run_in_group(argv, timeout, full_env, stdin_data, cwd, text, check)
    started = time.monotonic()
    try:
        # This is the core's one gateway to subprocesses, and the core also runs on hosts
        # without Ansible (the runbook-ops command), where AnsibleModule.run_command is not.
        proc = subprocess.run(  # pylint: disable=ansible-bad-function
            list(argv),
            input=stdin_data,
            capture_output=True,
            timeout=timeout,
            env=full_env,
            cwd=cwd,
            text=text,
            check=False,
        )
    except FileNotFoundError:
        raise OpsError("command not found: %s; install it or fix PATH" % argv[0])
    except subprocess.TimeoutExpired as exc:
        result = CommandResult(argv, -1, exc.stdout or ("" if text else b""),
                               exc.stderr or ("" if text else b""),
                               time.monotonic() - started, timed_out=True)
        if check:
            raise OpsError("%s did not finish within %s s" % (argv[0], timeout))
        return result
    result = CommandResult(argv, proc.returncode, proc.stdout, proc.stderr,
                           time.monotonic() - started)
    if check and proc.returncode != 0:
        tail = (proc.stderr or proc.stdout or "").strip().splitlines()[-3:] if text else []
        raise OpsError("%s exited with status %d%s" % (
            " ".join(argv[:3]), proc.returncode, (": " + " | ".join(tail)) if tail else ""))
    return result


def _run_in_group(argv, timeout, env, stdin_data, cwd, text, check):
    """``run_command`` for ``kill_group=True``: own session, the group killed at timeout."""
    started = time.monotonic()
    try:
        # The gateway itself (see run_command); a session of its own so a timeout kills
        # every process the command started, not only the first one.
        proc = subprocess.Popen(  # pylint: disable=ansible-bad-function
            list(argv), stdin=subprocess.PIPE if stdin_data is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd, text=text,
            start_new_session=True)
    except FileNotFoundError:
        raise OpsError("command not found: %s; install it or fix PATH" % argv[0])
    except PermissionError:
        raise OpsError("command not executable: %s; check its mode" % argv[0])
    empty = "" if text else b""
    try:
        out, err = proc.communicate(stdin_data, timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the leader is not reaped yet: its group
        except ProcessLookupError:
            pass
        try:
            out, err = proc.communicate(timeout=GROUP_READ_GRACE_SECONDS)
        except subprocess.TimeoutExpired:  # a process outside the group holds the pipe
            for stream in (proc.stdout, proc.stderr):
                stream.close()
            proc.wait()
            out, err = empty, empty
        if check:
            raise OpsError("%s did not finish within %s s" % (argv[0], timeout))
        return CommandResult(argv, -1, out or empty, err or empty, time.monotonic() - started,
                             timed_out=True)
    result = CommandResult(argv, proc.returncode, out, err, time.monotonic() - started)
    if check and proc.returncode != 0:
        raise OpsError("%s exited with status %d" % (" ".join(argv[:3]), proc.returncode))
    return result


def start_process(argv, *, env=None):
    """Start ``argv`` in its own session with its output (stdout and stderr) on one pipe.

    For the cron wrapper, which streams that pipe into the job log and stops the
    whole process group on timeout; the caller reads, signals and reaps the process.
    Raises ``OSError`` when it cannot start.
    """
    if isinstance(argv, str):
        raise TypeError("start_process takes a list of arguments, not a shell string")
    # The wrapper runs on hosts without Ansible; see run_command.
    return subprocess.Popen(  # pylint: disable=ansible-bad-function
        list(argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, start_new_session=True, env=env)

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


def run_command(argv, *, timeout=None, env=None, stdin_data=None, cwd=None, check=False,
                merge_env=True, text=True):
    """Run ``argv`` (a list, never a shell string) and return a ``CommandResult``.

    ``env`` adds to (or, with ``merge_env=False``, replaces) the current environment.
    ``check=True`` raises ``OpsError`` naming the command and its exit status when it
    fails. A missing executable always raises ``OpsError``.
    """
    if isinstance(argv, str):
        raise TypeError("run_command takes a list of arguments, not a shell string")
    full_env = None
    if env is not None:
        full_env = dict(os.environ) if merge_env else {}
        full_env.update(env)
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

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``runbook-ops run --job NAME [--timeout S] [--wait S] [--json] -- COMMAND...``.

Exit 0 when the command succeeded, or when another run of the job holds the lock (said
on stdout and in the job's log); 1 when the command failed (its exit status is in the
log and in ``<state_dir>/jobs/NAME.json``) or when the run holding the lock is past its
own timeout (alerted as ``lock:NAME``); 124 when the command timed out and was stopped;
128 + N when the wrapper got signal N (SIGTERM, SIGINT, SIGHUP): its command was stopped
as on a timeout and the run recorded with that exit status (no alert: a shutdown);
2 for bad arguments (a job name or a ``--timeout`` that breaks the rules of
``runtime.py``, said in one line) or when no lock file could be opened.
"""

from __future__ import annotations

import argparse
import json
import sys

from .cli_output import write_line
from .errors import OpsError
from .jobs import TIMEOUT_RC, run_job
from .runtime import JOB_NAME_RULE, TIMEOUT_RULE, timeout_problem


def _seconds_or_more(value):
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("%r is not a number of seconds" % value)
    if number < 0:
        raise argparse.ArgumentTypeError("seconds must be >= 0, got %s" % value)
    return number


def add_parser(subparsers) -> None:
    """Register the ``run`` subcommand."""
    parser = subparsers.add_parser(
        "run", help="run a cron job under its lock, log, state, alert and dead-man ping",
        description="Run COMMAND as job NAME: never overlapping, output timestamped into "
                    "<log_dir>/NAME.log, status in <state_dir>/jobs/NAME.json, an alert "
                    "when it fails and a recovery when it succeeds again.")
    parser.add_argument("--job", required=True, metavar="NAME",
                        help="the job's name: %s" % JOB_NAME_RULE)
    # Checked in run_command_line, so a bad value is refused in one line (not a usage dump).
    parser.add_argument("--timeout", metavar="SECONDS",
                        help="kill the job's process group after this long: %s" % TIMEOUT_RULE)
    parser.add_argument("--wait", type=_seconds_or_more, default=0.0, metavar="SECONDS",
                        help="wait this long for a running instance to finish (default: skip)")
    parser.add_argument("--json", action="store_true", help="print the run record as JSON")
    parser.add_argument("command", nargs=argparse.REMAINDER, metavar="-- COMMAND ...")
    parser.set_defaults(func=run_command_line)


def run_command_line(args, runtime) -> int:
    """The ``run`` subcommand: exit status as in the module docstring."""
    command = list(args.command)
    if command and command[0] == "--":
        command = command[1:]
    if not command:
        raise OpsError("no command given; use: runbook-ops run --job NAME -- COMMAND [ARGS...]")
    timeout = None
    if args.timeout is not None:
        problem = timeout_problem(args.timeout, "--timeout")
        if problem:
            raise OpsError(problem)
        timeout = float(args.timeout)
    if runtime.get("missing"):
        # Defaults without a chat id: every alert of this job is "not configured". Said on
        # stderr, which the cron line sends to syslog, so the silence is found.
        write_line(sys.stderr, "runbook-ops: job %s: runtime config %s is missing: running "
                   "with the defaults, so no alert can be sent; re-run the runbook.ops.base "
                   "role\n" % (args.job, runtime["missing"]))
    record = run_job(runtime, args.job, command, timeout=timeout, wait_seconds=args.wait)
    if args.json:
        write_line(sys.stdout, json.dumps(record, sort_keys=True) + "\n")
    if record.get("skipped"):
        return 1 if record["stuck"] else 0
    if record["timed_out"]:
        return TIMEOUT_RC
    if record.get("interrupted"):
        return record["rc"]  # 128 + the signal, as a shell reports it
    return 0 if record["rc"] == 0 else 1

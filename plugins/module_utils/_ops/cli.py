# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``runbook-ops`` command line: a registry of subcommands, one sibling module each.

``COMMANDS`` maps each subcommand to the module of this package that registers it with
``add_parser(subparsers)`` (``set_defaults(func=...)``, the func taking
``(args, runtime) -> int``). A run imports only the module of the subcommand it was
given, so a cron job every 5 minutes does not pay for every domain; ``--help`` and
unknown commands build the full parser. To add a domain, write ``<domain>_cli.py`` and
map its subcommands here (a unit test keeps the map and the modules in step).

Exit codes: 0 = ran (alerts, if any, were handled); 1 = the check found a problem the
job should report as failed; 2 = bad input or config, including a runtime config that
cannot be read (message on stderr, which every cron line sends to syslog with
``logger -t runbook-ops``); 124 = ``run`` stopped its command at ``--timeout``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .cli_output import write_line
from .errors import OpsError
from .runtime import DEFAULT_RUNTIME_PATH, load_runtime

COMMANDS = {
    "run": "jobs_cli",
    "alert": "alerts_cli",
    "disk-check": "disk_cli",
    "docker-cleanup": "docker_cleanup_cli",
    "docker-daemon-json": "docker_daemon_cli",
    "media-baseline": "media_cli",
    "media-gate": "media_cli",
    "media-cleanup": "media_cli",
    "media-cleanup-reminder": "media_cli",
    "health-check": "health_cli",
    "health-report": "health_cli",
    "backup": "backup_cli",
}

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_BAD_INPUT = 2


def command_modules():
    """Every subcommand module, in the order of ``COMMANDS``, each once."""
    return tuple(dict.fromkeys(COMMANDS.values()))


def requested_command(argv):
    """The subcommand named in ``argv`` (skipping ``--runtime PATH``), or None."""
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--runtime":
            skip = True
        elif not arg.startswith("-"):
            return arg
    return None


def build_parser(modules=None) -> argparse.ArgumentParser:
    """The parser with the subcommands of ``modules`` (default: every registered one)."""
    parser = argparse.ArgumentParser(
        prog="runbook-ops",
        description="runbook.ops host runtime: cron job wrapper, alerts and checks.")
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME_PATH, metavar="PATH",
                        help="runtime settings (default: %(default)s)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in modules or command_modules():
        try:
            module = importlib.import_module("." + name, __package__)
        except ImportError as exc:
            # One broken domain must not take the cron wrapper down with it.
            sys.stderr.write("runbook-ops: warning: subcommands of %s unavailable: %s\n"
                             % (name, exc))
            continue
        module.add_parser(subparsers)
    return parser


def main(argv=None) -> int:
    """Parse ``argv`` (default ``sys.argv[1:]``), load the runtime, run the subcommand."""
    argv = sys.argv[1:] if argv is None else list(argv)
    module = COMMANDS.get(requested_command(argv) or "")
    args = build_parser((module,) if module else None).parse_args(argv)  # usage errors: exit 2
    try:
        runtime = load_runtime(args.runtime)
        return int(args.func(args, runtime) or 0)
    except OpsError as exc:
        job = getattr(args, "job", None)
        write_line(sys.stderr, "runbook-ops: %serror: %s\n" % (("job %s: " % job) if job else "",
                                                               exc.message))
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        write_line(sys.stderr, "runbook-ops: interrupted\n")
        return 130

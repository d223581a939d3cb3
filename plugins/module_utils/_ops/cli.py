# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``runbook-ops`` command line: a registry of subcommands, one sibling module each.

Each name in ``_COMMAND_MODULES`` is a module of this package exposing
``add_parser(subparsers)``; it registers its subcommand and calls
``set_defaults(func=...)`` with a function ``(args, runtime) -> int``. To add a domain,
write ``<domain>_cli.py`` and append its name to the tuple.

Exit codes: 0 = ran (alerts, if any, were handled); 1 = the check found a problem the
job should report as failed; 2 = bad input or config (message on stderr).
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .errors import OpsError
from .runtime import DEFAULT_RUNTIME_PATH, load_runtime

_COMMAND_MODULES = ("jobs_cli", "alerts_cli", "disk_cli", "docker_cleanup_cli", "media_cli", "health_cli",
                    "backup_cli")

EXIT_OK = 0
EXIT_PROBLEM = 1
EXIT_BAD_INPUT = 2


def build_parser() -> argparse.ArgumentParser:
    """The full parser, with every registered subcommand."""
    parser = argparse.ArgumentParser(prog="runbook-ops",
                     description="runbook.ops host runtime: cron job wrapper, alerts and checks.")
    parser.add_argument("--runtime", default=DEFAULT_RUNTIME_PATH, metavar="PATH",
                        help="runtime settings (default: %(default)s)")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    for name in _COMMAND_MODULES:
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
    args = build_parser().parse_args(argv)  # usage errors: argparse exits 2
    try:
        runtime = load_runtime(args.runtime)
        return int(args.func(args, runtime) or 0)
    except OpsError as exc:
        sys.stderr.write("runbook-ops: error: %s\n" % exc.message)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        sys.stderr.write("runbook-ops: interrupted\n")
        return 130

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``runbook-ops alert``: send an alert through the cooldown, test delivery, check config.

- ``alert --key K --level ok|warning|critical --text T [--json]``: ``notify``; exit 0
  when handled (sent, in cooldown or nothing to say), 1 when delivery failed.
- ``alert --test``: send one message now, ignoring the cooldown; exit 0 sent, 1 not.
- ``alert --validate``: check the runtime file given by ``--runtime`` (used by the base
  role's ``validate:``); exit 0 valid, 2 invalid.
"""

from __future__ import annotations

import json
import os
import sys

from .alerts import LEVELS, notify, send_test
from .cli_output import alert_outcome
from .errors import OpsError


def add_parser(subparsers) -> None:
    """Register the ``alert`` subcommand."""
    parser = subparsers.add_parser(
        "alert", help="send a Telegram alert (cooldown per key), test delivery, check config")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--key", metavar="KEY", help="alert key, e.g. disk:/ or job:NAME")
    mode.add_argument("--test", action="store_true", help="send a test message now")
    mode.add_argument("--validate", action="store_true",
                      help="only check the runtime settings file")
    parser.add_argument("--level", choices=sorted(LEVELS), help="with --key")
    parser.add_argument("--text", metavar="TEXT", help="with --key; '-' reads stdin")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(func=alert_command)


def alert_command(args, runtime) -> int:
    """Dispatch the three modes of ``alert``."""
    if args.validate:
        if not os.path.isfile(args.runtime):
            raise OpsError("runtime config %s does not exist" % args.runtime)
        _say("runtime config %s is valid" % args.runtime)
        return 0
    if args.test:
        try:
            result = send_test(runtime)
        except OpsError as exc:
            result = {"sent": False, "error": exc.message}
        _report(args, result, "test message")
        return 0 if result.get("sent") else 1
    if not args.level or args.text is None:
        raise OpsError("alert --key needs --level (ok, warning, critical) and --text")
    text = sys.stdin.read() if args.text == "-" else args.text
    result = notify(runtime, args.key, args.level, text)
    _report(args, result, "alert %s (%s)" % (args.key, args.level))
    return 1 if result.get("error") else 0


def _say(text) -> None:
    sys.stdout.write(text + "\n")


def _report(args, result, what) -> None:
    if args.json:
        _say(json.dumps(result, sort_keys=True))
        return
    _say("%s %s" % (what, alert_outcome(result)))
    if result.get("state_saved") is False:
        _say("warning: alert state could not be saved (disk full or read-only?)")

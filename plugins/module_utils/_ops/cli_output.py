# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What every runbook-ops job subcommand shares: its standard options and how it prints."""

from __future__ import annotations

import json
import os
import sys

from .state import load_json


def write_line(stream, text) -> bool:
    """Write ``text`` to ``stream`` and flush; False when the stream is gone.

    Cron lines pipe the CLI into ``logger``; when that pipe is closed (logger missing or
    exited) a write raises ``BrokenPipeError``. That must not stop a run, nor make its
    exit fail: the stream's descriptor is pointed at /dev/null from then on.
    """
    try:
        stream.write(text)
        stream.flush()
        return True
    except (OSError, ValueError):
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, stream.fileno())
            os.close(devnull)
        except (OSError, ValueError, AttributeError):
            pass
        return False


def emit(args, data, lines) -> None:
    """Write ``data`` as JSON when ``args.json`` is set, else ``lines`` (a list or one string).

    The JSON is one line: playbooks read the last line of a subcommand's output.
    """
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(data, sort_keys=True, default=str, ensure_ascii=False) + "\n")
        return
    if isinstance(lines, str):
        lines = [lines] if lines else []
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")


def add_config_arguments(parser, default_config, what):
    """Add ``--config FILE`` (``default_config``; None makes it required), ``--validate``, ``--json``."""
    if default_config is None:
        parser.add_argument("--config", required=True, metavar="FILE", help="%s (JSON)" % what)
    else:
        parser.add_argument("--config", default=default_config, metavar="FILE",
                            help="%s (default: %%(default)s)" % what)
    parser.add_argument("--validate", action="store_true", help="only check the config file")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")


def read_config(path):
    """The JSON at ``path``; ``OpsError`` when it cannot be read or is not JSON."""
    return load_json(path, "config ")


def alert_outcome(outcome) -> str:
    """``sent``, ``NOT delivered: ...`` or why notify held it back (its result dict)."""
    if not isinstance(outcome, dict):
        return str(outcome)
    if outcome.get("sent"):
        return "sent"
    if outcome.get("error"):
        return "NOT delivered: %s" % outcome["error"]
    return "not sent: %s" % outcome.get("reason", "")

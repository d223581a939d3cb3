# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How every runbook-ops subcommand prints its result: JSON with ``--json``, lines otherwise."""

from __future__ import annotations

import json
import sys


def emit(args, data, lines) -> None:
    """Write ``data`` as JSON when ``args.json`` is set, else ``lines`` (a list or one string)."""
    if getattr(args, "json", False):
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str, ensure_ascii=False) + "\n")
        return
    if isinstance(lines, str):
        lines = [lines] if lines else []
    if lines:
        sys.stdout.write("\n".join(lines) + "\n")

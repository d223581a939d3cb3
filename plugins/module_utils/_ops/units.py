# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How numbers, counts and times read in messages: one helper per concept.

- ``format_bytes``: sizes computed in powers of 1024 with IEC units (``1.5 GiB``), never
  ``GB`` for a GiB;
- ``plural``: ``1 sample``, ``2 samples``;
- ``show``: a value in a message about settings, plain words bare, the rest as JSON.

Times: ``timestamps.format_timestamp``.
"""

from __future__ import annotations

import json
import re

IEC_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_PLAIN = re.compile(r"^[^\s'\",:{}\[\]#]+$")


def format_bytes(value):
    """``value`` bytes in IEC units: ``512 B``, ``1.5 KiB``, ``3.0 GiB`` (one decimal,
    rounded half to even, as ``%.1f``); a negative value keeps its sign; a value that is
    not a number is returned as text."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    sign = "-" if number < 0 else ""
    number = abs(number)
    power = 0
    while power < len(IEC_UNITS) - 1 and round(number, 1) >= 1024:
        number /= 1024.0
        power += 1
    if power == 0:
        return "%s%d B" % (sign, number)
    return "%s%.1f %s" % (sign, number, IEC_UNITS[power])


def plural(count, word, many=None):
    """``1 sample``, ``0 samples``, ``2 samples``; ``many`` for an irregular plural."""
    return "%d %s" % (count, word if count == 1 else (many or word + "s"))


def show(value, secret=False) -> str:
    """A value as a message shows it: plain words bare, the rest as JSON, secrets hidden."""
    if secret and value not in ("", None):
        return "(secret)"
    if isinstance(value, str) and _PLAIN.match(value):
        return value
    try:
        return json.dumps(value, sort_keys=True, default=str)
    except (TypeError, ValueError):  # pragma: no cover - default=str makes anything dumpable
        return repr(value)

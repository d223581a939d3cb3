# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""How numbers, counts and times read in messages: one helper per concept.

- ``format_bytes``: sizes computed in powers of 1024 with IEC units (``1.5 GiB``), never
  ``GB`` for a GiB;
- ``plural``: ``1 sample``, ``2 samples``;
- ``format_timestamp``: a time to the second (``2026-01-16 03:00:12 UTC``), never with
  microseconds.
"""

from __future__ import annotations

import datetime

IEC_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


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


def format_timestamp(value):
    """A time to the second: ``2026-01-16 03:00:12 UTC`` for an aware datetime, an epoch
    or an ISO 8601 text (``2026-01-16T03:00:12.123456789+00:00``, ``...Z``); other text is
    returned with any fraction of a second cut off."""
    if value is None or value == "":
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    elif isinstance(value, datetime.datetime):
        moment = value
    else:
        moment = _parse_iso(str(value))
        if moment is None:
            return _cut_fraction(str(value))
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _parse_iso(text):
    """An aware datetime from ISO 8601 with any number of fraction digits, or None."""
    text = _cut_fraction(text.strip())
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        return datetime.datetime.fromisoformat(text)
    except ValueError:
        return None


def _cut_fraction(text):
    """``...T03:00:12.123456789+00:00`` -> ``...T03:00:12+00:00``."""
    head, dot, rest = text.partition(".")
    if not dot or len(head) < 19 or head[-3] != ":":
        return text
    digits = len(rest) - len(rest.lstrip("0123456789"))
    return head + rest[digits:] if digits else text

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Times as the engines and our own state files write them: one reader for all.

Docker and restic write RFC 3339 with up to nine digits of fraction (Go's RFC3339Nano;
Docker's "never" is the zero time ``0001-01-01T00:00:00Z``); our state files hold
``datetime.isoformat()`` text or epoch seconds. ``datetime.fromisoformat`` reads at most
six digits of fraction before Python 3.11 and no ``Z`` before 3.11 either, and a float
loses the nanoseconds restic compares file times by, hence this parser.
"""

from __future__ import annotations

import datetime
import re

_RFC3339 = re.compile(r"^(\d{4})-(\d\d)-(\d\d)[Tt ](\d\d):(\d\d):(\d\d)(?:\.(\d+))?([Zz]|[+-]\d\d:?\d\d)?$")
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.timezone.utc)


def parse(text):
    """``(moment, nanoseconds)`` of an RFC 3339 / ISO 8601 time, or ``None``.

    ``moment`` is an aware datetime in the offset the text records (UTC without one), to
    the microsecond; ``nanoseconds`` is the whole fraction of the second (0 to 999999999).
    ``None`` for anything else, an impossible date, and Docker's zero time (year 1).
    """
    match = _RFC3339.match(text.strip()) if isinstance(text, str) else None
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    if year == "0001":
        return None
    nanoseconds = int((fraction or "")[:9].ljust(9, "0"))
    offset = datetime.timedelta(0)
    if zone and zone not in "Zz":
        digits = zone[1:].replace(":", "")
        offset = (1 if zone[0] == "+" else -1) * datetime.timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    try:
        moment = datetime.datetime(int(year), int(month), int(day), int(hour), int(minute), int(second),
                                   nanoseconds // 1000, datetime.timezone(offset))
    except ValueError:
        return None
    return moment, nanoseconds


def epoch_seconds(value):
    """Seconds since the epoch (with the fraction) of a number, a datetime (naive: UTC) or
    a time text (``parse``); ``None`` when unknown (empty, zero time, unreadable)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, datetime.datetime):
        return utc(value).timestamp()
    parsed = parse(value)
    if parsed is None:
        return None
    moment, nanoseconds = parsed
    return (moment.replace(microsecond=0) - _EPOCH).total_seconds() + nanoseconds / 1e9


def epoch_ns(text):
    """Nanoseconds since the epoch of a time text, exactly (restic's file times); or None."""
    parsed = parse(text)
    if parsed is None:
        return None
    moment, nanoseconds = parsed
    return (moment.replace(microsecond=0) - _EPOCH) // datetime.timedelta(seconds=1) * 10 ** 9 + nanoseconds


def utc(value):
    """An aware UTC datetime for a time text or datetime (naive: UTC), or ``None``."""
    if isinstance(value, datetime.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=datetime.timezone.utc)
    else:
        parsed = parse(value)
        if parsed is None:
            return None
        moment = parsed[0]
    return moment.astimezone(datetime.timezone.utc)


def iso_z(value):
    """``2026-01-16T03:00:12Z``: an epoch or a datetime (naive: UTC) in UTC, whole seconds;
    what the history files and media samples record."""
    if not isinstance(value, datetime.datetime):
        value = datetime.datetime.fromtimestamp(int(value), datetime.timezone.utc)
    return utc(value).strftime("%Y-%m-%dT%H:%M:%SZ")


def format_timestamp(value):
    """A time to the second: ``2026-01-16 03:00:12 UTC`` for an aware datetime, an epoch
    or a time text (``2026-01-16T03:00:12.123456789+00:00``, ``...Z``); a naive datetime
    without the zone; other text as it is, any fraction of a second cut off."""
    if value is None or value == "":
        return "-"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
    elif isinstance(value, datetime.datetime):
        moment = value
    else:
        parsed = parse(str(value))
        if parsed is None:
            return _cut_fraction(str(value))
        moment = parsed[0] if _RFC3339.match(str(value).strip()).group(8) else parsed[0].replace(tzinfo=None)
    if moment.tzinfo is None:
        return moment.strftime("%Y-%m-%d %H:%M:%S")
    return moment.astimezone(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _cut_fraction(text):
    """``...T03:00:12.123456789+00:00`` -> ``...T03:00:12+00:00``."""
    head, dot, rest = text.partition(".")
    if not dot or len(head) < 19 or head[-3] != ":":
        return text
    digits = len(rest) - len(rest.lstrip("0123456789"))
    return head + rest[digits:] if digits else text

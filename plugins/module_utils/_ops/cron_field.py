# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The five time fields of a crontab line, read as Debian's cron (Vixie cron 3.0) reads them.

A field is a comma-separated list of items; an item is ``*``, a number or a range
``A-B`` (A not above B), optionally followed by ``/STEP`` (only after ``*`` or a range,
STEP 1 or more). Months and days of the week also take their English three-letter
names (``jan``, ``mon``; any case) wherever a number goes, and 7 is Sunday as 0 is.
Anything else (``25`` as an hour, ``3am``, ``5/10``, a space) makes cron reject the line,
and the job never runs: ``expand`` refuses it instead.
"""

from __future__ import annotations

import re

# field -> (lowest, highest, names for lowest.., what one value is)
FIELDS = {
    "minute": (0, 59, (), "a minute"),
    "hour": (0, 23, (), "an hour"),
    "day": (1, 31, (), "a day of the month"),
    "month": (1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct",
                      "nov", "dec"), "a month"),
    "weekday": (0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"), "a day of the week"),
}

_ITEM = re.compile(r"^(?:(?P<star>\*)|(?P<low>[0-9]+|[A-Za-z]+)(?:-(?P<high>[0-9]+|[A-Za-z]+))?)"
                   r"(?:/(?P<step>[0-9]+))?$")


def rule(field) -> str:
    """What a value of ``field`` may be, for messages: ``an hour (0-23, */N, ...)``."""
    low, high, names, what = FIELDS[field]
    named = " or %s-%s" % (names[0], names[-1]) if names else ""
    return "%s (%d-%d%s, */N, lists and ranges as cron reads them)" % (what, low, high, named)


def _number(token, field):
    low, high, names, _what = FIELDS[field]
    if token.isdigit():
        value = int(token)
    elif token.lower() in names:
        value = low + names.index(token.lower()) if field == "month" else names.index(token.lower())
    else:
        return None
    return value if low <= value <= high else None


def expand(field, text):
    """The set of values ``text`` matches in ``field`` (``minute`` .. ``weekday``), or
    ``None`` when cron would reject it. Weekday 7 comes back as 0 (both are Sunday)."""
    low, high, _names, _what = FIELDS[field]
    if not isinstance(text, str) or not text:
        return None
    values = set()
    for item in text.split(","):
        match = _ITEM.match(item)
        if not match:
            return None
        if match.group("star"):
            first, last = low, high
        else:
            first = _number(match.group("low"), field)
            last = first if match.group("high") is None else _number(match.group("high"), field)
            if first is None or last is None or first > last:
                return None
            if match.group("high") is None and match.group("step") is not None:
                return None  # "5/10": cron takes a step only after * or a range
        step = 1 if match.group("step") is None else int(match.group("step"))
        if step < 1:
            return None
        values.update(range(first, last + 1, step))
    if field == "weekday" and 7 in values:
        values.discard(7)
        values.add(0)
    return values


def problem(field, text) -> str:
    """``""`` when cron reads ``text`` as ``field``, else the rule it breaks."""
    if expand(field, text) is not None:
        return ""
    return "is not %s" % rule(field)

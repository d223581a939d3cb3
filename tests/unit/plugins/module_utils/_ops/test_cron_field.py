# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""cron_field.expand against an independent model, over generated fields (Hypothesis).

The model builds each field from parts (``*``, a number or name, a range, a step, or a
piece cron rejects), says from the parts alone whether Debian's cron takes it (what
``crontab -n`` on Debian 12 does, checked by hand: ``25`` as an hour, ``3am``, ``5/10``,
``*/0``, ``sunday``, ``,5`` and ``5-`` are refused; ``mon-fri``, ``005``, ``*/90``, ``7``
are taken) and which values it matches by counting them out one by one. A reversed range
(``23-1``) matches nothing for cron; the parser refuses it, as a schedule that never runs.
"""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

sys.path.insert(0, os.path.join(os.path.dirname(__file__), *[".."] * 5, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import cron_field  # noqa: E402

LIMITS = {"minute": (0, 59), "hour": (0, 23), "day": (1, 31), "month": (1, 12), "weekday": (0, 7)}
MONTHS = "jan feb mar apr may jun jul aug sep oct nov dec".split()
DAYS = "sun mon tue wed thu fri sat".split()
JUNK = ["", " ", "3am", "5-", "-5", "*-5", "sunday", "?", "L", "1 ", "*/", "/2", "1--2", "x"]


def render(field, value, draw_case, padding):
    """A value as text: a number (maybe zero-padded) or, where cron has them, a name."""
    names = MONTHS if field == "month" else DAYS if field == "weekday" else []
    index = value - 1 if field == "month" else value
    if names and 0 <= index < len(names) and draw_case is not None:
        return "".join(c.upper() if up else c for c, up in zip(names[index], draw_case))
    return "0" * padding + str(value)


@st.composite
def fields(draw):
    """``(field, text, expected)``: expected is the set of matching values, or None."""
    field = draw(st.sampled_from(sorted(LIMITS)))
    low, high = LIMITS[field]
    value = st.integers(max(0, low - 2), high + 2)  # a "-" would read as a range
    case = st.one_of(st.none(), st.lists(st.booleans(), min_size=3, max_size=3))
    parts, expected = [], set()
    for _index in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["star", "number", "range", "junk"]))
        step = draw(st.one_of(st.none(), st.integers(0, high + 3)))
        if kind == "junk":
            parts.append(draw(st.sampled_from(JUNK)))
            expected = None
            continue
        if kind == "star":
            first, last, text = low, high, "*"
        else:
            first = draw(value)
            last = first if kind == "number" else draw(value)
            text = render(field, first, draw(case), draw(st.integers(0, 2)))
            if kind == "range":
                text += "-" + render(field, last, draw(case), draw(st.integers(0, 2)))
        if step is not None:
            text += "/%d" % step
        parts.append(text)
        valid = (low <= first <= last <= high and (step is None or step >= 1)
                 and not (kind == "number" and step is not None))
        if not valid or expected is None:
            expected = None
            continue
        matched, current = set(), first
        while current <= last:
            matched.add(0 if (field == "weekday" and current == 7) else current)
            current += step or 1
        expected |= matched
    return field, ",".join(parts), expected


@given(fields())
@example(("hour", "25", None))
@example(("hour", "3am", None))
@example(("hour", "5/10", None))
@example(("weekday", "*/0", None))
@example(("weekday", "mon-fri", {1, 2, 3, 4, 5}))
@example(("weekday", "0-7", {0, 1, 2, 3, 4, 5, 6}))
@example(("month", "JAN,dec", {1, 12}))
@example(("minute", "*/90", {0}))
def test_expand_matches_the_model(case):
    field, text, expected = case
    assert cron_field.expand(field, text) == expected


@given(st.sampled_from(sorted(LIMITS)), st.text(max_size=12))
def test_any_text_is_refused_or_gives_values_within_the_field(field, text):
    values = cron_field.expand(field, text)
    low, high = LIMITS[field]
    assert values is None or (values and all(low <= v <= min(high, 6 if field == "weekday" else high)
                                             for v in values))
    assert (cron_field.problem(field, text) == "") == (values is not None)


@pytest.mark.parametrize("field, text", [("hour", 25), ("hour", None), ("minute", "")])
def test_non_text_and_empty_fields_are_refused(field, text):
    assert cron_field.expand(field, text) is None


def test_the_rule_reads_as_the_issue_asks():
    assert cron_field.problem("hour", "25") == (
        "is not an hour (0-23, */N, lists and ranges as cron reads them)")
    assert cron_field.rule("weekday") == (
        "a day of the week (0-7 or sun-sat, */N, lists and ranges as cron reads them)")

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""units.py against independent models (Hypothesis): IEC sizes and plurals."""

from __future__ import annotations

import os
import re
import sys
from decimal import ROUND_HALF_EVEN, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import units  # noqa: E402

SIZE = re.compile(r"^(-?)(\d+)(?:\.(\d))? (B|KiB|MiB|GiB|TiB|PiB|EiB)$")
POWERS = {"B": 0, "KiB": 1, "MiB": 2, "GiB": 3, "TiB": 4, "PiB": 5, "EiB": 6}


def _model_unit(number):
    """The unit a person expects: the largest power of 1024 the size reaches once shown
    with one decimal (1023.96 KiB reads 1.0 MiB, not 1024.0 KiB); EiB at most."""
    exact = Decimal(number)
    for power in range(6, 0, -1):
        shown = (exact / Decimal(1024) ** power).quantize(Decimal("0.1"), ROUND_HALF_EVEN)
        if shown >= 1 and (exact / Decimal(1024) ** (power - 1)).quantize(
                Decimal("0.1"), ROUND_HALF_EVEN) >= 1024:
            return power
    return 0


@given(st.integers(min_value=-(2 ** 70), max_value=2 ** 70))
def test_format_bytes_is_iec_and_reads_back_within_half_a_tenth(number):
    text = units.format_bytes(number)
    match = SIZE.match(text)
    assert match, text
    sign, whole, tenth, unit = match.groups()
    assert (sign == "-") == (number < 0)
    power = POWERS[unit]
    assert power == _model_unit(abs(number)), (number, text)
    if power == 0:
        assert tenth is None and int(whole) == abs(number)
        return
    shown = Decimal("%s.%s" % (whole, tenth))
    exact = Decimal(abs(number)) / Decimal(1024) ** power
    assert abs(shown - exact) <= Decimal("0.05") + Decimal("1e-9"), (number, text)
    assert shown < 1024 or unit == "EiB", text


@pytest.mark.parametrize("number, text", [
    (0, "0 B"), (1023, "1023 B"), (1024, "1.0 KiB"), (1536, "1.5 KiB"),
    (1048524, "1023.9 KiB"), (1048570, "1.0 MiB"), (3 * 2 ** 30, "3.0 GiB"), (-2048, "-2.0 KiB"), ("n/a", "n/a"),
    (None, "None"),
])
def test_format_bytes_examples(number, text):
    assert units.format_bytes(number) == text


@given(st.integers(min_value=0, max_value=10 ** 6), st.sampled_from(
    [("sample", None, "samples"), ("host", None, "hosts"), ("entry", "entries", "entries")]))
def test_plural(count, words):
    word, many, expected_many = words
    assert units.plural(count, word, many) == "%d %s" % (count, word if count == 1
                                                         else expected_many)

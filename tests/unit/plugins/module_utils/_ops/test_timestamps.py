# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""timestamps.py against an independent model (Hypothesis): a time built from its parts
(date, time, nine digits of fraction, offset), written as Docker, restic and our state
files write it, reads back to exactly those parts, in whole nanoseconds."""

from __future__ import annotations

import datetime
import os
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import timestamps  # noqa: E402

UTC = datetime.timezone.utc
MOMENTS = st.datetimes(min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2200, 1, 1))
OFFSETS = st.integers(min_value=-(14 * 60), max_value=14 * 60)  # minutes east of UTC


def _zone(minutes, style):
    if minutes == 0 and style == "Z":
        return "Z"
    sign = "+" if minutes >= 0 else "-"
    hours, rest = divmod(abs(minutes), 60)
    return "%s%02d%s%02d" % (sign, hours, ":" if style != "compact" else "", rest)


@given(MOMENTS, st.integers(min_value=0, max_value=10 ** 9 - 1), st.integers(min_value=0, max_value=9),
       OFFSETS, st.sampled_from(["Z", "colon", "compact"]))
def test_a_written_time_reads_back_to_its_parts(moment, nanoseconds, digits, minutes, style):
    moment = moment.replace(microsecond=0)
    kept = int(("%09d" % nanoseconds)[:digits].ljust(9, "0")) if digits else 0
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + (("." + ("%09d" % nanoseconds)[:digits]) if digits else "") \
        + _zone(minutes, style)
    # the model: local wall time minus the offset, in integer nanoseconds
    local_ns = (moment.replace(tzinfo=UTC) - datetime.datetime(1970, 1, 1, tzinfo=UTC)) \
        // datetime.timedelta(seconds=1) * 10 ** 9 + kept
    expected_ns = local_ns - minutes * 60 * 10 ** 9
    assert timestamps.epoch_ns(text) == expected_ns
    assert timestamps.epoch_seconds(text) == pytest.approx(expected_ns / 1e9, abs=1e-6)
    parsed, fraction = timestamps.parse(text)
    assert fraction == kept and parsed.utcoffset() == datetime.timedelta(minutes=minutes)
    assert parsed.replace(tzinfo=None) == moment + datetime.timedelta(microseconds=kept // 1000)
    assert timestamps.utc(text) == datetime.datetime.fromtimestamp(expected_ns // 10 ** 9, UTC) \
        + datetime.timedelta(microseconds=kept // 1000)
    assert timestamps.format_timestamp(text) == datetime.datetime.fromtimestamp(
        expected_ns // 10 ** 9, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@given(MOMENTS)
def test_iso_z_is_read_back_by_every_reader(moment):
    epoch = int(moment.replace(tzinfo=UTC).timestamp())
    text = timestamps.iso_z(epoch)
    assert text == timestamps.iso_z(moment) == moment.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert timestamps.epoch_seconds(text) == epoch
    assert timestamps.utc(text) == moment.replace(microsecond=0, tzinfo=UTC)


@given(MOMENTS, st.integers(min_value=0, max_value=9), st.sampled_from(["Z", "+00:00", "+03:00"]))
def test_format_timestamp_cuts_any_fraction_and_shows_utc(moment, digits, zone):
    offset = datetime.timedelta(hours=3) if zone == "+03:00" else datetime.timedelta(0)
    fraction = ("." + ("%09d" % moment.microsecond)[:digits]) if digits else ""
    text = moment.strftime("%Y-%m-%dT%H:%M:%S") + fraction + zone
    expected = (moment - offset).strftime("%Y-%m-%d %H:%M:%S UTC")
    assert timestamps.format_timestamp(text) == expected
    aware = moment.replace(tzinfo=datetime.timezone(offset))
    assert timestamps.format_timestamp(aware) == expected
    epoch = aware.timestamp()
    assert timestamps.format_timestamp(epoch) == datetime.datetime.fromtimestamp(
        int(epoch // 1), UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


@pytest.mark.parametrize("value, expected", [
    (1700000000, 1700000000.0),
    ("2026-11-23T16:13:15Z", 1795450395.0),
    ("2026-11-23T16:13:15.5Z", 1795450395.5),
    ("2026-11-23T16:13:15.086270889Z", 1795450395.086270889),
    ("2026-11-23T18:13:15+02:00", 1795450395.0),
    ("2026-11-23 16:13:15", 1795450395.0),
    ("0001-01-01T00:00:00Z", None),  # Docker's "never"
    ("2026-02-30T00:00:00Z", None),
    (None, None), ("", None), (True, None),
    ("garbage", None),
])
def test_epoch_seconds_reads_engine_formats(value, expected):
    got = timestamps.epoch_seconds(value)
    assert got == (pytest.approx(expected) if expected is not None else None)


def test_readers_of_our_own_files_take_z_offsets_and_naive_utc():
    t0 = datetime.datetime(2026, 1, 1, 6, 5, tzinfo=UTC)
    for text in ("2026-01-01T06:05:00Z", "2026-01-01T09:05:00+03:00", "2026-01-01T06:05:00"):
        assert timestamps.utc(text) == t0
    assert timestamps.utc("yesterday") is None and timestamps.utc(None) is None


def test_format_timestamp_of_restic_and_docker_times():
    assert timestamps.format_timestamp("2026-01-16T03:00:12.123456789+01:00") == "2026-01-16 02:00:12 UTC"
    assert timestamps.format_timestamp("2026-01-16T03:00:12.5Z") == "2026-01-16 03:00:12 UTC"
    assert timestamps.format_timestamp("2026-01-16T03:00:12") == "2026-01-16 03:00:12"
    assert timestamps.format_timestamp("") == "-" and timestamps.format_timestamp(None) == "-"
    assert timestamps.format_timestamp("yesterday") == "yesterday"

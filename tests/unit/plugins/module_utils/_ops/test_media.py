# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Unit tests of _ops/media.py: sizes, growth from baselines, the gate at its limits."""

from __future__ import annotations

import datetime
import json
import os
import sys

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
_COLLECTIONS = os.path.join(_REPO, ".collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.runbook.ops.plugins.module_utils._ops import media  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402

MB = 10 ** 6
T0 = datetime.datetime(2026, 1, 1, 6, 5, tzinfo=datetime.timezone.utc)
LIMITS = media.check_limits()  # the runbook's: 500MB, 100MB/week, 1000 records, 70 %, 90 days


def sample(days, size, path="/srv/media", files=100, **extra):
    record = {"ts": media.format_ts(T0 + datetime.timedelta(days=days)), "path": path,
              "bytes": size, "files": files}
    record.update(extra)
    return record


def write_jsonl(path, records):
    with open(path, "w", encoding="utf-8") as handle:
        for record in records:
            handle.write((record if isinstance(record, str) else json.dumps(record)) + "\n")


QUIET_DISK = {"used_percent": 22.0, "bytes_per_day": None, "days_to_limit": None}


def decide(media_bytes=47 * MB, growth=None, records=None, disk=None, limits=None):
    return media.decide_gate({"bytes": media_bytes, "files": 142},
                             growth or {"bytes_per_week": None, "detail": "0 samples"},
                             records, disk or QUIET_DISK, limits or LIMITS)


def trigger(result, name):
    return [t for t in result["triggers"] if t["name"] == name][0]


# ---------------------------------------------------------------------------- parse_size


@pytest.mark.parametrize("text, expected", [
    ("500MB", 500 * 10 ** 6),
    ("500 MB", 500 * 10 ** 6),
    ("1.5GiB", 1610612736),
    ("1.5GB", 1500000000),
    ("100MiB", 100 * 2 ** 20),
    ("2kB", 2000),
    ("2KB", 2000),
    ("3KiB", 3072),
    ("1TB", 10 ** 12),
    ("1TiB", 2 ** 40),
    ("12345", 12345),
    ("12345B", 12345),
    ("0", 0),
    (524288000, 524288000),
], ids=lambda v: str(v))
def test_parse_size_reads_decimal_binary_and_plain_bytes(text, expected):
    assert media.parse_size(text) == expected


@pytest.mark.parametrize("text", [
    "500M", "500mb", "1.5gib", "500 MBs", "MB", "", "  ", "-5MB", "5 MB extra", "1e6",
    "1.5", "1,5GB", "0x10", None, True, -1, 1.5, [500],
], ids=lambda v: repr(v))
def test_parse_size_rejects_anything_loose(text):
    with pytest.raises(OpsError) as info:
        media.parse_size(text, "size_limit")
    assert "size_limit" in str(info.value)


def test_parse_size_error_names_the_accepted_units():
    with pytest.raises(OpsError) as info:
        media.parse_size("5 megs", "growth_limit_per_week")
    assert "MiB" in str(info.value) and "MB" in str(info.value)


def test_format_size_uses_decimal_units():
    assert media.format_size(47 * MB) == "47.0 MB"
    assert media.format_size(999) == "999 B"
    assert media.format_size(-3 * MB) == "-3.0 MB"


# ---------------------------------------------------------------------------- timestamps


def test_parse_ts_accepts_z_offsets_and_naive_utc():
    assert media.parse_ts("2026-01-01T06:05:00Z") == T0
    assert media.parse_ts("2026-01-01T09:05:00+03:00") == T0
    assert media.parse_ts("2026-01-01T06:05:00") == T0
    assert media.parse_ts("yesterday") is None
    assert media.parse_ts(None) is None


# ---------------------------------------------------------------------------- growth


def test_growth_with_no_baselines_says_so():
    growth = media.growth_per_week([])
    assert growth["status"] == "insufficient"
    assert growth["bytes_per_week"] is None
    assert "0 baseline samples" in growth["detail"]


def test_growth_with_one_baseline_says_so():
    growth = media.growth_per_week([sample(0, 47 * MB)])
    assert growth["status"] == "insufficient"
    assert "1 baseline sample;" in growth["detail"]


def test_growth_ignores_samples_less_than_a_day_apart():
    growth = media.growth_per_week([sample(0, 47 * MB), sample(0.01, 48 * MB)])
    assert growth["status"] == "insufficient"
    assert "within a day" in growth["detail"]


def test_growth_over_one_week_is_the_byte_difference():
    growth = media.growth_per_week([sample(0, 47 * MB), sample(7, 147 * MB)])
    assert growth["status"] == "ok"
    assert growth["bytes_per_week"] == 100 * MB
    assert growth["method"] == "window"


def test_growth_uses_the_oldest_sample_of_the_last_four_weeks():
    samples = [sample(0, 10 * MB), sample(30, 40 * MB), sample(44, 500 * MB), sample(58, 540 * MB)]
    growth = media.growth_per_week(samples)
    # window is days 30..58: the base is the day-30 sample, 500 MB over 4 weeks
    assert growth["from_ts"] == samples[1]["ts"]
    assert growth["bytes_per_week"] == 125 * MB


def test_growth_across_a_month_gap_is_per_elapsed_time():
    samples = [sample(0, 47 * MB), sample(31, 78 * MB)]
    growth = media.growth_per_week(samples)
    assert growth["method"] == "previous"
    assert growth["days"] == 31.0
    assert growth["bytes_per_week"] == round(31 * MB * 7 / 31)


def test_growth_of_a_shrinking_directory_is_negative():
    growth = media.growth_per_week([sample(0, 600 * MB), sample(7, 200 * MB)])
    assert growth["bytes_per_week"] == -400 * MB
    result = decide(growth=growth)
    assert trigger(result, "growth")["hit"] is False


def test_growth_skips_partial_and_malformed_samples_and_sorts():
    samples = [sample(14, 300 * MB), sample(10, 5000 * MB, partial=True),
               {"ts": "garbage", "bytes": 1}, {"ts": sample(1, 0)["ts"], "bytes": "12"},
               sample(7, 200 * MB)]
    growth = media.growth_per_week(samples)
    assert growth["samples"] == 2
    assert growth["bytes_per_week"] == 100 * MB


def test_read_baselines_keeps_only_the_media_path(tmp_path):
    path = tmp_path / "media-baseline.jsonl"
    write_jsonl(path, [sample(0, 1, path="/srv/media"), sample(1, 2, path="/old/media"),
                       "{torn line", sample(8, 3, path="/srv/media")])
    samples = media.read_baselines(str(path), "/srv/media")
    assert [s["bytes"] for s in samples] == [1, 3]
    assert media.read_baselines(str(tmp_path / "missing.jsonl"), "/srv/media") == []


# ---------------------------------------------------------------------------- gate limits


@pytest.mark.parametrize("size, hit", [
    (500 * MB - 1, False), (500 * MB, False), (500 * MB + 1, True), (0, False),
])
def test_size_trigger_fires_only_above_the_limit(size, hit):
    result = decide(media_bytes=size)
    assert trigger(result, "size")["hit"] is hit
    assert trigger(result, "size")["value"] == size
    assert trigger(result, "size")["limit"] == 500 * MB
    assert result["activate"] is hit


@pytest.mark.parametrize("rate, hit", [
    (100 * MB - 1, False), (100 * MB, False), (100 * MB + 1, True), (-50 * MB, False),
])
def test_growth_trigger_fires_only_above_the_limit(rate, hit):
    growth = {"bytes_per_week": rate, "from_ts": "a", "to_ts": "b", "days": 7.0}
    result = decide(growth=growth)
    assert trigger(result, "growth")["hit"] is hit
    assert result["activate"] is hit


def test_growth_trigger_without_baselines_reports_not_enough_data():
    result = decide(growth=media.growth_per_week([sample(0, 900 * MB)]))
    growth = trigger(result, "growth")
    assert growth["value"] is None and growth["hit"] is False
    assert "not enough baselines" in growth["detail"]


@pytest.mark.parametrize("records, hit", [
    (999, False), (1000, False), (1001, True), (0, False),
])
def test_records_trigger_fires_only_above_the_limit(records, hit):
    result = decide(records=records)
    assert trigger(result, "records")["hit"] is hit
    assert result["activate"] is hit


def test_records_trigger_is_skipped_without_a_count():
    records = trigger(decide(records=None), "records")
    assert records["value"] is None and records["hit"] is False
    assert "no record count" in records["detail"]


@pytest.mark.parametrize("percent, days, hit", [
    (69.9, None, False), (70.0, None, True), (70.1, None, True),
    (50.0, 90.0, True), (50.0, 90.1, False), (50.0, 10.0, True),
])
def test_disk_trigger_fires_at_the_limit_or_when_the_trend_reaches_it(percent, days, hit):
    disk = {"used_percent": percent, "bytes_per_day": 1.0 if days else None,
            "days_to_limit": days}
    result = decide(disk=disk)
    assert trigger(result, "disk")["hit"] is hit
    assert result["activate"] is hit


def test_gate_is_quiet_with_the_runbooks_current_baselines():
    result = decide(media_bytes=47 * MB, growth={"bytes_per_week": 4 * MB, "from_ts": "a",
                                                  "to_ts": "b", "days": 31.0}, records=8)
    assert result["activate"] is False
    assert [t["name"] for t in result["triggers"]] == ["size", "growth", "records", "disk"]
    assert all(set(t) >= {"name", "value", "limit", "hit"} for t in result["triggers"])


# ---------------------------------------------------------------------------- disk trend


def _usage(used, total=100 * 10 ** 9):
    return {"mount": "/", "used_bytes": used, "total_bytes": total, "avail_bytes": total - used,
            "used_percent": round(100.0 * used / total, 1)}


def test_disk_trend_predicts_days_to_limit_from_history():
    gb = 10 ** 9
    history = [{"ts": media.format_ts(T0 + datetime.timedelta(days=d)), "mount": "/",
                "used_bytes": (40 + d) * gb, "total_bytes": 100 * gb} for d in range(10)]
    now = T0 + datetime.timedelta(days=10)
    rate, days = media.disk_days_to_limit(history, _usage(50 * gb), 70, now)
    assert rate == pytest.approx(gb)
    assert days == pytest.approx(20.0)


def test_disk_trend_without_history_has_no_rate():
    assert media.disk_days_to_limit([], _usage(10), 70, T0) == (None, None)


def test_disk_trend_of_a_shrinking_disk_never_reaches_the_limit():
    gb = 10 ** 9
    history = [{"ts": media.format_ts(T0), "mount": "/", "used_bytes": 60 * gb,
                "total_bytes": 100 * gb}]
    rate, days = media.disk_days_to_limit(history, _usage(50 * gb),
                                          70, T0 + datetime.timedelta(days=5))
    assert rate < 0 and days is None


def test_read_disk_history_filters_by_mount(tmp_path):
    path = tmp_path / "disk-history.jsonl"
    write_jsonl(path, [
        {"ts": "2026-01-02T00:00:00Z", "mount": "/", "used_bytes": 2, "total_bytes": 10},
        {"ts": "2026-01-01T00:00:00Z", "mount": "/", "used_bytes": 1, "total_bytes": 10},
        {"ts": "2026-01-01T00:00:00Z", "mount": "/data", "used_bytes": 5, "total_bytes": 10},
        {"ts": "2026-01-03T00:00:00Z", "mount": "/", "used_bytes": "x", "total_bytes": 10},
    ])
    history = media.read_disk_history(str(path), "/")
    assert [h["used_bytes"] for h in history] == [1, 2]


# ---------------------------------------------------------------------------- record count


@pytest.mark.parametrize("output, expected", [
    ("1001\n", 1001),
    ("  8  ", 8),
    ("6 objects imported automatically (use -v 2 for details).\n\n142\n", 142),
])
def test_parse_record_count_takes_the_last_line(output, expected):
    assert media.parse_record_count(output) == expected


@pytest.mark.parametrize("output", ["", "\n", "many", "12.5", "-3", "142 photos"])
def test_parse_record_count_rejects_non_integers(output):
    with pytest.raises(OpsError) as info:
        media.parse_record_count(output)
    assert "integer" in str(info.value)


def test_count_records_runs_a_shell_string_in_chdir(tmp_path):
    (tmp_path / "count.txt").write_text("1234\n")
    assert media.count_records("cat count.txt", chdir=str(tmp_path)) == 1234


def test_count_records_runs_an_argv_list():
    assert media.count_records(["/bin/echo", "77"]) == 77


def test_count_records_reports_a_failing_command():
    with pytest.raises(OpsError) as info:
        media.count_records("echo boom >&2; exit 3")
    assert "status 3" in str(info.value) and "boom" in str(info.value)


def test_count_records_reports_a_timeout():
    with pytest.raises(OpsError) as info:
        media.count_records(["/bin/sleep", "5"], timeout=0.2)
    assert "did not finish" in str(info.value)


# ---------------------------------------------------------------------------- configs


def test_check_limits_rejects_bad_values():
    with pytest.raises(OpsError):
        media.check_limits(size_limit="lots")
    with pytest.raises(OpsError):
        media.check_limits(disk_limit_percent=0)
    with pytest.raises(OpsError):
        media.check_limits(disk_limit_percent=101)
    with pytest.raises(OpsError):
        media.check_limits(record_limit=-1)
    with pytest.raises(OpsError):
        media.check_limits(record_limit=True)


def test_gate_config_fills_the_runbook_defaults():
    config = media.check_gate_config({"media_path": "/srv/media"})
    assert config["size_limit"] == "500MB"
    assert config["growth_limit_per_week"] == "100MB"
    assert config["record_limit"] == 1000
    assert config["disk_limit_percent"] == 70
    assert config["baseline_file"] == "/var/lib/runbook-ops/media-baseline.jsonl"


@pytest.mark.parametrize("config, words", [
    ({}, "media_path"),
    ({"media_path": "relative/path"}, "absolute"),
    ({"media_path": "/m", "size_limit": "5 megs"}, "size_limit"),
    ({"media_path": "/m", "record_count_command": []}, "record_count_command"),
    ({"media_path": "/m", "typo": 1}, "unknown setting"),
], ids=["missing-path", "relative", "bad-size", "empty-command", "unknown-key"])
def test_gate_config_errors_name_the_setting(config, words):
    with pytest.raises(OpsError) as info:
        media.check_gate_config(config)
    assert words in str(info.value)


def test_baseline_and_cleanup_configs_are_checked():
    assert media.check_baseline_config({"media_path": "/m"})["baseline_file"] == \
        media.DEFAULT_BASELINE_FILE
    with pytest.raises(OpsError):
        media.check_cleanup_config({"chdir": "/opt/app"})
    config = media.check_cleanup_config({"command": "true", "chdir": "/opt/app",
                                         "timeout_seconds": 60})
    assert config["command"] == "true"

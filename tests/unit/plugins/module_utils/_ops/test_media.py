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
from ansible_collections.runbook.ops.plugins.module_utils._ops.timestamps import iso_z  # noqa: E402

MB = 10 ** 6
T0 = datetime.datetime(2026, 1, 1, 6, 5, tzinfo=datetime.timezone.utc)
LIMITS = media.check_limits()  # the runbook's: 500MB, 100MB/week, 1000 records, 70 %, 90 days


def sample(days, size, path="/srv/media", files=100, **extra):
    record = {"ts": iso_z(T0 + datetime.timedelta(days=days)), "path": path,
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
], ids=str)
def test_parse_size_reads_decimal_binary_and_plain_bytes(text, expected):
    assert media.parse_size(text) == expected


@pytest.mark.parametrize("text", [
    "500M", "500mb", "1.5gib", "500 MBs", "MB", "", "  ", "-5MB", "5 MB extra", "1e6",
    "1.5", "1,5GB", "0x10", None, True, -1, 1.5, [500],
], ids=repr)
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
    growth = {"bytes_per_week": 4 * MB, "from_ts": "a", "to_ts": "b", "days": 31.0}
    result = decide(media_bytes=47 * MB, growth=growth, records=8)
    assert result["activate"] is False
    assert [t["name"] for t in result["triggers"]] == ["size", "growth", "records", "disk"]
    assert all(set(t) >= {"name", "value", "limit", "hit"} for t in result["triggers"])


# ---------------------------------------------------------------------------- real trees


def make_media(root, sizes):
    root.mkdir(parents=True, exist_ok=True)
    for index, size in enumerate(sizes):
        (root / ("photo-%03d.jpg" % index)).write_bytes(os.urandom(size))
    return root


def du_bytes(path):
    out = media.run_command(["du", "-s", "-x", "-B1", str(path)], check=True).stdout
    return int(out.split()[0])


def test_measure_media_matches_du_and_counts_files(tmp_path):
    root = make_media(tmp_path / "uploads", [100, 5000, 70000])
    (root / "2026").mkdir()
    (root / "2026" / "meal.jpg").write_bytes(b"x" * 9000)
    measured = media.measure_media(str(root))
    assert measured["bytes"] == du_bytes(root)
    assert measured["files"] == 4
    assert measured["partial"] is False


def test_measure_media_of_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(OpsError) as info:
        media.measure_media(str(tmp_path / "nope"))
    assert "media_path" in str(info.value)


def test_record_baseline_appends_one_line_per_sample(tmp_path):
    root = make_media(tmp_path / "uploads", [4096] * 3)
    baseline = tmp_path / "state" / "media-baseline.jsonl"
    first = media.record_baseline(str(root), str(baseline), now=T0)
    second = media.record_baseline(str(root), str(baseline), now=T0 + datetime.timedelta(days=31))
    lines = [json.loads(line) for line in baseline.read_text().splitlines()]
    assert len(lines) == 2
    assert set(lines[0]) == {"ts", "path", "bytes", "files"}
    assert lines[0]["ts"] == "2026-01-01T06:05:00Z" and lines[0]["files"] == 3
    assert lines[0]["bytes"] == du_bytes(root)
    assert first["written"] and first["growth"]["status"] == "insufficient"
    assert second["growth"]["bytes_per_week"] == 0


def test_record_baseline_dry_run_writes_nothing(tmp_path):
    root = make_media(tmp_path / "uploads", [10])
    baseline = tmp_path / "media-baseline.jsonl"
    result = media.record_baseline(str(root), str(baseline), dry_run=True)
    assert result["written"] is False and not baseline.exists()


def _history(path, mount, used_by_day, total=100 * 10 ** 9):
    write_jsonl(path, [{"ts": iso_z(media.utc_now() - datetime.timedelta(days=ago)),
                        "mount": mount, "used_bytes": used, "total_bytes": total}
                       for ago, used in used_by_day])


def test_gate_on_a_real_tree_is_quiet_below_every_limit(tmp_path):
    root = make_media(tmp_path / "uploads", [1000] * 5)
    result = media.evaluate_gate(str(root), baseline_file=str(tmp_path / "none.jsonl"),
                                 record_count=8, disk_path=str(tmp_path),
                                 disk_limit_percent=100,
                                 disk_history_file=str(tmp_path / "none-disk.jsonl"))
    assert result["activate"] is False
    assert result["media_files"] == 5
    assert result["media_bytes"] == du_bytes(root)
    assert trigger(result, "disk")["days_to_limit"] is None


def test_gate_fires_on_size_just_above_the_measured_bytes(tmp_path):
    root = make_media(tmp_path / "uploads", [3000] * 4)
    size = du_bytes(root)
    common = dict(baseline_file=str(tmp_path / "none.jsonl"), disk_path=str(tmp_path),
                  disk_limit_percent=100, disk_history_file=str(tmp_path / "none.jsonl"))
    assert media.evaluate_gate(str(root), size_limit=size, **common)["activate"] is False
    assert media.evaluate_gate(str(root), size_limit=size - 1, **common)["activate"] is True


def test_gate_growth_from_a_baseline_file_with_a_month_gap(tmp_path):
    root = make_media(tmp_path / "uploads", [10])
    baseline = tmp_path / "media-baseline.jsonl"
    path = os.path.abspath(str(root))
    write_jsonl(baseline, [sample(0, 47 * MB, path=path), sample(31, 600 * MB, path=path)])
    result = media.evaluate_gate(path, baseline_file=str(baseline), disk_path=str(tmp_path),
                                 disk_limit_percent=100,
                                 disk_history_file=str(tmp_path / "none.jsonl"))
    growth = trigger(result, "growth")
    assert growth["hit"] is True
    assert growth["value"] == round(553 * MB * 7 / 31)


def test_gate_disk_trend_from_history_fires_within_the_horizon(tmp_path):
    from ansible_collections.runbook.ops.plugins.module_utils._ops.disk import filesystem_usage

    root = make_media(tmp_path / "uploads", [10])
    usage = filesystem_usage(str(tmp_path))
    visible = usage["used_bytes"] + usage["free_bytes"]
    limit = min(100, usage["used_percent"] + 5)
    gap = visible * limit / 100.0 - usage["used_bytes"]
    # growing by gap/30 per day: the limit is about 30 days away
    history = tmp_path / "disk-history.jsonl"
    _history(history, usage["mount"], [(ago, int(usage["used_bytes"] - gap / 30 * ago))
                                       for ago in (20, 10, 1)])
    common = dict(baseline_file=str(tmp_path / "none.jsonl"), disk_path=str(tmp_path),
                  disk_limit_percent=limit, disk_history_file=str(history))
    near = media.evaluate_gate(str(root), disk_trend_days=90, **common)
    assert trigger(near, "disk")["hit"] is True
    assert 20 < trigger(near, "disk")["days_to_limit"] < 40
    far = media.evaluate_gate(str(root), disk_trend_days=10, **common)
    assert trigger(far, "disk")["hit"] is (usage["used_percent"] >= limit)


def test_gate_record_count_command_feeds_the_records_trigger(tmp_path):
    root = make_media(tmp_path / "uploads", [10])
    common = dict(baseline_file=str(tmp_path / "none.jsonl"), disk_path=str(tmp_path),
                  disk_limit_percent=100, disk_history_file=str(tmp_path / "none.jsonl"))
    result = media.evaluate_gate(str(root), record_count_command="echo 1001", **common)
    assert trigger(result, "records")["value"] == 1001 and result["activate"] is True
    with pytest.raises(OpsError):
        media.evaluate_gate(str(root), record_count_command="echo lots", **common)


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
        media.check_cleanup_config({"chdir": "/opt/app", "approved_report": "mc-0123456789ab"})
    config = media.check_cleanup_config({"command": "true", "chdir": "/opt/app",
                                         "timeout_seconds": 60, "approved_report": "mc-0123456789ab"})
    assert config["command"] == "true"
    assert config["state_file"] == media.DEFAULT_STATE_FILE


# ---------------------------------------------------------------------------- wording

def test_no_disk_trend_says_how_many_samples_there_are_and_how_many_it_needs(tmp_path):
    from ansible_collections.runbook.ops.plugins.module_utils._ops import disk

    history = str(tmp_path / "disk-history.jsonl")
    usage = disk.filesystem_usage(str(tmp_path))
    write_jsonl(history, [disk.history_sample(usage)])
    state = media.disk_state(str(tmp_path), history, 70)
    assert state["samples"] == 1 and state["bytes_per_day"] is None
    detail = trigger(decide(disk=state), "disk")["detail"]
    assert detail.endswith("no trend yet: the disk-check history has 1 sample of %s, a trend "
                           "needs 2 samples at least a day apart" % usage["mount"])
    assert "0 samples of" in trigger(decide(disk=media.disk_state(
        str(tmp_path), str(tmp_path / "none.jsonl"), 70)), "disk")["detail"]


def test_counts_in_gate_lines_are_singular_for_one():
    result = dict(decide(records=1), media_path="/srv/media", media_files=1)
    assert trigger(result, "records")["detail"] == "1 record, limit 1000"
    assert media.summarize_gate(result).splitlines()[0] == (
        "media cleanup gate quiet for /srv/media (47.0 MB, 1 file)")

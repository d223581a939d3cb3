# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""disk.py: df-exact usage on real mounts, thresholds, the alert line, trend, bad input.

Usage figures are compared with the real ``df``/``df -i`` on ``/`` (ext4 with reserved
blocks, so Avail < Size - Used) and on small tmpfs mounts filled to chosen levels. The
tree walk itself is tested against ``du`` in test_treewalk.py; here ``measure_tree`` and
``check_disks`` are checked end to end on real trees.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), *[".."] * 5, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import disk  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.timestamps import iso_z  # noqa: E402

DAY = 86400.0
GIB = 1024 ** 3
NOW = 1800000000.0  # 2027-01-15T08:00:00Z


def df_row(path, inodes=False):
    """The real ``df`` figures for ``path``: Use%/IUse% as an int (None for '-')."""
    fields = "itotal,iused,iavail,ipcent,target" if inodes else "size,used,avail,pcent,target"
    proc = subprocess.run(["df", "-B1", "--output=" + fields, path], capture_output=True,
                          text=True, check=True)
    values = proc.stdout.splitlines()[1].split()
    pct = values[3].rstrip("%")
    return [int(v) for v in values[:3]] + [None if pct == "-" else int(pct), values[4]]


def fill(directory, num_bytes, name="fill"):
    with open(directory / name, "wb") as handle:
        handle.write(b"\0" * num_bytes)


# ---------------------------------------------------------------------------- df


def test_usage_of_root_matches_df_including_reserved_blocks():
    before = df_row("/")
    usage = disk.filesystem_usage("/")
    after = df_row("/")
    assert usage["used_percent"] in (before[3], after[3])
    assert usage["total_bytes"] == before[0]
    assert usage["mount"] == "/"
    assert usage["fstype"] and usage["device"]
    inodes = df_row("/", inodes=True)
    assert abs(usage["inodes_used_percent"] - inodes[3]) <= 1  # others create files meanwhile


@pytest.mark.parametrize("fill_bytes", [0, 4096, 300 * 1024, 700 * 1024, 716 * 1024,
                                        717 * 1024, 1000 * 1024],
                         ids=lambda b: "fill=%dk" % (b // 1024))
def test_usage_percent_rounds_up_like_df_on_tmpfs(tmpfs, fill_bytes):
    mount = tmpfs("fs", "size=1m")
    if fill_bytes:
        fill(mount, fill_bytes)
    size, used, avail, pcent, target = df_row(str(mount))
    usage = disk.filesystem_usage(str(mount))
    assert (usage["total_bytes"], usage["used_bytes"], usage["free_bytes"]) == (size, used, avail)
    assert usage["used_percent"] == pcent
    assert usage["mount"] == target == str(mount)
    assert usage["fstype"] == "tmpfs" and usage["device"] == "tmpfs"


@pytest.mark.parametrize("files", [0, 1, 33, 69, 70, 84, 99], ids=lambda n: "files=%d" % n)
def test_inode_percent_rounds_up_like_df_i(tmpfs, files):
    mount = tmpfs("fs", "size=1m,nr_inodes=100")
    for n in range(files):
        (mount / ("f%d" % n)).touch()
    itotal, iused, iavail, ipcent = df_row(str(mount), inodes=True)[:4]
    usage = disk.filesystem_usage(str(mount))
    assert (usage["inodes_total"], usage["inodes_used"], usage["inodes_free"]) == (itotal, iused, iavail)
    assert usage["inodes_used_percent"] == ipcent


def test_usage_of_a_file_or_subdirectory_reports_the_filesystem_holding_it(tmpfs):
    mount = tmpfs("fs")
    (mount / "sub" / "deeper").mkdir(parents=True)
    fill(mount / "sub", 10)
    for path in (mount / "sub" / "deeper", mount / "sub" / "fill"):
        usage = disk.filesystem_usage(str(path))
        assert usage["mount"] == str(mount)
        assert usage["path"] == str(path)


def test_usage_names_mount_points_with_spaces_as_mountinfo_escapes_them(tmpfs):
    mount = tmpfs("with space\tand tab")
    assert disk.filesystem_usage(str(mount))["mount"] == str(mount)


def test_usage_picks_the_top_of_stacked_mounts(tmpfs):
    first = tmpfs("stacked", "size=1m")
    second = tmpfs("stacked", "size=2m")
    assert first == second
    usage = disk.filesystem_usage(str(second))
    assert usage["total_bytes"] == df_row(str(second))[0] == 2 * 1024 * 1024


MOUNTINFO = (
    "25 24 0:23 / /dev/shm rw,relatime - tmpfs tmpfs rw,size=24683656k\n"
    "27 1 254:0 / / rw,relatime - ext4 /dev/vda rw,discard,resv_strict\n"
    "90 27 254:0 /srv/data /mnt/my\\040data rw,relatime shared:1 - ext4 /dev/vda rw\n"
    "91 27 0:50 / /mnt/my\\040data rw,relatime - tmpfs tmpfs rw\n"
    "garbage line\n"
)


def test_parse_mountinfo_decodes_escapes_and_keeps_optional_fields_apart():
    mounts = disk.parse_mountinfo(MOUNTINFO)
    assert [(m["mount"], m["device"], m["fstype"]) for m in mounts] == [
        ("/dev/shm", "tmpfs", "tmpfs"), ("/", "/dev/vda", "ext4"),
        ("/mnt/my data", "/dev/vda", "ext4"), ("/mnt/my data", "tmpfs", "tmpfs")]
    assert mounts[1]["dev"] == os.makedev(254, 0)


@pytest.mark.parametrize("path, dev, expected", [
    ("/var/lib/docker", None, "/"),
    ("/dev/shm/x", None, "/dev/shm"),
    ("/mnt/my data/file", None, ("/mnt/my data", "tmpfs")),
    ("/mnt/my data/file", os.makedev(254, 0), ("/mnt/my data", "ext4")),
    ("/dev/shmx", None, "/"),
], ids=["root", "prefix", "stacked-last-wins", "stacked-dev-match", "not-a-prefix"])
def test_find_mount_takes_the_longest_matching_mount_point(path, dev, expected):
    entry = disk.find_mount(path, disk.parse_mountinfo(MOUNTINFO), dev)
    if isinstance(expected, tuple):
        assert (entry["mount"], entry["fstype"]) == expected
    else:
        assert entry["mount"] == expected


@pytest.mark.parametrize("num_bytes, shown", [
    (0, "0"), (1023, "1023"), (1024, "1.0K"), (1025, "1.1K"), (1536, "1.5K"),
    (10 * 1024 - 1, "10K"), (14 * GIB, "14G"), (14 * GIB + 1, "15G"),
    (int(9.95 * GIB), "10G"), (1024 ** 2 - 1, "1.0M"), (79 * GIB + 5, "80G"),
])
def test_human_size_rounds_up_like_df_h(num_bytes, shown):
    assert disk.human_size(num_bytes) == shown


def test_human_size_agrees_with_real_df_h(tmpfs):
    mount = tmpfs("fs", "size=3m")
    fill(mount, 1234567)
    proc = subprocess.run(["df", "-h", "--output=avail", str(mount)], capture_output=True,
                          text=True, check=True)
    assert disk.human_size(disk.filesystem_usage(str(mount))["free_bytes"]) == proc.stdout.split()[1]


# ---------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize("percent, expected", [
    (None, "ok"), (0, "ok"), (69, "ok"), (69.9, "ok"), (70, "warning"), (71, "warning"),
    (84, "warning"), (85, "critical"), (86, "critical"), (100, "critical"),
])
def test_classify_counts_the_limit_itself_as_reached(percent, expected):
    assert disk.classify(percent, 70, 85) == expected


@pytest.mark.parametrize("statuses, expected", [
    ([], "ok"), (["ok", "ok"], "ok"), (["ok", "warning"], "warning"),
    (["critical", "warning", "ok"], "critical"),
])
def test_worst_status_wins(statuses, expected):
    assert disk.worst(statuses) == expected


@pytest.mark.parametrize("status, fail_on, expected", [
    ("critical", "never", False), ("ok", "warning", False), ("warning", "warning", True),
    ("critical", "warning", True), ("warning", "critical", False), ("critical", "critical", True),
])
def test_should_fail_at_or_above_fail_on(status, fail_on, expected):
    assert disk.should_fail(status, fail_on) is expected


def test_check_flags_a_filesystem_at_warn_and_crit_from_real_fill(tmpfs):
    mount = tmpfs("fs", "size=1m")
    fill(mount, 700 * 1024)
    pct = df_row(str(mount))[3]
    at_limit = disk.check_disks([str(mount)], warn_percent=pct, crit_percent=pct + 1,
                                history_file=None, host_label="web1")
    assert at_limit["status"] == "warning"
    below = disk.check_disks([str(mount)], warn_percent=pct + 1, crit_percent=pct + 2,
                             history_file=None)
    assert below["status"] == "ok"
    crit = disk.check_disks([str(mount)], warn_percent=pct - 1, crit_percent=pct,
                            history_file=None, host_label="web1")
    assert crit["status"] == "critical"
    assert crit["message"].startswith("\U0001f6a8 web1 disk CRITICAL: %d%% used on %s (free "
                                      % (pct, mount))
    assert crit["message"].endswith(", threshold %d%%)" % pct)


def test_check_flags_inodes_even_when_space_is_fine(tmpfs):
    mount = tmpfs("fs", "size=1m,nr_inodes=100")
    for n in range(90):
        (mount / ("f%d" % n)).touch()
    result = disk.check_disks([str(mount)], history_file=None, host_label="web1")
    fs = result["filesystems"][0]
    assert fs["used_percent"] < 70 and fs["inodes_used_percent"] >= 85
    assert result["status"] == "critical"
    assert "inodes %d%% used on %s" % (fs["inodes_used_percent"], mount) in result["message"]


# ---------------------------------------------------------------------------- message


def _fs(mount, pct, free, status, inodes_pct=10, inodes_free=1000):
    return {"mount": mount, "used_percent": pct, "free_bytes": free, "status": status,
            "inodes_used_percent": inodes_pct, "inodes_free": inodes_free}


@pytest.mark.parametrize("filesystems, expected", [
    ([_fs("/", 72, 14 * GIB, "warning")],
     "\u26a0\ufe0f web1 disk WARNING: 72% used (free 14G, threshold 70%)"),
    ([_fs("/", 85, int(7.5 * GIB), "critical")],
     "\U0001f6a8 web1 disk CRITICAL: 85% used (free 7.5G, threshold 85%)"),
    ([_fs("/", 22, 39 * GIB, "ok")],
     "\u2705 web1 disk OK: 22% used (free 39G, threshold 70%)"),
    ([_fs("/data", 72, 14 * GIB, "warning")],
     "\u26a0\ufe0f web1 disk WARNING: 72% used on /data (free 14G, threshold 70%)"),
    ([_fs("/", 72, 14 * GIB, "warning"), _fs("/data", 90, GIB, "critical"),
      _fs("/srv", 10, GIB, "ok")],
     "\U0001f6a8 web1 disk CRITICAL: 90% used on /data (free 1.0G, threshold 85%); / WARNING 72%"),
    ([_fs("/", 40, 14 * GIB, "warning", inodes_pct=75, inodes_free=2500)],
     "\u26a0\ufe0f web1 disk WARNING: inodes 75% used (free 2500 inodes, threshold 70%)"),
], ids=["runbook-warning", "runbook-critical", "ok", "other-mount", "several", "inodes"])
def test_message_uses_the_runbook_alert_format(filesystems, expected):
    assert disk.format_disk_message("web1", filesystems, 70, 85, 70, 85) == expected


# ---------------------------------------------------------------------------- trend


def _history(path, rows):
    with open(path, "w") as handle:
        for row in rows:
            handle.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
    return str(path)


def _usage(used, free):
    return {"used_bytes": used, "free_bytes": free, "mount": "/"}


def test_trend_fits_growth_per_day_and_days_until_each_limit(tmp_path):
    rows = [{"ts": iso_z(NOW - (9 - d) * DAY), "mount": "/",
             "used_bytes": 50 * GIB + d * GIB, "total_bytes": 100 * GIB} for d in range(10)]
    rows.insert(3, {"ts": iso_z(NOW), "mount": "/data", "used_bytes": 1, "total_bytes": 2})
    rows.insert(5, "{not json")
    rows.insert(6, {"ts": "yesterday", "mount": "/", "used_bytes": 1, "total_bytes": 2})
    samples = disk.read_history(_history(tmp_path / "h.jsonl", rows), "/")
    assert len(samples) == 10
    trend = disk.compute_trend(samples, _usage(60 * GIB, 40 * GIB), 70, 85)
    assert trend == {"growth_bytes_per_day": GIB, "samples": 10, "span_days": 9.0,
                     "days_until_warn": 10.0, "days_until_crit": 25.0, "days_until_full": 40.0}


@pytest.mark.parametrize("rows, expected", [
    ([], None),
    ([(0, 10)], None),
    ([(0, 10), (0.5 * DAY, 20)], None),
    ([(0, 10), (DAY, 20)], 10),
    ([(0, 30), (DAY, 20), (2 * DAY, 10)], -10),
], ids=["none", "one-sample", "under-a-day", "two-samples-a-day", "shrinking"])
def test_trend_needs_two_samples_spanning_a_day(rows, expected):
    trend = disk.compute_trend([(NOW + t, used) for t, used in rows], _usage(1000, 1000), 70, 85)
    if expected is None:
        assert trend is None
    else:
        assert trend["growth_bytes_per_day"] == expected
    if expected is not None and expected < 0:
        assert trend["days_until_warn"] is None and trend["days_until_full"] is None


def test_trend_days_are_zero_once_past_a_limit():
    trend = disk.compute_trend([(NOW, 70), (NOW + DAY, 80)], _usage(80, 20), 70, 85)
    assert trend["days_until_warn"] == 0.0
    assert trend["days_until_crit"] == 0.5
    assert trend["days_until_full"] == 2.0


def test_check_reports_trend_per_mount_from_forged_history(tmp_path):
    usage = disk.filesystem_usage("/")
    rows = [{"ts": iso_z(NOW - (4 - d) * DAY), "mount": "/",
             "used_bytes": usage["used_bytes"] - (4 - d) * 100 * 1024 ** 2,
             "total_bytes": usage["total_bytes"]} for d in range(5)]
    rows.append({"ts": iso_z(NOW + DAY), "mount": "/", "used_bytes": 0,
                 "total_bytes": 1})  # from the future: ignored
    history = _history(tmp_path / "disk-history.jsonl", rows)
    result = disk.check_disks(["/", "/var/tmp"], history_file=history, now=NOW)
    assert list(result["trend"]) == ["/"]
    assert result["trend"]["/"]["growth_bytes_per_day"] == 100 * 1024 ** 2
    assert result["trend"]["/"]["samples"] == 5


def test_check_without_history_has_no_trend(tmp_path):
    result = disk.check_disks(["/"], history_file=str(tmp_path / "missing.jsonl"))
    assert "trend" not in result


def test_history_sample_is_the_line_the_history_keeps():
    usage = {"mount": "/", "used_bytes": 5, "total_bytes": 10}
    assert disk.history_sample(usage, now=NOW) == {
        "ts": "2027-01-15T08:00:00Z", "mount": "/", "used_bytes": 5, "total_bytes": 10}


# ---------------------------------------------------------------------------- scan


def _tree(root):
    for a in range(3):
        for b in range(4):
            directory = root / ("a%d" % a) / ("b%d" % b)
            directory.mkdir(parents=True)
            with open(directory / "data", "wb") as handle:
                handle.write(b"d" * (a * 40000 + b * 9000 + 1))
    os.link(root / "a0" / "b0" / "data", root / "a2" / "again")


def _du_listing(root):
    proc = subprocess.run(["du", "-x", "-B1", str(root)], capture_output=True, text=True,
                          check=True)
    rows = [line.split("\t", 1) for line in proc.stdout.splitlines()]
    return sorted(((int(size), path) for size, path in rows), reverse=True)


@pytest.mark.parametrize("count", [1, 5, 20, 100])
def test_scan_largest_dirs_lists_what_du_sort_tail_lists(tmp_path, count):
    root = tmp_path / "tree"
    _tree(root)
    result = disk.scan_largest_dirs([str(root)], count=count)
    expected = _du_listing(root)[:count]
    assert [(row["bytes"], row["path"]) for row in result["largest"]] == expected
    assert result["partial"] is False and result["unreadable"] == []


def test_scan_merges_several_roots_biggest_first(tmp_path):
    for name in ("one", "two"):
        _tree(tmp_path / name)
    result = disk.scan_largest_dirs([str(tmp_path / "one"), str(tmp_path / "two")], count=4)
    expected = sorted(_du_listing(tmp_path / "one") + _du_listing(tmp_path / "two"),
                      reverse=True)[:4]
    assert [(row["bytes"], row["path"]) for row in result["largest"]] == expected


def test_measure_tree_gives_du_s_bytes_and_counts_files_once(tmp_path):
    root = tmp_path / "tree"
    _tree(root)
    os.symlink("a0", root / "link")
    measured = disk.measure_tree(str(root))
    du_s = int(subprocess.run(["du", "-sxB1", str(root)], capture_output=True, text=True,
                              check=True).stdout.split()[0])
    assert measured == {"bytes": du_s, "files": 13, "dirs": 1 + 3 + 12, "unreadable": [],
                        "partial": False}


def test_check_scan_past_scan_timeout_is_flagged_partial(tmp_path):
    root = tmp_path / "tree"
    _tree(root)
    result = disk.check_disks(["/"], largest_under=[str(root)], scan_timeout=1e-9,
                              history_file=None)
    assert result["scan"]["partial"] is True


def test_check_result_has_every_documented_key(tmp_path):
    root = tmp_path / "tree"
    _tree(root)
    result = disk.check_disks([str(root)], largest_under=[str(root)], largest_count=3,
                              history_file=None)
    assert set(result) == {"changed", "status", "filesystems", "largest", "message", "scan"}
    assert result["changed"] is False
    assert set(result["filesystems"][0]) == {
        "path", "mount", "device", "fstype", "total_bytes", "used_bytes", "free_bytes",
        "used_percent", "inodes_total", "inodes_used", "inodes_free", "inodes_used_percent",
        "status"}
    assert set(result["scan"]) == {"partial", "unreadable", "dirs", "files", "seconds", "workers"}
    assert len(result["largest"]) == 3


# ---------------------------------------------------------------------------- bad input


@pytest.mark.parametrize("kwargs, words", [
    (dict(warn_percent=85, crit_percent=85), "warn_percent (85) must be lower than crit_percent (85)"),
    (dict(warn_percent=90, crit_percent=85), "warn_percent (90) must be lower than crit_percent (85)"),
    (dict(warn_percent=-1), "warn_percent must be between 0 and 100, got -1"),
    (dict(crit_percent=101), "crit_percent must be between 0 and 100, got 101"),
    (dict(inode_warn_percent=90, inode_crit_percent=80),
     "inode_warn_percent (90) must be lower than inode_crit_percent (80)"),
    (dict(inode_crit_percent=150), "inode_crit_percent must be between 0 and 100"),
    (dict(warn_percent="70"), "warn_percent must be a number"),
    (dict(paths=["/nonexistent/runbook-ops"]), "path /nonexistent/runbook-ops does not exist"),
    (dict(paths=[]), "paths is empty"),
    (dict(largest_under=["/nonexistent/dir"]), "largest_under: /nonexistent/dir does not exist"),
    (dict(largest_under=["/etc/hostname"]), "largest_under: /etc/hostname is not a directory"),
    (dict(largest_count=0), "largest_count must be a whole number of at least 1"),
    (dict(scan_timeout=0), "scan_timeout must be a positive number"),
    (dict(fail_on="sometimes"), "fail_on must be one of never, warning, critical"),
], ids=["warn-equals-crit", "warn-above-crit", "warn-negative", "crit-over-100",
        "inode-warn-above-crit", "inode-over-100", "not-a-number", "missing-path",
        "no-paths", "missing-scan-root", "scan-root-is-a-file", "count-zero", "timeout-zero",
        "bad-fail-on"])
def test_check_rejects_bad_input_with_a_clear_message(kwargs, words):
    with pytest.raises(OpsError) as caught:
        disk.check_disks(history_file=None, **kwargs)
    assert words in caught.value.message


@pytest.mark.parametrize("path, words", [
    ("/nonexistent/x", "does not exist"), ("/etc/hostname", "is not a directory"),
], ids=["missing", "file"])
def test_measure_tree_rejects_what_is_not_a_directory(path, words):
    with pytest.raises(OpsError) as caught:
        disk.measure_tree(path)
    assert words in caught.value.message

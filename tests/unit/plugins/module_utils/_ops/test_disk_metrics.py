# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""disk_metrics.py: the Prometheus text format for node_exporter's textfile collector."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from tmpfs import mounted_tmpfs

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import disk_metrics  # noqa: E402

CONFIG = {"warn_percent": 70, "crit_percent": 85}
RESULT = {
    "filesystems": [
        {"mount": "/", "used_percent": 72, "used_bytes": 36 << 30, "free_bytes": 14 << 30,
         "total_bytes": 50 << 30, "inodes_used_percent": 12, "status": "warning"},
        {"mount": "/", "used_percent": 72, "used_bytes": 36 << 30, "free_bytes": 14 << 30,
         "total_bytes": 50 << 30, "inodes_used_percent": 12, "status": "warning"},
        {"mount": "/srv/btr", "used_percent": 10, "used_bytes": 1, "free_bytes": 9,
         "total_bytes": 10, "inodes_used_percent": None, "status": "ok"},
    ],
    "largest": [{"path": '/var/lib/eatfit24/media "odd"\\name\nline', "bytes": 47000000}],
    "trend": {"/": {"growth_bytes_per_day": 1 << 20}},
    "scan": {"partial": False},
}
# The exposition format's line grammar (text format 0.0.4).
_SAMPLE = re.compile(r'^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*="([^"\\\n]|\\[\\"n])*",?)*\})? '
                     r'-?[0-9.e+]+$')


def test_every_family_has_help_and_type_before_its_samples():
    text = disk_metrics.format_disk_metrics(RESULT, CONFIG, now=1767250800.5)
    assert text.endswith("\n")
    families = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if line.startswith("# HELP "):
            name = line.split()[2]
            assert lines[number + 1].startswith("# TYPE %s gauge" % name)
            families.append(name)
        elif not line.startswith("# TYPE "):
            assert _SAMPLE.match(line), line
            assert line.split("{")[0].split(" ")[0] == families[-1]
    assert families == [
        "runbook_ops_disk_used_percent", "runbook_ops_disk_used_bytes",
        "runbook_ops_disk_free_bytes", "runbook_ops_disk_size_bytes",
        "runbook_ops_disk_inodes_used_percent", "runbook_ops_disk_status",
        "runbook_ops_disk_threshold_percent", "runbook_ops_disk_largest_dir_bytes",
        "runbook_ops_disk_growth_bytes_per_day", "runbook_ops_disk_scan_partial",
        "runbook_ops_disk_last_run_timestamp_seconds"]


@pytest.mark.parametrize("sample", [
    'runbook_ops_disk_used_percent{mount="/"} 72',
    'runbook_ops_disk_used_bytes{mount="/"} 38654705664',
    'runbook_ops_disk_free_bytes{mount="/srv/btr"} 9',
    'runbook_ops_disk_size_bytes{mount="/"} 53687091200',
    'runbook_ops_disk_status{mount="/"} 1',
    'runbook_ops_disk_status{mount="/srv/btr"} 0',
    'runbook_ops_disk_threshold_percent{level="critical"} 85',
    'runbook_ops_disk_largest_dir_bytes{path="/var/lib/eatfit24/media \\"odd\\"\\\\name\\nline"} 47000000',
    'runbook_ops_disk_growth_bytes_per_day{mount="/"} 1048576',
    'runbook_ops_disk_scan_partial 0',
    'runbook_ops_disk_last_run_timestamp_seconds 1767250800.5',
], ids=["percent", "used", "free", "size", "status-warning", "status-ok", "threshold",
        "escaped-path", "growth", "partial", "timestamp"])
def test_samples_carry_the_check_figures(sample):
    lines = disk_metrics.format_disk_metrics(RESULT, CONFIG, now=1767250800.5).splitlines()
    assert sample in lines


def test_each_mount_once_and_no_inode_sample_without_inode_counts():
    text = disk_metrics.format_disk_metrics(RESULT, CONFIG, now=0)
    assert text.count('runbook_ops_disk_used_percent{mount="/"}') == 1
    assert 'runbook_ops_disk_inodes_used_percent{mount="/srv/btr"}' not in text


def test_label_values_escape_backslash_quote_newline_and_replace_bad_bytes():
    assert disk_metrics.escape_label_value('a\\b"c\nd') == 'a\\\\b\\"c\\nd'
    assert disk_metrics.escape_label_value(os.fsdecode(b"/srv/caf\xe9")) == "/srv/caf\ufffd"


def test_write_textfile_replaces_the_file_atomically(tmp_path):
    directory = tmp_path / "textfile_collector"
    assert disk_metrics.write_textfile(str(directory), "a 1\n") is None
    inode = os.stat(str(directory / "runbook_ops_disk.prom")).st_ino
    assert disk_metrics.write_textfile(str(directory), "a 2\n") is None
    prom = directory / "runbook_ops_disk.prom"
    assert prom.read_text() == "a 2\n" and os.stat(str(prom)).st_ino != inode  # renamed over
    assert oct(os.stat(str(prom)).st_mode & 0o777) == "0o644"
    assert os.listdir(str(directory)) == ["runbook_ops_disk.prom"]


def test_write_textfile_reports_a_full_disk_and_leaves_no_temp_file(tmp_path):
    with mounted_tmpfs(tmp_path / "full", "size=64k") as mount:
        assert disk_metrics.write_textfile(str(mount), "old 1\n") is None
        subprocess.run(["dd", "if=/dev/zero", "of=%s/filler" % mount, "bs=4k"],
                       capture_output=True, check=False)
        problem = disk_metrics.write_textfile(str(mount), "new 1\n" * 5000)
        assert problem == "cannot write %s/runbook_ops_disk.prom: No space left on device" % mount
        assert (mount / "runbook_ops_disk.prom").read_text() == "old 1\n"
        assert sorted(os.listdir(str(mount))) == ["filler", "runbook_ops_disk.prom"]


def test_write_textfile_reports_a_directory_it_cannot_make(tmp_path):
    (tmp_path / "file").write_text("")
    problem = disk_metrics.write_textfile(str(tmp_path / "file" / "sub"), "a 1\n")
    assert problem.startswith("cannot write %s/file/sub/runbook_ops_disk.prom: " % tmp_path)


def test_the_reference_parser_reads_it_back():
    parser = pytest.importorskip("prometheus_client.parser")
    text = disk_metrics.format_disk_metrics(RESULT, CONFIG, now=1767250800.5)
    families = {f.name: f for f in parser.text_string_to_metric_families(text)}
    largest = families["runbook_ops_disk_largest_dir_bytes"].samples[0]
    assert largest.labels["path"] == RESULT["largest"][0]["path"]
    assert families["runbook_ops_disk_used_percent"].samples[0].value == 72

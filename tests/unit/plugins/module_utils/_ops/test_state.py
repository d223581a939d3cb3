# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""state.py against real files, including a real full tmpfs and a read-only mount."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tmpfs import mounted_tmpfs

sys.path.insert(0, os.path.join(os.path.dirname(__file__), *[".."] * 5, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops.state import (  # noqa: E402
    append_jsonl, read_json, read_jsonl, write_json_atomic)


@pytest.fixture
def full_dir(tmp_path):
    """A 64 KiB tmpfs filled to the last byte."""
    with mounted_tmpfs(tmp_path / "full", "size=64k") as directory:
        subprocess.run(["dd", "if=/dev/zero", "of=%s/filler" % directory, "bs=4k"],
                       capture_output=True, check=False)
        yield directory


@pytest.mark.parametrize("content, expected", [
    (None, "fallback"),
    ('{"a": 1}', {"a": 1}),
    ('{"a": 1', "fallback"),
    ("", "fallback"),
], ids=["missing", "valid", "torn", "empty"])
def test_read_json_falls_back_for_missing_or_corrupt_files(tmp_path, content, expected):
    path = tmp_path / "state.json"
    if content is not None:
        path.write_text(content)
    assert read_json(path, "fallback") == expected


def test_write_json_atomic_creates_parents_and_leaves_no_temp_files(tmp_path):
    path = tmp_path / "a" / "b" / "state.json"
    assert write_json_atomic(path, {"level": "critical", "text": "диск"}) is True
    assert json.loads(path.read_text(encoding="utf-8")) == {"level": "critical", "text": "диск"}
    assert os.listdir(path.parent) == ["state.json"]
    assert (path.stat().st_mode & 0o777) == 0o644


def test_write_json_atomic_returns_false_on_full_disk_and_keeps_old_content(full_dir):
    path = full_dir / "state.json"
    # Make room for the first version, then fill the rest again.
    os.unlink(full_dir / "filler")
    assert write_json_atomic(path, {"v": 1}) is True
    subprocess.run(["dd", "if=/dev/zero", "of=%s/filler" % full_dir, "bs=1k"], capture_output=True, check=False)
    assert write_json_atomic(path, {"v": 2, "pad": "x" * 20000}) is False
    assert read_json(path) == {"v": 1}
    assert sorted(os.listdir(full_dir)) == ["filler", "state.json"]


def test_write_json_atomic_returns_false_on_read_only_filesystem(tmp_path):
    with mounted_tmpfs(tmp_path / "ro", "size=64k,ro") as directory:
        assert write_json_atomic(directory / "state.json", {"v": 1}) is False
        assert append_jsonl(directory / "history.jsonl", {"v": 1}) is False


def test_write_json_atomic_raises_for_other_errors(tmp_path):
    (tmp_path / "dir.json").mkdir()
    with pytest.raises(OSError):
        write_json_atomic(tmp_path / "dir.json", {"v": 1})


def test_append_jsonl_returns_false_on_full_disk(full_dir):
    assert append_jsonl(full_dir / "history.jsonl", {"pad": "x" * 8192}) is False


def test_append_after_torn_line_starts_a_new_line(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_text('{"n": 1}\n{"n": 2, "tor')
    assert append_jsonl(path, {"n": 3}) is True
    assert read_jsonl(path) == [{"n": 1}, {"n": 3}]


def test_read_jsonl_skips_blank_and_corrupt_lines(tmp_path):
    path = tmp_path / "history.jsonl"
    path.write_bytes(b'{"n": 1}\n\nnot json\n{"n": 2}\n\xff\xfe\n[1, 2]\n')
    assert read_jsonl(path) == [{"n": 1}, {"n": 2}, [1, 2]]
    assert read_jsonl(tmp_path / "missing.jsonl") == []

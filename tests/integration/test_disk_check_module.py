# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""runbook.ops.disk_check through `ansible localhost -m` (AnsiballZ, forked scan workers).

Each run uses the json stdout callback so the module's result is read exactly. Runs go
through the venv's Python (the inventory's interpreter) and through /usr/bin/python3,
the interpreter Debian hosts run. Thresholds are tested on a small tmpfs filled to a
known level, so the outcome does not depend on how full this machine's disks are.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tmpfs import mounted_tmpfs

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")
INTERPRETERS = [sys.executable, "/usr/bin/python3"]


def run_module(args, check=False, interpreter=None):
    """Run the module once; return (task result dict, raw stdout + stderr)."""
    env = dict(os.environ)
    env.update({
        "ANSIBLE_CONFIG": os.path.join(_REPO, "ansible.cfg"),
        "ANSIBLE_COLLECTIONS_PATH": os.path.join(_REPO, ".collections"),
        "ANSIBLE_LOAD_CALLBACK_PLUGINS": "true",
        "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json",
        "ANSIBLE_NOCOLOR": "1",
    })
    argv = [_ANSIBLE, "localhost", "-m", "runbook.ops.disk_check", "-a", json.dumps(args)]
    if check:
        argv.append("--check")
    if interpreter:
        argv += ["-e", "ansible_python_interpreter=%s" % interpreter]
    proc = subprocess.run(argv, cwd=_REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    output = proc.stdout + proc.stderr
    data = json.loads(proc.stdout)
    result = data["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return result, output


def du_listing(root):
    proc = subprocess.run(["du", "-x", "-B1", str(root)], capture_output=True, text=True,
                          check=True)
    rows = [line.split("\t", 1) for line in proc.stdout.splitlines()]
    return sorted(((int(size), path) for size, path in rows), reverse=True)


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "tree"
    for a in range(5):
        for b in range(6):
            directory = root / ("app%d" % a) / ("d%d" % b)
            directory.mkdir(parents=True)
            for n in range(b + 1):
                with open(directory / ("f%d" % n), "wb") as handle:
                    handle.write(b"x" * (a * 11000 + n * 3000 + 1))
    os.link(root / "app0" / "d5" / "f5", root / "app4" / "hard")
    os.symlink(str(root / "app4"), root / "app0" / "to-app4")
    return root


@pytest.fixture
def filled_tmpfs(tmp_path):
    """A 1 MiB tmpfs filled to 700 KiB: df says 69% (tmpfs has no reserved blocks)."""
    with mounted_tmpfs(tmp_path / "fs") as mount:
        with open(mount / "fill", "wb") as handle:
            handle.write(b"\0" * 700 * 1024)
        yield mount


@pytest.mark.parametrize("interpreter", INTERPRETERS, ids=["venv-python", "system-python"])
def test_module_reports_filesystems_and_largest_dirs_like_du(tree, interpreter):
    result, output = run_module({"paths": ["/", str(tree)], "largest_under": [str(tree)],
                                 "largest_count": 8, "history_file": str(tree / "none.jsonl"),
                                 "host_label": "web1"}, interpreter=interpreter)
    assert result.get("failed") is not True, output
    assert result["changed"] is False
    assert [fs["mount"] for fs in result["filesystems"]] == ["/", "/"]
    assert result["message"].startswith(("\u2705 web1 disk OK: ", "\u26a0\ufe0f web1 disk WARNING: ",
                                         "\U0001f6a8 web1 disk CRITICAL: "))
    assert [(row["bytes"], row["path"]) for row in result["largest"]] == du_listing(tree)[:8]
    assert result["scan"]["partial"] is False and result["scan"]["unreadable"] == []
    assert result["scan"]["workers"] >= 1
    assert "trend" not in result


def test_module_in_check_mode_gives_the_same_result(tree):
    args = {"paths": [str(tree)], "largest_under": [str(tree)], "largest_count": 5,
            "history_file": str(tree / "none.jsonl")}
    real = run_module(args)[0]
    checked, output = run_module(args, check=True)
    assert checked.get("failed") is not True, output
    assert checked["changed"] is False
    assert checked["largest"] == real["largest"]
    assert checked["status"] == real["status"]


@pytest.mark.parametrize("fail_on, warn, crit, failed, status", [
    ("never", 60, 65, False, "critical"),
    ("warning", 60, 90, True, "warning"),
    ("critical", 60, 90, False, "warning"),
    ("critical", 60, 69, True, "critical"),
    ("warning", 70, 90, False, "ok"),
], ids=["never", "warning-fails", "warning-passes-critical", "critical-at-limit", "ok"])
def test_module_fails_only_at_or_above_fail_on(filled_tmpfs, fail_on, warn, crit, failed, status):
    result, output = run_module({"paths": [str(filled_tmpfs)], "warn_percent": warn,
                                 "crit_percent": crit, "fail_on": fail_on,
                                 "host_label": "web1", "history_file": "/nonexistent"})
    assert result["filesystems"][0]["used_percent"] == 69
    assert result["status"] == status
    assert bool(result.get("failed")) is failed, output
    if failed:
        assert result["msg"] == result["message"]
        assert result["msg"].endswith("69%% used on %s (free 324K, threshold %d%%)" % (
            filled_tmpfs, crit if status == "critical" else warn))


def test_module_fails_on_a_full_history_trend(tmp_path):
    """A forged history makes a trend; the module reads it read-only."""
    history = tmp_path / "disk-history.jsonl"
    rows = [{"ts": "2026-01-%02dT09:00:00Z" % d, "mount": "/", "used_bytes": 10 ** 9 + d * 10 ** 8,
             "total_bytes": 5 * 10 ** 10} for d in range(1, 11)]
    history.write_text("".join(json.dumps(row) + "\n" for row in rows))
    before = history.read_bytes()
    result, output = run_module({"paths": ["/"], "history_file": str(history)})
    assert result["trend"]["/"]["growth_bytes_per_day"] == 10 ** 8, output
    assert result["trend"]["/"]["samples"] == 10
    assert history.read_bytes() == before


@pytest.mark.parametrize("args, words", [
    ({"warn_percent": 90, "crit_percent": 85}, "warn_percent (90) must be lower than crit_percent (85)"),
    ({"warn_percent": 85, "crit_percent": 85}, "warn_percent (85) must be lower than crit_percent (85)"),
    ({"crit_percent": 120}, "crit_percent must be between 0 and 100, got 120"),
    ({"paths": ["/nonexistent/runbook-ops"]}, "path /nonexistent/runbook-ops does not exist"),
    ({"largest_under": ["/etc/hostname"]}, "largest_under: /etc/hostname is not a directory"),
], ids=["warn-above-crit", "warn-equals-crit", "percent-over-100", "missing-path", "scan-a-file"])
def test_module_fails_with_a_clear_message_and_no_traceback(args, words):
    result, output = run_module(args)
    assert result["failed"] is True
    assert words in result["msg"]
    assert "Traceback" not in output
    # ansible-core 2.19 marks every failure without a traceback as "(traceback unavailable)".
    assert result.get("exception", "(traceback unavailable)") == "(traceback unavailable)"
    assert "module_stderr" not in result

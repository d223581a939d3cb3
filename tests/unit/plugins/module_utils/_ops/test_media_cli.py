# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The media subcommands of runbook-ops, through cli.main as cron runs them."""

from __future__ import annotations

import json
import os
import sys

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
_COLLECTIONS = os.path.join(_REPO, ".collections")
if _COLLECTIONS not in sys.path:
    sys.path.insert(0, _COLLECTIONS)

from ansible_collections.runbook.ops.plugins.module_utils._ops import cli  # noqa: E402


@pytest.fixture
def host(tmp_path):
    runtime = tmp_path / "runtime.json"
    runtime.write_text(json.dumps({"state_dir": str(tmp_path / "state"),
                                   "log_dir": str(tmp_path / "log")}))
    media = tmp_path / "uploads"
    media.mkdir()
    for index in range(3):
        (media / ("p%d.jpg" % index)).write_bytes(b"x" * 5000)
    return tmp_path


def run(host, *argv):
    return cli.main(["--runtime", str(host / "runtime.json")] + list(argv))


def write(host, name, config):
    path = host / name
    path.write_text(json.dumps(config))
    return str(path)


def test_media_subcommands_are_registered():
    assert {cmd for cmd, mod in cli.COMMANDS.items() if mod == "media_cli"} == {
        "media-baseline", "media-gate", "media-cleanup"}


def test_media_baseline_appends_a_sample_and_prints_a_line(host, capsys):
    baseline = host / "state" / "media-baseline.jsonl"
    config = write(host, "mb.json", {"_comment": "managed", "media_path": str(host / "uploads"),
                                     "baseline_file": str(baseline)})
    assert run(host, "media-baseline", "--config", config) == 0
    out = capsys.readouterr().out
    assert "3 files" in out and "growth n/a" in out
    assert json.loads(baseline.read_text())["files"] == 3


@pytest.mark.parametrize("sub, config", [
    ("media-baseline", {"media_path": "uploads"}),
    ("media-gate", {"media_path": "/srv/m", "size_limit": "500 megs"}),
    ("media-cleanup", {"command": [], "chdir": "/opt/app"}),
])
def test_validate_refuses_bad_configs_with_exit_2(host, capsys, sub, config):
    assert run(host, sub, "--config", write(host, "bad.json", config), "--validate") == 2
    assert "error" in capsys.readouterr().err


def test_validate_accepts_good_configs(host):
    good = write(host, "good.json", {"media_path": "/srv/media"})
    assert run(host, "media-gate", "--config", good, "--validate") == 0
    assert run(host, "media-baseline", "--config", good, "--validate") == 0


def test_media_gate_prints_json_and_records_the_alert_level(host, capsys):
    config = write(host, "g.json", {"media_path": str(host / "uploads"), "size_limit": "1kB",
                                    "disk_limit_percent": 100})
    assert run(host, "media-gate", "--config", config, "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["activate"] is True
    alerts = json.loads((host / "state" / "alerts.json").read_text())
    assert alerts["media-cleanup"]["level"] == "warning"


def test_media_cleanup_runs_in_chdir_and_fails_with_the_command(host, capsys):
    ok = write(host, "c.json", {"command": "pwd", "chdir": str(host)})
    assert run(host, "media-cleanup", "--config", ok) == 0
    assert str(host) in capsys.readouterr().out
    bad = write(host, "c2.json", {"command": "exit 3", "chdir": str(host)})
    assert run(host, "media-cleanup", "--config", bad) == 1
    assert "status 3" in capsys.readouterr().out

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""docker_cleanup_cli.py: config loading, validation, output lines and exit codes."""

from __future__ import annotations

import argparse
import json
import os
import sys

import pytest

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_cleanup_cli as dcc  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402


def _parse(argv):
    parser = argparse.ArgumentParser(prog="runbook-ops")
    dcc.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


def _config(tmp_path, data):
    path = tmp_path / "docker-cleanup.json"
    path.write_text(json.dumps(data) if not isinstance(data, str) else data)
    return str(path)


def test_validate_accepts_the_role_config_with_its_comment(tmp_path, capsys):
    path = _config(tmp_path, {"_comment": "Ansible managed", "until": "168h", "images": "unused",
                              "builder_cache": True, "volumes": "none", "target_percent": None})
    args = _parse(["docker-cleanup", "--config", path, "--validate"])
    assert args.func(args, {}) == 0
    assert "is valid" in capsys.readouterr().out


@pytest.mark.parametrize("data,match", [
    ({"images": "everything"}, "images: 'everything' is not one of"),
    ({"until": "a week"}, "until: 'a week' is not a duration"),
    ({"prune": True}, "unknown option"),
    ("[1, 2]", "JSON object"),
    ("{not json", "not valid JSON"),
], ids=["bad-images", "bad-until", "unknown-key", "not-object", "not-json"])
def test_validate_rejects_bad_config_naming_the_file(tmp_path, data, match):
    path = _config(tmp_path, data)
    args = _parse(["docker-cleanup", "--config", path, "--validate"])
    with pytest.raises(OpsError, match=match) as info:
        args.func(args, {})
    assert path in info.value.message or "not valid JSON" in info.value.message


def test_missing_config_is_a_clear_error(tmp_path):
    args = _parse(["docker-cleanup", "--config", str(tmp_path / "nope.json")])
    with pytest.raises(OpsError, match="cannot read config"):
        args.func(args, {})


def test_unreachable_daemon_is_bad_input_not_a_traceback(tmp_path):
    path = _config(tmp_path, {"docker_host": "unix://%s/none.sock" % tmp_path})
    args = _parse(["docker-cleanup", "--config", path])
    with pytest.raises(OpsError, match="cannot reach the Docker daemon"):
        args.func(args, {})


RESULT = {
    "check_mode": False, "docker_host": "unix:///var/run/docker.sock",
    "reclaimed_bytes": 3 * 1024 * 1024, "usage_before_percent": 86.4, "usage_after_percent": 71.25,
    "errors": ["image app:2: conflict: image is being used by running container 1234"],
    "warnings": [],
    "steps": [
        {"name": "builder_cache", "skipped": None, "removed": ["r1"], "reclaimed_bytes": 1024,
         "planned": [{"id": "r1", "name": "local source for context", "size_bytes": 1024}]},
        {"name": "containers", "skipped": "disabled", "removed": [], "reclaimed_bytes": 0,
         "planned": []},
        {"name": "images", "skipped": None, "removed": ["sha256:a"], "reclaimed_bytes": 2097152,
         "planned": [{"id": "sha256:a", "name": "app:1", "size_bytes": 2097152},
                     {"id": "sha256:b", "name": "app:2", "size_bytes": 5}]},
        {"name": "volumes", "skipped": "target reached", "removed": [], "reclaimed_bytes": 0,
         "planned": [{"id": "v", "name": "v", "size_bytes": 1}]},
    ],
}


def test_format_result_lists_steps_removed_items_and_refusals():
    lines = dcc.format_result(RESULT)
    assert lines[0] == ("docker cleanup on unix:///var/run/docker.sock: freed 3.0 MiB, "
                        "disk 86.4% -> 71.2%")
    assert "  builder_cache 1 removed, 1.0 KiB" in lines
    assert "  containers    skipped (disabled)" in lines
    assert "    - app:1 2.0 MiB" in lines
    assert not any("app:2 " in line and line.startswith("    -") for line in lines)
    assert "  volumes       skipped (target reached)" in lines
    assert lines[-1].startswith("  not removed: image app:2: conflict")


def test_format_result_says_what_was_kept_and_which_tags_moved():
    result = dict(RESULT, errors=[], kept=[
        {"kind": "container", "id": "c1", "name": "db-1",
         "reason": "exited 5 min ago (exit 137), younger than 168h"}],
        moved_tags=[{"tag": "app:1", "planned_image": "sha256:old",
                     "image": "sha256:0123456789abcdef0123"}])
    result["steps"] = [dict(RESULT["steps"][2], planned=[
        {"id": "sha256:a", "name": "app:1", "size_bytes": None}])]
    lines = dcc.format_result(result)
    assert "    - app:1" in lines
    assert "  kept container db-1: exited 5 min ago (exit 137), younger than 168h" in lines
    assert "  tag app:1 moved to sha256:0123456789ab since the plan: left alone" in lines

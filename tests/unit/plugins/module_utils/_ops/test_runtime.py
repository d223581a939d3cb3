# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""runtime.py: defaults, merging and clear errors for bad runtime.json files."""

from __future__ import annotations

import json
import os
import socket
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), *[".."] * 5, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    TIMEOUT_RULE, job_settings, load_runtime, timeout_problem)


def test_missing_file_gives_the_documented_defaults(tmp_path):
    runtime = load_runtime(tmp_path / "runtime.json")
    assert runtime == {
        "host_label": socket.gethostname().split(".")[0],
        "state_dir": "/var/lib/runbook-ops",
        "log_dir": "/var/log",
        "lock_dir": "/run/runbook-ops/locks",  # root-only, never the 1777 /run/lock
        "fallback_state_dir": "/run/runbook-ops",
        "textfile_dir": "",  # no metrics
        "alert": {"telegram_api_url": "https://api.telegram.org", "telegram_chat_id": "",
                  "telegram_token_file": "/etc/runbook-ops/telegram.token",
                  "cooldown_seconds": 86400},
        "jobs": {},
        "missing": str(tmp_path / "runtime.json"),  # the wrapper says so on stderr
    }


def test_file_values_override_defaults_and_comments_are_ignored(tmp_path):
    path = tmp_path / "runtime.json"
    path.write_text(json.dumps({
        "_comment": "Ansible managed", "host_label": "eatfit24.ru",
        "alert": {"telegram_chat_id": -1001234, "cooldown_seconds": 3600},
        "jobs": {"disk-monitor": {"ping_url": "https://hc-ping.com/abc"}}}))
    runtime = load_runtime(path)
    assert "_comment" not in runtime
    assert runtime["host_label"] == "eatfit24.ru"
    assert runtime["alert"]["telegram_chat_id"] == "-1001234"
    assert runtime["alert"]["cooldown_seconds"] == 3600
    assert runtime["alert"]["telegram_api_url"] == "https://api.telegram.org"
    assert job_settings(runtime, "disk-monitor") == {"ping_url": "https://hc-ping.com/abc"}
    assert job_settings(runtime, "other") == {}


@pytest.mark.parametrize("content, words", [
    ('{"alert": ', "not valid JSON"),
    ("[]", "top level must be a JSON object"),
    ('{"alert": {"cooldown_seconds": -1}}', "cooldown_seconds"),
    ('{"alert": {"cooldown_seconds": "1d"}}', "cooldown_seconds"),
    ('{"alert": {"telegram_api_url": "ftp://x"}}', "telegram_api_url"),
    ('{"jobs": {"a/b": {}}}', "job name"),
    ('{"jobs": {"backup": {"ping_url": "hc-ping.com/x"}}}', "jobs.backup.ping_url"),
    ('{"textfile_dir": "var/lib/node-exporter"}', "textfile_dir must be an absolute directory path"),
    ('{"textfile_dir": null}', "textfile_dir must be a string"),
    ('{"state_dir": ""}', "state_dir"),
], ids=["torn", "list", "negative-cooldown", "string-cooldown", "bad-url", "bad-job-name",
        "bad-ping-url", "relative-textfile-dir", "null-textfile-dir", "empty-state-dir"])
def test_bad_runtime_files_raise_ops_error_naming_file_and_problem(tmp_path, content, words):
    path = tmp_path / "runtime.json"
    path.write_text(content)
    with pytest.raises(OpsError) as caught:
        load_runtime(path)
    assert str(path) in caught.value.message
    assert words in caught.value.message
    assert "runbook.ops.base" in caught.value.message


@pytest.mark.parametrize("value", [1, 3600, 0.5, "120", "0.5"])
def test_a_positive_timeout_has_no_problem(value):
    assert timeout_problem(value, "backup_timeout_seconds") == ""


@pytest.mark.parametrize("value", [0, -5, "0", "-1", "abc", "", None, True, float("inf"),
                                   float("nan"), "inf"])
def test_a_timeout_of_0_or_less_gets_one_line_naming_variable_value_and_rule(value):
    assert timeout_problem(value, "backup_timeout_seconds") == (
        "backup_timeout_seconds %r is not a valid timeout: use %s" % (value, TIMEOUT_RULE))

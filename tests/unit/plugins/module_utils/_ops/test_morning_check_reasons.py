# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The morning check says why a job failed: the wrapper keeps the reason, the report shows it.

Real runs of ``runbook-ops run`` (the CLI as installed on a host), then ``runbook-ops
health-report --json`` reading the records they left.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))
sys.path.insert(0, os.path.join(_REPO, "tests", "harness"))

from host_layout import install_host_cli  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops.jobs import (  # noqa: E402
    last_error_line)

FAILING = ("echo 'open repository'; echo 'Fatal: unable to open config file: Stat: stat "
           "/srv/backup/config: no such file or directory' >&2; echo 'took 0.2 s'; exit 2")


@pytest.fixture
def host(tmp_path):
    install_host_cli(tmp_path)
    (tmp_path / "runtime.json").write_text(json.dumps({
        "host_label": "web1", "state_dir": str(tmp_path / "state"),
        "log_dir": str(tmp_path / "log"), "lock_dir": str(tmp_path / "run" / "lock"),
        "fallback_state_dir": str(tmp_path / "run" / "state"),
        "alert": {"telegram_api_url": "http://127.0.0.1:9", "telegram_chat_id": "42",
                  "telegram_token_file": str(tmp_path / "telegram.token")}}))
    (tmp_path / "telegram.token").write_text("1:x")
    return tmp_path


def _cli(host, *args):
    return subprocess.run([str(host / "runbook-ops"), "--runtime", str(host / "runtime.json")]
                          + list(args), capture_output=True, text=True, timeout=120,
                          check=False, env=dict(os.environ, DOCKER_HOST="unix:///nonexistent"))


def test_the_morning_check_shows_the_error_line_of_a_failed_job(host):
    assert _cli(host, "run", "--job", "backup", "--", "sh", "-c", FAILING).returncode == 1
    assert _cli(host, "run", "--job", "disk-monitor", "--", "sh", "-c", "echo fine").returncode == 0
    record = json.loads((host / "state" / "jobs" / "backup.json").read_text())
    assert record["last_error"] == ("Fatal: unable to open config file: Stat: stat "
                                    "/srv/backup/config: no such file or directory")
    assert "last_error" not in json.loads(
        (host / "state" / "jobs" / "disk-monitor.json").read_text())
    done = _cli(host, "health-report", "--json", "--config", str(host / "none.json"))
    rows = {(r["section"], r["name"]): r for r in json.loads(done.stdout)["rows"]}
    backup = rows[("job", "backup")]
    assert backup["level"] == "critical" and backup["status"] == "failed"
    assert backup["detail"] == "rc 2 at %s UTC: Fatal: unable to open config file: Stat: stat " \
        "/srv/backup/config: no such file or directory" % record["finished"][:19].replace("T", " ")
    assert rows[("job", "disk-monitor")]["detail"].startswith("rc 0 at ")


@pytest.mark.parametrize("tail, line", [
    ([], ""),
    (["all good", "done"], "done"),
    (["ERROR: dump failed", "cleaning up", "bye"], "ERROR: dump failed"),
    (["pg_dump: error: connection refused", "Fatal: cannot lock", "exit"], "Fatal: cannot lock"),
    (["  ", "only line  "], "only line"),
])
def test_last_error_line_prefers_the_last_line_that_reads_like_an_error(tail, line):
    assert last_error_line(tail) == line

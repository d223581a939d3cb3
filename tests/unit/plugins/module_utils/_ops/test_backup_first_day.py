# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Day one of a host: no backup yet is a warning until the first scheduled run had its chance.

``runbook-ops backup freshness`` as installed on a host (the core copied, the host's
``/usr/bin/python3``), on a real, empty restic repository, alerting the fake Bot API.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))

from fake_telegram import FakeTelegram  # noqa: E402
from host_layout import install_host_cli  # noqa: E402
from restic_keys import cheapen_keys  # noqa: E402

TOKEN = "777:AAFirst_day_token_0123456789abcdefGH"
PASSWORD = "first-day-repository-password"


@pytest.fixture
def host(tmp_path):
    """The CLI, a runtime, an empty restic repository and the backup job's settings."""
    if not os.access("/usr/bin/restic", os.X_OK):
        pytest.skip("restic is not installed")
    install_host_cli(tmp_path)
    (tmp_path / "telegram.token").write_text(TOKEN)
    (tmp_path / "backup.password").write_text(PASSWORD + "\n")
    os.chmod(str(tmp_path / "backup.password"), 0o600)
    env = dict(os.environ, RESTIC_PASSWORD_FILE=str(tmp_path / "backup.password"),
               XDG_CACHE_HOME=str(tmp_path / "cache"))
    subprocess.run(["/usr/bin/restic", "init", "--repo", str(tmp_path / "repo")], env=env,
                   capture_output=True, check=True, timeout=120)
    cheapen_keys(str(tmp_path / "repo"), PASSWORD)
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "backup.json").write_text(json.dumps({
        "repository": str(tmp_path / "repo"), "password_file": str(tmp_path / "backup.password"),
        "host_label": "web1", "paths": [str(data)], "freshness_max_age_hours": 25}))
    return tmp_path


def _freshness(host, api_url):
    (host / "runtime.json").write_text(json.dumps({
        "host_label": "web1", "state_dir": str(host / "state"), "log_dir": str(host / "log"),
        "lock_dir": str(host / "run" / "lock"), "fallback_state_dir": str(host / "run" / "state"),
        "alert": {"telegram_api_url": api_url, "telegram_chat_id": "42",
                  "telegram_token_file": str(host / "telegram.token")}}))
    done = subprocess.run(
        [str(host / "runbook-ops"), "--runtime", str(host / "runtime.json"), "backup",
         "freshness", "--config", str(host / "backup.json"), "--json"],
        capture_output=True, text=True, timeout=120, check=False,
        env=dict(os.environ, XDG_CACHE_HOME=str(host / "cache")))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_new_host_without_a_backup_is_a_warning_until_the_job_has_run(host):
    with FakeTelegram(TOKEN) as fake:
        first = _freshness(host, fake.url)
        jobs = host / "state" / "jobs"
        jobs.mkdir(parents=True)
        (jobs / "backup.json").write_text(json.dumps(
            {"job": "backup", "started": "2026-01-01T03:00:00Z",
             "finished": "2026-01-01T03:00:09Z", "rc": 1, "seconds": 9, "timed_out": False}))
        after_run = _freshness(host, fake.url)
        texts = [m["text"] for m in fake.messages]
    assert first["level"] == "warning"
    assert "no backup yet for web1" in first["detail"]
    assert after_run["level"] == "critical"
    assert "no backup exists for web1" in after_run["detail"]
    assert len(texts) == 2
    assert texts[0].startswith("⚠️ web1 WARNING: backup backup: no backup yet for web1; the job "
                               "has not run since its settings were installed at ")
    assert texts[1].startswith("🚨 web1 CRITICAL: backup backup: no backup exists for web1")


def test_a_job_that_never_ran_within_the_freshness_limit_is_critical(host):
    day_ago = time.time() - 26 * 3600
    os.utime(str(host / "backup.json"), (day_ago, day_ago))
    with FakeTelegram(TOKEN) as fake:
        result = _freshness(host, fake.url)
        texts = [m["text"] for m in fake.messages]
    assert result["level"] == "critical"
    assert len(texts) == 1 and "CRITICAL" in texts[0] and "no backup exists" in texts[0]

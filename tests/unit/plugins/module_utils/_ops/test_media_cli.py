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
        "media-baseline", "media-gate", "media-cleanup", "media-cleanup-reminder"}


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
    ("media-cleanup", {"command": [], "chdir": "/opt/app", "approved_report": "mc-0123456789ab"}),
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


REPORT = "mc-0123456789ab"


def armed(host, state="active", report_id=REPORT):
    """The activation state the role leaves once the report was approved."""
    path = host / "state" / "media-cleanup.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({"state": state, "report_id": report_id}))
    return str(path)


def cleanup_config(host, name, command, **extra):
    config = {"command": command, "chdir": str(host), "approved_report": REPORT,
              "state_file": str(host / "state" / "media-cleanup.json")}
    config.update(extra)
    return write(host, name, config)


def test_media_cleanup_runs_in_chdir_and_fails_with_the_command(host, capsys):
    armed(host)
    ok = cleanup_config(host, "c.json", "pwd")
    assert run(host, "media-cleanup", "--config", ok) == 0
    assert str(host) in capsys.readouterr().out
    bad = cleanup_config(host, "c2.json", "exit 3")
    assert run(host, "media-cleanup", "--config", bad) == 1
    assert "status 3" in capsys.readouterr().out


@pytest.mark.parametrize("state, report_id, words", [
    (None, None, "no activation state"),
    ("reviewed", "mc-ffffffffffff", "reviewed, not active"),
    ("active", "mc-ffffffffffff", "approved for report %s but the active report is mc-ffffffffffff"
     % REPORT),
], ids=["disarmed", "back-to-review", "other-report"])
def test_media_cleanup_deletes_nothing_unless_its_report_is_the_active_one(
        host, capsys, state, report_id, words):
    if state:
        armed(host, state, report_id)
    marker = host / "ran"
    config = cleanup_config(host, "c.json", "touch %s" % marker)
    assert run(host, "media-cleanup", "--config", config) == 1
    assert not marker.exists()
    out = capsys.readouterr().out
    assert "media cleanup NOT run" in out and words in out


@pytest.mark.parametrize("approved", [None, "true", "mc-123"], ids=["old-config", "true", "short"])
def test_a_job_config_without_a_report_id_is_refused(host, capsys, approved):
    config = {"command": "true", "chdir": str(host)}
    if approved:
        config["approved_report"] = approved
    assert run(host, "media-cleanup", "--config", write(host, "old.json", config)) == 2
    assert "run the media_cleanup role to review it again" in capsys.readouterr().err


# ---------------------------------------------------------------------------- the review reminder

sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))
from fake_telegram import FakeTelegram  # noqa: E402

TOKEN = "112233:MEDIA_reminder_token_0123456789abcd"
DISARMED = {"state": "reviewed", "report_id": "mc-0123456789ab", "disarmed_at": "2026-03-01T04:00:00Z",
            "reason": "settings changed: days", "report_path": "/var/lib/runbook-ops/media-cleanup-dry-run.txt"}


@pytest.fixture
def telegram(host):
    with FakeTelegram(TOKEN, record_path=str(host / "telegram.jsonl")) as fake:
        token = host / "telegram.token"
        token.write_text(TOKEN + "\n")
        runtime = json.loads((host / "runtime.json").read_text())
        runtime["alert"] = {"telegram_api_url": fake.url, "telegram_chat_id": "-1001",
                            "telegram_token_file": str(token), "cooldown_seconds": 86400}
        (host / "runtime.json").write_text(json.dumps(runtime))
        yield fake


def messages(host):
    path = host / "telegram.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def reminder_config(host, state):
    write(host, "state.json", state)
    return write(host, "review.json", {"state_file": str(host / "state.json"), "alert_key": "media-cleanup",
                                       "host": "app1", "job_name": "meal-photos-cleanup"})


def test_a_disarmed_host_in_review_is_reminded_once_per_cooldown(host, telegram, capsys):
    config = reminder_config(host, DISARMED)
    assert run(host, "media-cleanup-reminder", "--config", config) == 0
    out = capsys.readouterr().out
    assert out.startswith("reminder sent: ")
    [sent] = messages(host)
    assert "still OFF" in sent["text"] and "meal-photos-cleanup" in sent["text"]
    assert "removed at 2026-03-01T04:00:00Z (settings changed: days)" in sent["text"]
    assert "-l app1 -e media_cleanup_approve=mc-0123456789ab" in sent["text"]
    alerts = json.loads((host / "state" / "alerts.json").read_text())
    assert alerts["media-cleanup:mc-0123456789ab"]["level"] == "warning"
    assert run(host, "media-cleanup-reminder", "--config", config) == 0
    assert "not sent (in cooldown" in capsys.readouterr().out and len(messages(host)) == 1


def test_a_reminder_that_is_not_delivered_fails_the_job(host, capsys):
    with FakeTelegram(TOKEN, fail_first=5, fail_status=403) as fake:
        token = host / "telegram.token"
        token.write_text(TOKEN + "\n")
        runtime = json.loads((host / "runtime.json").read_text())
        runtime["alert"] = {"telegram_api_url": fake.url, "telegram_chat_id": "-1001",
                            "telegram_token_file": str(token), "cooldown_seconds": 86400}
        (host / "runtime.json").write_text(json.dumps(runtime))
        assert run(host, "media-cleanup-reminder", "--config", reminder_config(host, DISARMED)) == 1
    out = capsys.readouterr().out
    assert out.startswith("reminder NOT delivered (") and "HTTP 403" in out


@pytest.mark.parametrize("state", [
    {"state": "active", "report_id": "mc-0123456789ab"},
    {"state": "reviewed", "report_id": "mc-0123456789ab"},  # never armed: waiting is normal
    None,  # backlog: no state file
], ids=["active", "reviewed-never-armed", "backlog"])
def test_nothing_is_reminded_unless_the_host_waits_after_a_disarm(host, telegram, capsys, state):
    config = reminder_config(host, state or {})
    if state is None:
        os.unlink(str(host / "state.json"))
    assert run(host, "media-cleanup-reminder", "--config", config) == 0
    assert capsys.readouterr().out.startswith("nothing to remind")
    assert messages(host) == []


@pytest.mark.parametrize("config, words", [
    ({"state_file": "relative.json", "host": "app1", "job_name": "j"}, "state_file must be an absolute path"),
    ({"job_name": "j"}, "host must be a non-empty string"),
    ({"host": "app1", "job_name": "j", "extra": 1}, "unknown setting(s) extra"),
])
def test_the_reminder_config_is_validated(host, capsys, config, words):
    assert run(host, "media-cleanup-reminder", "--config", write(host, "r.json", config), "--validate") == 2
    assert words in capsys.readouterr().err

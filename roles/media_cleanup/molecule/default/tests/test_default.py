# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour of runbook.ops.media_cleanup: backlog -> reviewed -> active, one real run."""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 5, "tests", "verifiers"))
from common_checks import cron_command, evidence, json_lines, refusal  # noqa: E402 pylint: disable=wrong-import-position

JOB = "meal-photos-cleanup"
OLD = ["/srv/media/uploads/2025/old-%d.jpg" % n for n in (1, 2, 3)]  # 200 days
MID = ["/srv/media/uploads/2025/mid-%d.jpg" % n for n in (1, 2)]  # 30 days
NEW = ["/srv/media/uploads/2026/new-%d.jpg" % n for n in (1, 2)]
REPORT = "/var/lib/runbook-ops/media-cleanup-dry-run.txt"
CALLS = "/var/lib/fake-app/calls.jsonl"  # every call of the stand-in application (prepare.yml)


def cleanup_calls(calls, dry_run):
    return [c for c in calls if c["argv"][:1] == ["cleanup_old_meal_photos"]
            and ("--dry-run" in c["argv"]) is dry_run]


def test_below_the_triggers_nothing_happens(host):
    snap = evidence(host, "below")
    assert snap["state"] is None
    assert snap["report"] is None and snap["cron"] is None and snap["logrotate"] is None
    assert cleanup_calls(snap["calls"], True) == [] and cleanup_calls(snap["calls"], False) == []
    assert [c["argv"] for c in snap["calls"]] == [["count"]]  # the gate asked for the count
    assert snap["telegram"] == []


def test_above_the_triggers_the_dry_run_report_appears_and_no_cron_job(host):
    snap = evidence(host, "reviewed")
    assert snap["state"]["state"] == "reviewed"
    assert snap["state"]["triggers_hit"] == ["size"]
    assert snap["state"]["report_path"] == "/var/lib/runbook-ops/media-cleanup-dry-run.txt"
    dry = cleanup_calls(snap["calls"], True)
    assert [c["argv"] for c in dry] == [
        ["cleanup_old_meal_photos", "--days", "90", "--status", "ALL", "--dry-run"]]
    assert dry[0]["cwd"] == "/opt/app"
    assert cleanup_calls(snap["calls"], False) == []
    assert snap["deleted"] == []
    for path in OLD:
        assert "would delete %s" % path in snap["report"]
    assert "DRY RUN: 3 photos older than 90 days" in snap["report"]
    assert "[HIT] size" in snap["report"]
    assert snap["report"].startswith("#")  # managed header
    assert snap["cron"] is None and snap["logrotate"] is None


def test_the_report_and_its_telegram_message_carry_the_report_id(host):
    snap = evidence(host, "reviewed")
    report_id = snap["state"]["report_id"]
    assert re.match(r"^mc-[0-9a-f]{12}$", report_id)
    assert "report id:  %s" % report_id in snap["report"]
    assert "-e media_cleanup_approve=%s" % report_id in snap["report"]
    messages = snap["telegram"]
    assert len(messages) == 1
    text = messages[0]["text"]
    assert "gate fired" in text and "size" in text
    assert "Report %s" % report_id in text and REPORT in text
    assert "-e media_cleanup_approve=%s" % report_id in text
    assert messages[0]["token_ok"] is True


def test_without_approval_the_dry_run_is_not_repeated_and_the_id_holds(host):
    snap = evidence(host, "reviewed-again")
    assert len(cleanup_calls(snap["calls"], True)) == 1
    assert cleanup_calls(snap["calls"], False) == []
    assert snap["cron"] is None
    assert len(snap["telegram"]) == 1
    assert snap["state"]["report_id"] == evidence(host, "reviewed")["state"]["report_id"]


@pytest.mark.parametrize("phase, given", [("refused-true", "True"),
                                          ("refused-stale", "mc-0123456789ab")])
def test_approving_true_or_another_id_is_refused_and_nothing_is_deleted(host, phase, given):
    current = evidence(host, "reviewed")["state"]["report_id"]
    message = refusal(host, phase)
    assert "\n" not in message.strip()
    assert message.startswith("media_cleanup_approve=%s " % given)
    assert current in message and REPORT in message
    assert "-e media_cleanup_approve=%s" % current in message
    snap = evidence(host, phase)
    assert cleanup_calls(snap["calls"], False) == [] and snap["deleted"] == []
    assert snap["cron"] is None and snap["state"]["state"] == "reviewed"
    assert snap["state"]["report_id"] == current
    assert len(snap["telegram"]) == 1  # a refusal alerts no one and makes no new report


def test_approving_the_current_id_runs_the_real_cleanup_once_and_arms_the_weekly_job(host):
    snap = evidence(host, "approved")
    real = cleanup_calls(snap["calls"], False)
    assert [c["argv"] for c in real] == [
        ["cleanup_old_meal_photos", "--days", "90", "--status", "ALL"]]
    assert sorted(snap["deleted"]) == sorted(OLD)
    state = snap["state"]
    assert state["state"] == "active" and state["approved_by"] == "approve"
    assert state["report_id"] == evidence(host, "reviewed")["state"]["report_id"]
    assert state["first_run_report"] == state["report_id"]
    assert snap["cron"] is not None
    assert len(snap["telegram"]) == 2 and "Media cleanup armed" in snap["telegram"][1]["text"]
    assert state["report_id"] in snap["telegram"][1]["text"]


def test_an_approval_runs_the_dry_run_again_right_before_the_real_run(host):
    """The approved report must still be what the cleanup would do (its id again)."""
    before, snap = evidence(host, "refused-stale"), evidence(host, "approved")
    calls = [c["argv"] for c in snap["calls"][len(before["calls"]):]
             if c["argv"][:1] == ["cleanup_old_meal_photos"]]
    assert calls == [["cleanup_old_meal_photos", "--days", "90", "--status", "ALL", "--dry-run"],
                     ["cleanup_old_meal_photos", "--days", "90", "--status", "ALL"]]


def test_a_settings_change_on_the_armed_host_removes_the_cron_job_and_makes_a_new_report(host):
    before, snap = evidence(host, "approved"), evidence(host, "changed")
    old_id, new_id = before["state"]["report_id"], snap["state"]["report_id"]
    assert snap["cron"] is None  # the weekly job is gone until the new report is approved
    assert snap["state"]["state"] == "reviewed" and new_id != old_id
    reason = snap["state"]["reason"]
    assert reason.startswith("settings changed: ")
    assert sorted(reason.split(": ", 1)[1].split(", ")) == [
        "cron_command", "days", "dry_run_command", "first_run_command"]
    assert snap["state"]["previous_report"] == old_id
    dry = cleanup_calls(snap["calls"], True)
    assert dry[-1]["argv"] == ["cleanup_old_meal_photos", "--days", "9", "--status", "ALL", "--dry-run"]
    assert cleanup_calls(snap["calls"], False) == cleanup_calls(before["calls"], False)
    assert sorted(snap["deleted"]) == sorted(OLD)  # the 30-day photos are still there
    assert "report id:  %s" % new_id in snap["report"] and "retention:  9 days" in snap["report"]
    assert len(snap["telegram"]) == 3
    text = snap["telegram"][2]["text"]
    assert "back to review (settings changed: " in text and "weekly job is removed" in text
    assert new_id in text and old_id in text
    message = refusal(host, "changed")  # the approval of the old report does not carry over
    assert message.startswith("media_cleanup_approve=%s is not" % old_id)
    assert "-e media_cleanup_approve=%s" % new_id in message


def test_a_host_left_active_by_an_earlier_version_goes_back_to_review(host):
    old_job = json.loads(host.file("/var/tmp/evidence/upgraded.old-job").content_string)
    assert old_job["rc"] == 2  # its weekly job names no approved report: it deletes nothing
    assert "run the media_cleanup role to review it again" in old_job["stderr"]
    snap, changed = evidence(host, "upgraded"), evidence(host, "changed")
    assert snap["cron"] is None and snap["state"]["state"] == "reviewed"
    assert snap["state"]["reason"] == "state from before report ids"
    assert cleanup_calls(snap["calls"], False) == cleanup_calls(changed["calls"], False)
    # The same settings and the same dry-run output as phase 7: the same report, the same id,
    # and (one alert key per report) no second message for it.
    assert snap["state"]["report_id"] == changed["state"]["report_id"]
    assert len(snap["telegram"]) == len(changed["telegram"])


def test_approving_the_new_report_runs_it_once_and_arms_it_again(host):
    snap = evidence(host, "reapproved")
    new_id = evidence(host, "changed")["state"]["report_id"]
    assert snap["state"]["state"] == "active" and snap["state"]["report_id"] == new_id
    real = [c["argv"] for c in cleanup_calls(snap["calls"], False)]
    assert real == [["cleanup_old_meal_photos", "--days", "90", "--status", "ALL"],
                    ["cleanup_old_meal_photos", "--days", "9", "--status", "ALL"]]
    assert sorted(snap["deleted"]) == sorted(OLD + MID)
    assert snap["cron"] is not None
    assert len(snap["telegram"]) == 4 and new_id in snap["telegram"][3]["text"]


def test_the_idempotence_run_deleted_nothing_more(host):
    calls = json_lines(host, CALLS)
    assert len([c for c in cleanup_calls(calls, False) if "--status" in c["argv"]]) == 2
    # the gate, the settings change, the upgrade, and each approval (it checks its report holds)
    assert len(cleanup_calls(calls, True)) == 5
    deleted = host.file("/var/lib/fake-app/deleted.txt").content_string.split()
    assert sorted(deleted) == sorted(OLD + MID)
    for path in NEW:
        assert host.file(path).exists


def test_the_state_is_active_for_the_new_report(host):
    state = json.loads(host.file("/var/lib/runbook-ops/media-cleanup.json").content_string)
    assert state["state"] == "active"
    assert state["activated_at"].endswith("Z")
    assert state["approved_by"] == "approve"
    assert state["report_id"] == evidence(host, "changed")["state"]["report_id"]
    assert state["report_path"] == REPORT


def test_the_weekly_cron_job_runs_through_the_wrapper(host):
    cron = host.file("/etc/cron.d/runbook-ops-%s" % JOB)
    assert cron.exists and cron.user == "root" and cron.mode == 0o644
    text = cron.content_string
    assert text.startswith("#") and "Ansible managed" in "".join(text.splitlines()[:3])
    assert ("0 4 * * 0 root /usr/local/bin/runbook-ops run --job %s --timeout 3600 -- "
            "/usr/local/bin/runbook-ops media-cleanup --config /etc/runbook-ops/%s.json"
            % (JOB, JOB)) in text
    config = json.loads(host.file("/etc/runbook-ops/%s.json" % JOB).content_string)
    assert config["command"] == "/opt/app/fake-manage cleanup_old_meal_photos --days 9"
    assert config["chdir"] == "/opt/app"
    state = json.loads(host.file("/var/lib/runbook-ops/media-cleanup.json").content_string)
    assert config["approved_report"] == state["report_id"]
    assert config["state_file"] == "/var/lib/runbook-ops/media-cleanup.json"


def test_the_weekly_logrotate_matches_the_runbook(host):
    conf = host.file("/etc/logrotate.d/%s" % JOB).content_string
    assert '"/var/log/%s.log"' % JOB in conf
    for directive in ("weekly", "rotate 8", "compress", "missingok", "notifempty"):
        assert "    %s\n" % directive in conf
    assert "copytruncate" not in conf  # the wrapper reopens its log each run
    assert host.run("logrotate -d /etc/logrotate.d/%s" % JOB).rc == 0


def test_the_cron_line_runs_the_weekly_cleanup_and_logs_it(host):
    run = host.run(cron_command(host, JOB, "0 4 "))
    assert run.rc == 0, run.stdout + run.stderr
    calls = json_lines(host, CALLS)
    assert calls[-1]["argv"] == ["cleanup_old_meal_photos", "--days", "9"]
    assert calls[-1]["cwd"] == "/opt/app"
    log = host.file("/var/log/%s.log" % JOB).content_string
    assert "deleted 0 photos older than 9 days" in log


def test_the_weekly_job_deletes_nothing_once_its_report_is_no_longer_the_active_one(host):
    """A cron file left behind (a play stopped half-way, a copy) runs into the state check."""
    config = json.loads(host.file("/etc/runbook-ops/%s.json" % JOB).content_string)
    state = json.loads(host.file(config["state_file"]).content_string)
    state["state"] = "reviewed"
    host.run("cat > /tmp/state-reviewed.json <<'EOF'\n%s\nEOF" % json.dumps(state))
    config["state_file"] = "/tmp/state-reviewed.json"
    host.run("cat > /tmp/job-left-behind.json <<'EOF'\n%s\nEOF" % json.dumps(config))
    before = host.file(CALLS).content_string
    run = host.run("runbook-ops media-cleanup --config /tmp/job-left-behind.json")
    assert run.rc == 1 and "media cleanup NOT run" in run.stdout
    assert host.file(CALLS).content_string == before


@pytest.mark.parametrize("setting, value", [("command", ""), ("chdir", "relative"),
                                            ("approved_report", "true")])
def test_a_bad_job_config_is_refused_by_validate(host, setting, value):
    config = json.loads(host.file("/etc/runbook-ops/%s.json" % JOB).content_string)
    config[setting] = value
    path = "/tmp/bad-%s.json" % setting
    host.run("cat > %s <<'EOF'\n%s\nEOF" % (path, json.dumps(config)))
    result = host.run("runbook-ops media-cleanup --config %s --validate" % path)
    assert result.rc == 2
    assert setting in result.stderr

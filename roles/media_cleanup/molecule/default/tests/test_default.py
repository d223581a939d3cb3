# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour of runbook.ops.media_cleanup: backlog -> reviewed -> active, one real run."""

from __future__ import annotations

import json

import pytest

JOB = "meal-photos-cleanup"
OLD = ["/srv/media/uploads/2025/old-%d.jpg" % n for n in (1, 2, 3)]
NEW = ["/srv/media/uploads/2026/new-%d.jpg" % n for n in (1, 2)]


def evidence(host, phase):
    return json.loads(host.file("/var/tmp/evidence/%s.json" % phase).content_string)


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


def test_the_team_hears_when_the_gate_fires(host):
    messages = evidence(host, "reviewed")["telegram"]
    assert len(messages) == 1
    text = messages[0]["text"]
    assert "gate fired" in text and "size" in text
    assert "media_cleanup_approve: true" in text
    assert messages[0]["token_ok"] is True


def test_without_approval_the_dry_run_is_not_repeated(host):
    snap = evidence(host, "reviewed-again")
    assert len(cleanup_calls(snap["calls"], True)) == 1
    assert cleanup_calls(snap["calls"], False) == []
    assert snap["cron"] is None
    assert len(snap["telegram"]) == 1


def test_after_approval_the_real_run_happens_once(host):
    for phase in ("approved", None):
        calls = evidence(host, phase)["calls"] if phase else [
            json.loads(line) for line in
            host.file("/var/lib/fake-app/calls.jsonl").content_string.splitlines()]
        real = [c for c in cleanup_calls(calls, False) if "--status" in c["argv"]]
        assert [c["argv"] for c in real] == [
            ["cleanup_old_meal_photos", "--days", "90", "--status", "ALL"]]
        assert len(cleanup_calls(calls, True)) == 1  # the idempotence run added none


def test_only_the_old_photos_were_deleted(host):
    deleted = host.file("/var/lib/fake-app/deleted.txt").content_string.split()
    assert sorted(deleted) == sorted(OLD)
    for path in OLD:
        assert not host.file(path).exists
    for path in NEW:
        assert host.file(path).exists


def test_the_state_is_active(host):
    state = json.loads(host.file("/var/lib/runbook-ops/media-cleanup.json").content_string)
    assert state["state"] == "active"
    assert state["activated_at"].endswith("Z")
    assert state["approved_by"] == "approve"
    assert state["report_path"] == "/var/lib/runbook-ops/media-cleanup-dry-run.txt"


def test_the_weekly_cron_job_runs_through_the_wrapper(host):
    cron = host.file("/etc/cron.d/runbook-ops-%s" % JOB)
    assert cron.exists and cron.user == "root" and cron.mode == 0o644
    text = cron.content_string
    assert text.startswith("#") and "Ansible managed" in "".join(text.splitlines()[:3])
    assert ("0 4 * * 0 root /usr/local/bin/runbook-ops run --job %s --timeout 3600 -- "
            "/usr/local/bin/runbook-ops media-cleanup --config /etc/runbook-ops/%s.json"
            % (JOB, JOB)) in text
    config = json.loads(host.file("/etc/runbook-ops/%s.json" % JOB).content_string)
    assert config["command"] == "/opt/app/fake-manage cleanup_old_meal_photos --days 90"
    assert config["chdir"] == "/opt/app"


def test_the_weekly_logrotate_matches_the_runbook(host):
    conf = host.file("/etc/logrotate.d/%s" % JOB).content_string
    assert '"/var/log/%s.log"' % JOB in conf
    for directive in ("weekly", "rotate 8", "compress", "missingok", "notifempty",
                      "copytruncate"):
        assert "    %s\n" % directive in conf
    assert host.run("logrotate -d /etc/logrotate.d/%s" % JOB).rc == 0


def test_the_team_hears_when_the_cleanup_is_armed(host):
    messages = [json.loads(line) for line in
                host.file("/opt/fake-telegram/requests.jsonl").content_string.splitlines()]
    assert len(messages) == 2
    assert "Media cleanup armed" in messages[1]["text"]
    assert "deleted 3 photos" in messages[1]["text"]


def test_the_cron_line_runs_the_weekly_cleanup_and_logs_it(host):
    line = [l for l in host.file("/etc/cron.d/runbook-ops-%s" % JOB).content_string.splitlines()
            if l.startswith("0 4 ")][0]
    command = line.split(" root ", 1)[1].replace("2>&1 | logger -t runbook-ops", "")
    run = host.run(command)
    assert run.rc == 0, run.stdout + run.stderr
    calls = [json.loads(l) for l in
             host.file("/var/lib/fake-app/calls.jsonl").content_string.splitlines()]
    assert calls[-1]["argv"] == ["cleanup_old_meal_photos", "--days", "90"]
    assert calls[-1]["cwd"] == "/opt/app"
    log = host.file("/var/log/%s.log" % JOB).content_string
    assert "deleted 0 photos older than 90 days" in log


@pytest.mark.parametrize("setting, value", [("command", ""), ("chdir", "relative")])
def test_a_bad_job_config_is_refused_by_validate(host, setting, value):
    config = json.loads(host.file("/etc/runbook-ops/%s.json" % JOB).content_string)
    config[setting] = value
    path = "/tmp/bad-%s.json" % setting
    host.run("cat > %s <<'EOF'\n%s\nEOF" % (path, json.dumps(config)))
    result = host.run("runbook-ops media-cleanup --config %s --validate" % path)
    assert result.rc == 2
    assert setting in result.stderr

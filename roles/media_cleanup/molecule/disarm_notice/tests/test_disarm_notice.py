# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A cleanup disarmed while Telegram is down is not disarmed quietly."""

from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 5, "tests", "verifiers"))
from common_checks import evidence  # noqa: E402 pylint: disable=wrong-import-position

JOB = "meal-photos-cleanup"


def text(host, name):
    return host.file("/var/tmp/evidence/%s" % name).content_string


def test_the_play_shows_the_undelivered_alert_without_failing_the_host(host):
    warning = json.loads(text(host, "disarmed.warning"))["warning"]
    assert warning["failed"] is True  # an ignored failure: the host's recap counts it
    assert warning["msg"].startswith("WARNING: the alert about the dry-run report mc-")
    assert "NOT delivered" in warning["msg"] and "\n" not in warning["msg"].strip()
    snap = evidence(host, "disarmed")
    assert snap["state"]["state"] == "reviewed" and snap["cron"] is None
    assert snap["state"]["disarmed_at"].endswith("Z")
    assert len(snap["telegram"]) == len(evidence(host, "armed")["telegram"])  # nothing got through


def test_the_weekly_jobs_log_says_why_it_stopped(host):
    snap, armed = evidence(host, "disarmed"), evidence(host, "armed")
    line = [l for l in text(host, "disarmed.log").splitlines() if "runbook.ops.media_cleanup" in l][-1]
    assert "weekly cleanup REMOVED, back to review (settings changed: " in line
    assert "it ran for report %s" % armed["state"]["report_id"] in line
    assert "report %s awaits approval" % snap["state"]["report_id"] in line
    assert "alert NOT delivered: " in line


def test_the_reminder_runs_at_the_cleanups_time_through_the_wrapper(host):
    cron = text(host, "disarmed.reminder-cron")
    assert cron.startswith("#") and "Ansible managed" in "".join(cron.splitlines()[:3])
    assert ("0 4 * * 0 root /usr/local/bin/runbook-ops run --job %s --timeout 300 -- "
            "/usr/local/bin/runbook-ops media-cleanup-reminder --config /etc/runbook-ops/%s-review.json"
            % (JOB, JOB)) in cron
    # what the wrapper says when it cannot even start (a torn runtime.json) reaches syslog
    line = [row for row in cron.splitlines() if " root " in row][0]
    assert line.endswith(" 2>&1 | logger -t runbook-ops"), line


def test_the_reminder_tells_the_team_once_per_cooldown(host):
    disarmed, snap = evidence(host, "disarmed"), evidence(host, "reminded")
    assert text(host, "reminded.runs").split() == ["rc=0", "rc=0"]
    new = snap["telegram"][len(disarmed["telegram"]):]
    assert len(new) == 1  # the second run is within the alert cooldown
    report_id = snap["state"]["report_id"]
    assert "still OFF" in new[0]["text"] and "media_cleanup_approve=%s" % report_id in new[0]["text"]
    assert "reminder sent" in text(host, "reminded.log")
    assert "reminder not sent (in cooldown" in text(host, "reminded.log")


def test_approving_the_new_report_arms_the_cleanup_and_ends_the_reminder(host):
    snap = evidence(host, "rearmed")
    assert snap["state"]["state"] == "active" and snap["state"]["disarmed_at"] is None
    assert snap["cron"] is not None
    assert text(host, "rearmed.reminder-cron").strip() == "absent"
    assert not host.file("/etc/runbook-ops/%s-review.json" % JOB).exists

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Review finding: approving a report id deletes only what that report listed."""

from __future__ import annotations

import json
import os
import re
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 5, "tests", "verifiers"))
from common_checks import evidence  # noqa: E402 pylint: disable=wrong-import-position


def test_the_reviewed_report_lists_the_three_old_photos(host):
    snap = evidence(host, "reviewed")
    assert snap["state"]["state"] == "reviewed"
    assert "DRY RUN: 3 photos older than 90 days" in snap["report"]


def test_approving_a_report_deletes_nothing_it_did_not_list(host):
    reviewed = evidence(host, "reviewed")
    listed = set(re.findall(r"^would delete (\S+)$", reviewed["report"], re.M))
    approved = evidence(host, "approved")
    unreviewed = sorted(set(approved["deleted"]) - listed)
    assert unreviewed == [], "deleted without review: %s" % unreviewed


REPORT = "/var/lib/runbook-ops/media-cleanup-dry-run.txt"


def listed(report):
    return set(re.findall(r"^would delete (\S+)$", report, re.M))


def test_the_approval_is_refused_naming_the_new_report_which_is_kept_and_sent(host):
    reviewed, approved = evidence(host, "reviewed"), evidence(host, "approved")
    old_id, new_id = reviewed["state"]["report_id"], approved["state"]["report_id"]
    assert new_id != old_id and approved["state"]["state"] == "reviewed"
    message = json.loads(host.file("/var/tmp/evidence/approved.refusal").content_string)["msg"]
    assert "\n" not in message.strip()
    assert message.startswith("media_cleanup_approve=%s " % old_id)
    assert "-e media_cleanup_approve=%s" % new_id in message and REPORT in message
    assert approved["deleted"] == [] and approved["cron"] is None
    assert "DRY RUN: 5 photos older than 90 days" in approved["report"]
    assert "report id:  %s" % new_id in approved["report"]
    assert approved["state"]["previous_report"] == old_id
    assert len(approved["telegram"]) == 2 and new_id in approved["telegram"][1]["text"]
    assert "-e media_cleanup_approve=%s" % new_id in approved["telegram"][1]["text"]


def test_approving_the_new_report_deletes_exactly_what_it_lists(host):
    approved, snap = evidence(host, "approved"), evidence(host, "reapproved")
    assert snap["state"]["state"] == "active"
    assert snap["state"]["report_id"] == approved["state"]["report_id"]
    assert sorted(snap["deleted"]) == sorted(listed(approved["report"]))
    assert len(snap["deleted"]) == 5 and snap["cron"] is not None

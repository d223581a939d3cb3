# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Review finding: approving a report id deletes only what that report listed."""

from __future__ import annotations

import json
import re


def evidence(host, phase):
    return json.loads(host.file("/var/tmp/evidence/%s.json" % phase).content_string)


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

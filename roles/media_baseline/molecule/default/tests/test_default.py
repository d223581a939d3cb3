# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour of runbook.ops.media_baseline: monthly samples through the cron wrapper."""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 5, "tests", "verifiers"))
from common_checks import TELEGRAM, cron_command, json_lines  # noqa: E402 pylint: disable=wrong-import-position

JOB = "media-baseline"
CRON = "5 9 1 * * "
BASELINE = "/var/lib/runbook-ops/media-baseline.jsonl"
MEDIA = "/srv/media/uploads"


def du_bytes(host):
    return int(host.check_output("du -s -x -B1 %s" % MEDIA).split()[0])


def test_the_first_sample_was_taken_once_as_du_counts(host):
    first = json_lines(host, BASELINE)[0]
    assert set(first) == {"ts", "path", "bytes", "files"}
    assert first["path"] == MEDIA
    assert first["files"] == 4  # the hard link is the same file
    assert first["bytes"] == du_bytes(host)
    assert first["ts"].endswith("Z")


def test_the_monthly_cron_job_runs_through_the_wrapper(host):
    cron = host.file("/etc/cron.d/runbook-ops-%s" % JOB)
    assert cron.user == "root" and cron.mode == 0o644
    assert "Ansible managed" in "".join(cron.content_string.splitlines()[:3])
    assert cron_command(host, JOB, CRON) .startswith(
        "/usr/local/bin/runbook-ops run --job media-baseline --timeout 3600 -- "
        "/usr/local/bin/runbook-ops media-baseline --config /etc/runbook-ops/media-baseline.json")


def test_the_cron_line_appends_a_sample_and_a_human_log_line(host):
    before = len(json_lines(host, BASELINE))
    host.run("head -c 50000 /dev/urandom > %s/2026/01/meal-9.jpg" % MEDIA)
    run = host.run(cron_command(host, JOB, CRON))
    assert run.rc == 0, run.stdout + run.stderr
    after = json_lines(host, BASELINE)
    assert len(after) == before + 1
    assert after[-1]["files"] == 5 and after[-1]["bytes"] == du_bytes(host)
    log = host.file("/var/log/%s.log" % JOB).content_string
    assert "%s " % MEDIA in log and "5 files" in log
    assert "growth n/a" in log  # two samples minutes apart are not a rate


def test_the_log_rotates_monthly_keeping_24(host):
    conf = host.file("/etc/logrotate.d/%s" % JOB).content_string
    assert '"/var/log/%s.log"' % JOB in conf
    for directive in ("monthly", "rotate 24", "compress", "missingok", "notifempty"):
        assert "    %s\n" % directive in conf
    assert host.run("logrotate -d /etc/logrotate.d/%s" % JOB).rc == 0


def test_the_baseline_file_is_not_rotated(host):
    assert BASELINE not in host.run("cat /etc/logrotate.d/*").stdout


def test_a_failed_measurement_alerts_the_team(host):
    host.run("cp /etc/runbook-ops/%s.json /tmp/good.json" % JOB)
    host.run("sed -i 's#%s#/srv/media/missing#' /etc/runbook-ops/%s.json" % (MEDIA, JOB))
    try:
        run = host.run(cron_command(host, JOB, CRON))
        assert run.rc == 1
    finally:
        host.run("cp /tmp/good.json /etc/runbook-ops/%s.json" % JOB)
    messages = json_lines(host, TELEGRAM)
    assert any("media-baseline" in m["text"] and "does not exist" in m["text"]
               for m in messages)


def test_validate_refuses_a_bad_config(host):
    host.run("""echo '{"media_path": "relative"}' > /tmp/bad.json""")
    result = host.run("runbook-ops media-baseline --config /tmp/bad.json --validate")
    assert result.rc == 2 and "media_path" in result.stderr

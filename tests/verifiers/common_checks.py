# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What several roles' Molecule verifiers read the same way: a cron line's command, JSON-lines
records (the fake Telegram Bot API's requests, a job's samples), and the evidence a phased
converge leaves in /var/tmp/evidence. Each verifier puts this directory on sys.path."""

from __future__ import annotations

import json

EVIDENCE = "/var/tmp/evidence"
TELEGRAM = "/opt/fake-telegram/requests.jsonl"  # what the fake Bot API received (tests/fakes/fake_telegram.yml)


def cron_command(host, job, schedule):
    """The command of the line of /etc/cron.d/runbook-ops-<job> that starts with ``schedule``,
    without the pipe to syslog: what cron runs, to run it as cron would."""
    line = [text for text in host.file("/etc/cron.d/runbook-ops-%s" % job).content_string.splitlines()
            if text.startswith(schedule)][0]
    return line.split(" root ", 1)[1].replace("2>&1 | logger -t runbook-ops", "").strip()


def json_lines(host, path):
    """The records of a JSON-lines file on the host; [] while it does not exist."""
    record = host.file(path)
    if not record.exists:
        return []
    return [json.loads(line) for line in record.content_string.splitlines() if line.strip()]


def evidence(host, phase):
    """The snapshot a converge phase left in /var/tmp/evidence/<phase>.json."""
    return json.loads(host.file("%s/%s.json" % (EVIDENCE, phase)).content_string)


def refusal(host, phase):
    """The message of the failure a converge phase recorded in /var/tmp/evidence/<phase>.refusal."""
    return json.loads(host.file("%s/%s.refusal" % (EVIDENCE, phase)).content_string)["msg"]

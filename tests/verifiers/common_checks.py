# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What several roles' Molecule verifiers read the same way: a cron line's command, JSON-lines
records (the fake Telegram Bot API's requests, the fake syslog's messages, a job's samples), the
evidence a phased converge leaves in /var/tmp/evidence, and a wait for what lands later. Each verifier puts this directory on sys.path."""

from __future__ import annotations

import json
import time

EVIDENCE = "/var/tmp/evidence"
TELEGRAM = "/opt/fake-telegram/requests.jsonl"  # what the fake Bot API received (tests/fakes/fake_telegram.yml)
SYSLOG = "/opt/fake-syslog/syslog.jsonl"  # what reached /dev/log (tests/fakes/fake_syslog.yml)


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


def syslog(host, words=""):
    """Messages tagged runbook-ops that reached /dev/log and contain ``words``."""
    return [r["message"] for r in json_lines(host, SYSLOG) if r["tag"] == "runbook-ops" and words in r["message"]]


def evidence(host, phase):
    """The snapshot a converge phase left in /var/tmp/evidence/<phase>.json."""
    return json.loads(host.file("%s/%s.json" % (EVIDENCE, phase)).content_string)


def refusal(host, phase):
    """The message of the failure a converge phase recorded in /var/tmp/evidence/<phase>.refusal."""
    return json.loads(host.file("%s/%s.refusal" % (EVIDENCE, phase)).content_string)["msg"]


def wait_until(predicate, seconds, interval=1.0):
    """Whether ``predicate()`` came true within ``seconds`` (asked every ``interval`` seconds)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour of runbook.ops.disk_monitor on an 8 MiB tmpfs (/srv/diskmon).

The tests run in file order, each one a step of the runbook's story: 75% -> one WARNING,
a second run in the cooldown -> nothing, 90% -> CRITICAL at once, 40% -> recovery, then
the disk filled to 0 bytes free with the state directory on it -> the alert still goes out.
Every check runs the command of the installed cron line (through the wrapper).
"""

from __future__ import annotations

import json
import os
import re
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 5, "tests", "verifiers"))
from common_checks import TELEGRAM, cron_command as cron_line, json_lines  # noqa: E402 pylint: disable=wrong-import-position

JOB = "disk-monitor"
FS = "/srv/diskmon"
CRON_FILE = "/etc/cron.d/runbook-ops-%s" % JOB
FALLBACK = "/run/runbook-ops-fulltest"  # fallback_state_dir for the full-disk runtime
HISTORY = "/var/lib/runbook-ops/disk-history.jsonl"
PROM = "/var/lib/node_exporter/textfile_collector/runbook_ops_disk.prom"
FULL_RUNTIME = "/etc/runbook-ops/runtime-full.json"
WARN, CRIT, OK = "\u26a0\ufe0f", "\U0001f6a8", "\u2705"


def messages(host):
    return [record["text"] for record in json_lines(host, TELEGRAM) if "text" in record]


def cron_command(host):
    return cron_line(host, JOB, "0 9 * * * ")


def fill_to(host, kib):
    """Leave exactly ``kib`` KiB of files on the tmpfs (uploads/ and logs/)."""
    host.run("rm -f %s/uploads/* %s/logs/*" % (FS, FS))
    uploads = min(kib, 6144)
    host.check_output("dd if=/dev/zero of=%s/uploads/photos bs=1K count=%d status=none"
                      % (FS, uploads))
    if kib > uploads:
        host.check_output("dd if=/dev/zero of=%s/logs/app.log bs=1K count=%d status=none"
                          % (FS, kib - uploads))


def run_check(host):
    before = len(messages(host))
    result = host.run(cron_command(host))
    assert result.rc == 0, result.stdout + result.stderr
    return messages(host)[before:]


def df_percent(host):
    return int(host.check_output("df --output=pcent %s | tail -1" % FS).strip().rstrip("%"))


def test_the_daily_cron_job_runs_the_check_through_the_wrapper(host):
    cron = host.file(CRON_FILE)
    assert cron.user == "root" and cron.mode == 0o644
    assert "\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n" in cron.content_string
    assert cron_command(host) == (
        "/usr/local/bin/runbook-ops run --job disk-monitor --timeout 3600 -- "
        "/usr/local/bin/runbook-ops disk-check --config /etc/runbook-ops/disk-monitor.json")
    # The wrapper's own errors go to syslog, never to /dev/null.
    line = [text for text in cron.content_string.splitlines() if text.startswith("0 9 * * * ")][0]
    assert line.endswith(" 2>&1 | logger -t runbook-ops") and "/dev/null" not in line


def test_the_settings_carry_the_role_variables_and_validate(host):
    settings = json.loads(host.file("/etc/runbook-ops/%s.json" % JOB).content_string)
    assert settings["_comment"].startswith("Ansible managed")
    assert settings["paths"] == [FS] and settings["largest_under"] == [FS]
    assert (settings["warn_percent"], settings["crit_percent"]) == (70, 85)
    assert settings["scan_timeout"] is None and settings["history_file"] is None
    check = host.run("runbook-ops disk-check --config /etc/runbook-ops/%s.json --validate" % JOB)
    assert check.rc == 0, check.stderr


def test_75_percent_sends_one_warning_in_the_runbook_format(host):
    fill_to(host, 6144)
    assert df_percent(host) == 75
    sent = run_check(host)
    assert sent == [
        WARN + " eatfit24.ru disk WARNING: 75% used on /srv/diskmon (free 2.0M, threshold 70%)\n"
        "Largest directories:\n6.0M /srv/diskmon/uploads\n6.0M /srv/diskmon\n0 /srv/diskmon/logs"]
    assert "Docker" not in sent[0]  # no engine in the container: no section


def test_a_second_run_inside_the_cooldown_sends_nothing(host):
    assert run_check(host) == []
    log = host.file("/var/log/%s.log" % JOB).content_string
    assert "alert disk:/srv/diskmon: in cooldown for" in log


def test_the_day_has_one_history_sample(host):
    mine = [sample for sample in json_lines(host, HISTORY) if sample["mount"] == FS]
    assert len(mine) == 1 and mine[0]["used_bytes"] == 6144 * 1024
    assert set(mine[0]) == {"ts", "mount", "used_bytes", "total_bytes"}


def test_90_percent_sends_critical_at_once(host):
    fill_to(host, 7300)
    assert df_percent(host) == 90
    sent = run_check(host)
    assert len(sent) == 1
    assert sent[0].startswith(
        CRIT + " eatfit24.ru disk CRITICAL: 90% used on /srv/diskmon (free 892K, threshold 85%)\n"
        "Largest directories:\n")
    assert "1.2M /srv/diskmon/logs" in sent[0]
    assert run_check(host) == []  # and then the cooldown holds for CRITICAL too


def test_40_percent_sends_the_recovery_once(host):
    fill_to(host, 3200)
    assert df_percent(host) == 40
    assert run_check(host) == [
        OK + " eatfit24.ru disk recovered: 40% used on /srv/diskmon (free 4.9M, threshold 70%)"]
    assert run_check(host) == []


def _prom_samples(host):
    text = host.file(PROM).content_string
    samples = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) runbook_ops_disk_[a-z_]+ .+$", line), line
            continue
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return text, samples


def test_the_textfile_metrics_hold_the_same_numbers(host):
    text, samples = _prom_samples(host)
    assert "# TYPE runbook_ops_disk_used_percent gauge" in text
    assert samples['runbook_ops_disk_used_percent{mount="/srv/diskmon"}'] == df_percent(host)
    assert samples['runbook_ops_disk_status{mount="/srv/diskmon"}'] == 0
    assert samples['runbook_ops_disk_largest_dir_bytes{path="/srv/diskmon/uploads"}'] == 3200 * 1024
    assert samples["runbook_ops_disk_last_run_timestamp_seconds"] > 1.7e9
    directory = host.file(PROM).path.rsplit("/", 1)[0]
    assert host.check_output("ls -A %s" % directory) == "runbook_ops_disk.prom"


def test_the_log_rotates_weekly_keeping_8(host):
    conf = host.file("/etc/logrotate.d/%s" % JOB).content_string
    assert '"/var/log/%s.log"' % JOB in conf
    for directive in ("weekly", "rotate 8", "compress", "missingok", "notifempty"):
        assert "    %s\n" % directive in conf
    assert host.run("logrotate -d /etc/logrotate.d/%s" % JOB).rc == 0


@pytest.fixture
def full_disk_runtime(host):
    """A runtime whose state and log directories are on the tmpfs, which is then filled."""
    runtime = json.loads(host.file("/etc/runbook-ops/runtime.json").content_string)
    runtime.update(state_dir=FS + "/state", log_dir=FS + "/log", fallback_state_dir=FALLBACK)
    host.check_output("printf '%%s' '%s' > %s" % (json.dumps(runtime), FULL_RUNTIME))
    try:
        yield FULL_RUNTIME
    finally:
        host.run("rm -rf %s %s/brim %s/state %s/log %s" % (FULL_RUNTIME, FS, FS, FS, FALLBACK))


def test_a_full_disk_still_alerts_and_only_skips_the_state(host, full_disk_runtime):
    on_full = cron_command(host).replace(
        "/usr/local/bin/runbook-ops ", "/usr/local/bin/runbook-ops --runtime %s " % full_disk_runtime)
    assert host.run(on_full).rc == 0  # 40%: state written on the tmpfs while there is room
    assert host.file(FS + "/state/jobs/%s.json" % JOB).exists
    before = len(messages(host))
    host.run("dd if=/dev/zero of=%s/brim bs=4K status=none" % FS)  # ENOSPC ends it
    assert host.check_output("df --output=avail -B1 %s | tail -1" % FS).strip() == "0"
    for _attempt in (1, 2):
        assert host.run(on_full).rc == 0
        sent = messages(host)[before:]
        # The wrapper keeps state (cooldowns too) in the fallback directory: one of each.
        assert len(sent) == 2
        assert sent[0].startswith(
            CRIT + " eatfit24.ru CRITICAL: job %s: cannot write the state directory "
            "/srv/diskmon/state (No space left on device)" % JOB)
        assert sent[1].startswith(
            CRIT + " eatfit24.ru disk CRITICAL: 100% used on /srv/diskmon (free 0, threshold 85%)\n"
            "Largest directories:\n")
    assert host.file("%s/jobs/%s.json" % (FALLBACK, JOB)).exists
    direct = host.run("/usr/local/bin/runbook-ops --runtime %s disk-check --config "
                      "/etc/runbook-ops/%s.json" % (full_disk_runtime, JOB))
    assert direct.rc == 0, direct.stderr
    assert "alert state not saved" in direct.stdout
    assert "history: no new sample" in direct.stdout
    _text, samples = _prom_samples(host)  # the metrics live off the full disk: still written
    assert samples['runbook_ops_disk_used_percent{mount="/srv/diskmon"}'] == 100
    assert samples['runbook_ops_disk_status{mount="/srv/diskmon"}'] == 2

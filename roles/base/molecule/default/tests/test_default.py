# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour of runbook.ops.base (and .logrotate) inside the converged container.

The fake Telegram Bot API (tests/fakes/fake_telegram.yml, imported by prepare.yml) listens on
127.0.0.1:8081 in the container and records every request to /opt/fake-telegram/requests.jsonl.
"""

from __future__ import annotations

import glob
import hashlib
import json
import os
import re
import subprocess
import sys
import time
from shlex import quote

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 5))
sys.path.insert(0, os.path.join(REPO, "tests", "verifiers"))
from common_checks import TELEGRAM, json_lines, syslog as _syslog, wait_until as _wait  # noqa: E402 pylint: disable=wrong-import-position

TOKEN = "424242:MOLECULE_only_token_do_not_leak_0123"
SCENARIO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = "/usr/local/bin/runbook-ops"
KEY_FILE = "/var/lib/runbook-ops/fingerprint.key"
# What compose_env_sync shows for a value on this host: the installed core under the host key.
FINGERPRINT = ("/usr/bin/python3 -c 'import sys; sys.path.insert(0, \"/usr/local/lib/runbook-ops\"); "
               "from runbook_ops.hostkey import fingerprint, host_key; key, warnings = "
               "host_key(\"/var/lib/runbook-ops\"); print(fingerprint(key, sys.argv[1]), len(warnings))' ")


def _unique(prefix):
    """Job names unique per verify run, so a re-run does not meet an old cooldown."""
    return "%s-%d" % (prefix, int(time.time() * 1000))


def _messages(host, words):
    return [r for r in json_lines(host, TELEGRAM) if "text" in r and words in r["text"]]


def test_cli_is_installed_from_the_collection_core(host):
    launcher = host.file(BIN)
    assert launcher.mode == 0o755 and launcher.user == "root"
    lines = launcher.content_string.splitlines()
    assert lines[0] == "#!/usr/bin/python3"
    assert "Ansible managed" in "\n".join(lines[1:4])  # the managed header follows the shebang
    for source in glob.glob(os.path.join(REPO, "plugins", "module_utils", "_ops", "*.py")):
        with open(source, "rb") as handle:
            digest = hashlib.sha256(handle.read()).hexdigest()
        installed = host.file("/usr/local/lib/runbook-ops/runbook_ops/" + os.path.basename(source))
        assert installed.sha256sum == digest, source
    result = host.run(BIN + " --help")
    assert result.rc == 0 and "run" in result.stdout and "alert" in result.stdout


def test_runtime_settings_are_valid_and_hold_no_token(host):
    runtime = host.file("/etc/runbook-ops/runtime.json")
    assert runtime.mode == 0o644
    data = json.loads(runtime.content_string)
    assert data["alert"] == {"telegram_api_url": "http://127.0.0.1:8081",
                             "telegram_chat_id": "-100123456",
                             "telegram_token_file": "/etc/runbook-ops/telegram.token",
                             "cooldown_seconds": 86400}
    assert data["host_label"] == "eatfit24.ru"
    assert data["jobs"] == {"pinged-job": {"ping_url": "http://127.0.0.1:8081/ping/molecule-uuid"}}
    assert TOKEN not in runtime.content_string
    assert host.run(BIN + " alert --validate").rc == 0


def test_token_file_is_root_only(host):
    token = host.file("/etc/runbook-ops/telegram.token")
    assert token.mode == 0o600 and token.user == "root" and token.group == "root"
    assert token.content_string.strip() == TOKEN


def test_fingerprint_key_is_root_only_random_and_used_by_the_core(host):
    key = host.file(KEY_FILE)
    assert key.mode == 0o600 and key.user == "root" and key.group == "root"
    assert re.fullmatch(r"[0-9a-f]{64}\n", key.content_string)
    result = host.run(FINGERPRINT + "1234")
    assert result.rc == 0, result.stderr
    shown, warnings = result.stdout.split()
    assert warnings == "0"  # the module reads base's key, makes no other
    assert re.fullmatch(r"[0-9a-f]{12}", shown)
    assert shown != hashlib.sha256(b"1234").hexdigest()[:12]
    assert host.run(FINGERPRINT + "1234").stdout.split()[0] == shown
    assert host.file(KEY_FILE).content_string == key.content_string


def test_fingerprint_key_never_appears_in_logs_or_other_files(host):
    host.run("tr -d '\\n' < %s > /tmp/key.pattern" % KEY_FILE)
    result = host.run("grep -rlF -f /tmp/key.pattern /var/log /etc /usr/local /var/lib/runbook-ops")
    host.run("rm -f /tmp/key.pattern")
    assert result.stdout.split() == [KEY_FILE], result.stdout


def test_second_concurrent_run_skips_and_runs_never_overlap(host):
    job = _unique("overlap")
    script = "echo begin $(date +%s.%N); sleep 2; echo end $(date +%s.%N)"
    result = host.run(
        "%s run --job %s -- sh -c '%s' > /tmp/%s.first 2>&1 & first=$!; sleep 0.7; "
        "%s run --job %s -- sh -c 'echo SECOND'; echo second_rc=$?; wait $first; "
        "echo first_rc=$?" % (BIN, job, script, job, BIN, job))
    assert "second_rc=0" in result.stdout and "first_rc=0" in result.stdout
    assert re.search(r"job %s is already running \(pid \d+, since \S+Z\); skipping" % job,
                     result.stdout)
    log = host.file("/var/log/%s.log" % job).content_string
    assert "SECOND" not in log
    assert "skipping" in log  # the skipped run left its line in the job's log
    assert len(re.findall(r"Z begin \d", log)) == 1
    state = json.loads(host.file("/var/lib/runbook-ops/jobs/%s.json" % job).content_string)
    assert state["rc"] == 0 and state["job"] == job


def test_concurrent_runs_with_wait_take_turns(host):
    job = _unique("serial")
    script = "echo begin $(date +%s.%N); sleep 1; echo end $(date +%s.%N)"
    cmd = "%s run --job %s --wait 30 -- sh -c '%s'" % (BIN, job, script)
    result = host.run("%s & a=$!; %s & b=$!; wait $a; ra=$?; wait $b; echo rc=$ra$?" % (cmd, cmd))
    assert "rc=00" in result.stdout
    marks = []
    for line in host.file("/var/log/%s.log" % job).content_string.splitlines():
        fields = line.split()
        if fields[1] in ("begin", "end"):
            marks.append((fields[1], float(fields[2])))
    assert [kind for kind, _stamp in marks] == ["begin", "end", "begin", "end"]
    assert marks[1][1] <= marks[2][1]


def test_failing_job_alerts_exactly_once_within_cooldown_then_recovers(host):
    job = _unique("failing")
    for _attempt in range(2):
        result = host.run("%s run --job %s -- sh -c 'echo no space left on device; exit 3'"
                          % (BIN, job))
        assert result.rc == 1
        assert TOKEN not in result.stdout + result.stderr
    alerts = _messages(host, "job %s " % job)
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["token_ok"] is True and alert["chat_id"] == "-100123456"
    assert alert["status"] == 200
    assert alert["text"].startswith("🚨 eatfit24.ru CRITICAL: job %s failed with exit status 3"
                                    % job)
    assert "no space left on device" in alert["text"]
    assert host.run("%s run --job %s -- true" % (BIN, job)).rc == 0
    texts = [r["text"] for r in _messages(host, "job %s " % job)]
    assert len(texts) == 2 and texts[1].startswith("✅ eatfit24.ru recovered: job %s" % job)


def test_timeout_kills_the_job_and_alerts(host):
    job = _unique("hung")
    started = time.time()
    result = host.run("%s run --job %s --timeout 1 -- sleep 60" % (BIN, job))
    assert result.rc == 124 and time.time() - started < 15
    state = json.loads(host.file("/var/lib/runbook-ops/jobs/%s.json" % job).content_string)
    assert state["rc"] == 124 and state["timed_out"] is True
    assert host.run("pgrep -f '^sleep 60$'").rc == 1
    assert len(_messages(host, "job %s timed out" % job)) == 1


def test_dead_man_pings_start_and_success(host):
    before = len(json_lines(host, TELEGRAM))
    assert host.run(BIN + " run --job pinged-job -- true").rc == 0
    pings = [r["ping"] for r in json_lines(host, TELEGRAM)[before:] if "ping" in r]
    assert pings == ["molecule-uuid/start", "molecule-uuid"]


def test_alert_command_and_delivery_test(host):
    key = _unique("disk")
    first = host.run("%s alert --key %s --level warning --text 'диск 71%% used'" % (BIN, key))
    second = host.run("%s alert --key %s --level warning --text 'диск 71%% used'" % (BIN, key))
    assert first.rc == 0 and "sent" in first.stdout
    assert second.rc == 0 and "in cooldown" in second.stdout
    assert host.run(BIN + " alert --test").rc == 0


def test_undeliverable_alert_never_shows_the_token(host):
    host.run("python3 -c \"import json; d = json.load(open('/etc/runbook-ops/runtime.json')); "
             "d['alert']['telegram_api_url'] = 'http://127.0.0.1:9'; "
             "json.dump(d, open('/tmp/unreachable.json', 'w'))\"")
    job = _unique("unreachable")
    result = host.run("%s --runtime /tmp/unreachable.json run --job %s -- false" % (BIN, job))
    assert result.rc == 1
    test = host.run(BIN + " --runtime /tmp/unreachable.json alert --test")
    assert test.rc == 1 and "NOT delivered" in test.stdout
    log = host.file("/var/log/%s.log" % job).content_string
    assert "alert job:%s critical NOT delivered" % job in log
    for text in (result.stdout, result.stderr, test.stdout, test.stderr, log):
        assert TOKEN not in text and "/bot" not in text


def test_token_never_appears_in_logs_or_state(host):
    # grep reads the pattern from a file so the token is not on a command line either.
    result = host.run("grep -rlF -f /opt/fake-telegram/expected.token /var/log "
                      "/var/lib/runbook-ops /etc/runbook-ops/runtime.json /usr/local")
    assert result.rc == 1, "token found in: %s" % result.stdout


def test_logrotate_config_validates_and_rotates(host):
    config = host.file("/etc/logrotate.d/runbook-ops-molecule")
    assert config.mode == 0o644 and config.user == "root"
    assert config.content_string.startswith("#")
    assert "Ansible managed" in config.content_string
    assert host.run("logrotate -d /etc/logrotate.d/runbook-ops-molecule").rc == 0
    assert host.run("/usr/local/libexec/runbook-ops/logrotate-validate "
                    "/etc/logrotate.d/runbook-ops-molecule").rc == 0
    assert not host.file("/etc/logrotate.d/runbook-ops-gone").exists
    assert not host.file("/etc/logrotate.d/runbook-ops-broken").exists
    host.run("echo line >> /var/log/molecule-job.log")
    rotate = host.run("logrotate -f -s /tmp/logrotate.state /etc/logrotate.d/runbook-ops-molecule")
    assert rotate.rc == 0, rotate.stderr
    # moved, not copied and truncated (no copytruncate): nothing written meanwhile is lost,
    # and the wrapper opens the log afresh on its next run
    assert host.file("/var/log/molecule-job.log.1").exists
    assert not host.file("/var/log/molecule-job.log").exists
    ran = host.run(BIN + " run --job molecule-job -- true")
    assert ran.rc == 0, ran.stderr
    assert "job molecule-job finished" in host.file("/var/log/molecule-job.log").content_string


def test_logrotate_validator_rejects_what_logrotate_d_lets_through(host):
    host.run("printf '/var/log/x.log {\\n weekly\\n missingok\\n bogus\\n}\\n' > /tmp/bad.conf")
    host.run("chmod 0644 /tmp/bad.conf")
    assert host.run("logrotate -d /tmp/bad.conf").rc == 0  # why the validator exists
    bad = host.run("/usr/local/libexec/runbook-ops/logrotate-validate /tmp/bad.conf")
    assert bad.rc == 1 and "unknown option 'bogus'" in bad.stderr


def test_ansible_output_never_shows_the_token_or_the_key(host):
    """Converge again from here (-v --diff) and scan everything Ansible prints."""
    inventory = os.environ.get("MOLECULE_INVENTORY_FILE")
    ephemeral = os.environ.get("MOLECULE_EPHEMERAL_DIRECTORY")
    if not inventory or not ephemeral:
        pytest.skip("not run by molecule verify")
    env = dict(os.environ)
    env["ANSIBLE_CONFIG"] = os.path.join(ephemeral, "ansible.cfg")
    env.setdefault("ANSIBLE_COLLECTIONS_PATH", os.path.join(REPO, ".collections"))
    proc = subprocess.run(
        ["ansible-playbook", "-v", "--diff", "-i", inventory,
         os.path.join(SCENARIO, "converge.yml")],
        capture_output=True, text=True, env=env, timeout=600, check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-3000:]
    assert TOKEN not in output
    key = host.file(KEY_FILE).content_string.strip()
    assert len(key) == 64 and key not in output
    assert re.search(r"changed=0\s", output), output[-2000:]


# --------------------------------------------------------------------------- never silent

def test_cron_runs_the_wrapper_and_what_it_says_reaches_syslog(host):
    """Real cron: a failing job alerts, a broken runtime config lands in syslog, and a
    cron file with a dot in its name is silently ignored (why job names have none)."""
    job = _unique("cron")
    broken = "/opt/broken-runtime.json"
    host.run("printf '{\"alert\": ' > %s" % broken)
    cron = ("SHELL=/bin/sh\nPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n"
            "* * * * * root %s run --job %s --timeout 50 -- sh -c 'echo from cron; exit 3' "
            "2>&1 | logger -t runbook-ops\n"
            "* * * * * root %s --runtime %s run --job %s-broken -- true 2>&1 | logger -t "
            "runbook-ops\n" % (BIN, job, BIN, broken, job))
    dotted = "* * * * * root %s run --job %s-dotted -- true\n" % (BIN, job)
    host.run("printf '%%s' %s > /etc/cron.d/runbook-ops-%s && printf '%%s' %s > "
             "/etc/cron.d/runbook-ops-%s.dotted && chmod 0644 /etc/cron.d/runbook-ops-%s*"
             % (quote(cron), job, quote(dotted), job, job))
    try:
        assert _wait(lambda: _messages(host, "job %s failed" % job)
                     and _syslog(host, "job %s-broken" % job), 150), "cron did not run the job"
    finally:
        host.run("rm -f /etc/cron.d/runbook-ops-%s /etc/cron.d/runbook-ops-%s.dotted" % (job, job))
    assert "from cron" in host.file("/var/log/%s.log" % job).content_string
    assert _messages(host, "job %s failed" % job)[0]["text"].startswith(
        "🚨 eatfit24.ru CRITICAL: job %s failed with exit status 3" % job)
    assert _syslog(host, "job %s-broken" % job)[0] == (
        "runbook-ops: job %s-broken: error: runtime config %s: not valid JSON (Expecting value: "
        "line 1 column 11 (char 10)); fix the file or re-run the runbook.ops.base role"
        % (job, broken))
    assert _syslog(host, "job %s " % job) == [], "a run that went well says nothing to syslog"
    assert not host.file("/var/log/%s-dotted.log" % job).exists, "Debian's cron ran a dotted file?"
    refused = host.run("%s run --job %s.daily -- true" % (BIN, job))
    assert refused.rc == 2 and "no dot: Debian's cron silently ignores" in refused.stderr


def test_read_only_state_dir_still_runs_the_job_alerts_and_logs_to_syslog(host):
    """/srv/ro is a read-only tmpfs, as errors=remount-ro leaves a root filesystem."""
    job = _unique("readonly")
    fallback = "/run/runbook-ops-%s" % job  # the default, /run/runbook-ops, made unique
    host.run("python3 -c \"import json; d = json.load(open('/etc/runbook-ops/runtime.json')); "
             "d.update(state_dir='/srv/ro/state', log_dir='/srv/ro/log', fallback_state_dir='%s'); "
             "json.dump(d, open('/tmp/read-only.json', 'w'))\"" % fallback)
    command = ("%s --runtime /tmp/read-only.json run --job %s -- sh -c 'echo state in "
               "$RUNBOOK_OPS_STATE_DIR; touch /tmp/%s.ran'" % (BIN, job, job))
    result = host.run("sh -c %s" % quote(command + " 2>&1 | logger -t runbook-ops"))
    assert result.rc == 0, result.stderr
    assert host.file("/tmp/%s.ran" % job).exists, "the job did not run"
    assert _wait(lambda: _syslog(host, "%s: state in %s" % (job, fallback)), 10)
    assert _syslog(host, "cannot write the state directory /srv/ro/state (Read-only file system)")
    record = json.loads(host.file("%s/jobs/%s.json" % (fallback, job)).content_string)
    assert record["rc"] == 0
    alerts = _messages(host, "job %s: cannot write the state directory /srv/ro/state" % job)
    assert len(alerts) == 1 and "errors=remount-ro" in alerts[0]["text"]
    assert host.file("/run/runbook-ops/locks/%s.lock" % job).exists  # private, on tmpfs


def test_timeout_ends_the_run_when_a_setsid_grandchild_holds_the_pipe(host):
    job = _unique("escaped")
    marker = "sleep 1000.%d" % (int(time.time()) % 100000)
    started = time.time()
    try:
        result = host.run("timeout 60 %s run --job %s --timeout 1 -- sh -c 'setsid %s & "
                          "sleep 1000'" % (BIN, job, marker))
        elapsed = time.time() - started
        assert result.rc == 124 and elapsed < 20, (result.rc, elapsed)
        assert host.run("pgrep -f '^%s$'" % marker).rc == 0, "the escaped process lives on"
        assert "started with setsid?" in host.file("/var/log/%s.log" % job).content_string
        assert host.run("timeout 20 %s run --job %s -- true" % (BIN, job)).rc == 0, "lock freed"
        assert len(_messages(host, "job %s timed out after 1 s" % job)) == 1
    finally:
        host.run("pkill -f '^%s$'" % marker)


def test_a_removed_job_takes_its_metrics_file_and_only_its_own(host):
    """runbook_ops_textfile_dir set: a run writes the job's .prom and its last-run record;
    removing a second cron file of the job keeps both, removing the job removes both (else the
    morning check keeps its last run and RunbookOpsJobStale fires, for ever)."""
    kept = ["runbook_ops_job_molecule-metrics.prom", "molecule-metrics.json"]
    for evidence in ("/var/tmp/metrics-job.ran", "/var/tmp/metrics-job.second-removed"):
        assert set(kept) <= set(host.file(evidence).content_string.split()), evidence
    assert not host.file("/var/lib/node_exporter/textfile_collector/" + kept[0]).exists
    assert not host.file("/var/lib/runbook-ops/jobs/" + kept[1]).exists
    assert not host.file("/etc/cron.d/runbook-ops-molecule-metrics").exists

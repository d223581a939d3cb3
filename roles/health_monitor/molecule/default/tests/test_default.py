# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour of runbook.ops.health_monitor in the container.

The job command is taken from the installed cron file and run directly (no waiting for
cron). The monitored app (127.0.0.1:8080) is stopped and started with
/opt/fixture/fixturectl; alerts land in the fake Telegram API's record file. The tests run
in file order: each builds on the runs before it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from shlex import quote

REPO = os.path.join(os.path.dirname(os.path.abspath(__file__)), *[".."] * 5)
sys.path.insert(0, os.path.join(REPO, "tests", "verifiers"))
from common_checks import TELEGRAM, json_lines, syslog as _syslog, wait_until  # noqa: E402 pylint: disable=wrong-import-position

CRON_FILE = "/etc/cron.d/runbook-ops-health-monitor"
CONFIG = "/etc/runbook-ops/health-monitor.json"
RUNTIME = "/etc/runbook-ops/runtime.json"


def _name(host):
    """The instance's inventory name: the host label its alerts and the playbook show."""
    return host.backend.get_hostname()


def _job_command(host):
    """The command of the cron line (after the five time fields and the user)."""
    for line in host.file(CRON_FILE).content_string.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or "=" in line.split()[0]:
            continue
        fields = line.split(None, 6)
        assert fields[5] == "root"
        return fields[6]
    raise AssertionError("no job line in %s" % CRON_FILE)


def _cron_path(host):
    for line in host.file(CRON_FILE).content_string.splitlines():
        if line.startswith("PATH="):
            return line[len("PATH="):]
    raise AssertionError("no PATH in %s" % CRON_FILE)


def _run_job(host):
    """The cron line as cron runs it: /bin/sh -c, with only the cron file's PATH."""
    command = _job_command(host)
    assert command.endswith(" 2>&1 | logger -t runbook-ops"), command
    result = host.run("env -i PATH=%s /bin/sh -c %s" % (_cron_path(host), quote(command)))
    assert result.rc == 0, result.stderr
    assert result.stdout == "" and result.stderr == "", "cron would have mailed this"
    return result


def _messages(host, needle=""):
    """Texts the fake Telegram Bot API took (answered 200) that contain ``needle``."""
    return [r["text"] for r in json_lines(host, TELEGRAM) if r.get("status") == 200 and needle in r.get("text", "")]


def _playbook(host, play, *extra):
    """``ansible-playbook play`` against this instance alone, over the Docker connection."""
    return subprocess.run(
        ["ansible-playbook", play, "-i", _name(host) + ",", "-c", "community.docker.docker",
         "-e", "ansible_python_interpreter=/usr/bin/python3", *extra],
        capture_output=True, text=True, env=dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg")),
        cwd=REPO, timeout=300, check=False)


def _fixture(host, action, name="app"):
    result = host.run("/opt/fixture/fixturectl %s %s" % (action, name))
    assert result.rc == 0, result.stderr


def test_cron_job_runs_every_5_minutes_through_the_wrapper(host):
    cron = host.file(CRON_FILE)
    assert cron.mode == 0o644
    assert cron.content_string.startswith("#")
    assert "Ansible managed" in cron.content_string
    command = _job_command(host)
    assert command.startswith("/usr/local/bin/runbook-ops run --job health-monitor ")
    assert "runbook-ops health-check --config %s" % CONFIG in command
    line = [ln for ln in cron.content_string.splitlines() if ln.endswith(command)][0]
    assert line.split()[:5] == ["*/5", "*", "*", "*", "*"]


def test_settings_are_valid_and_carry_the_runbook_defaults(host):
    data = json.loads(host.file(CONFIG).content_string)
    assert data["failures_before_alert"] == 2
    assert "Ansible managed" in data["_comment"]
    app = [e for e in data["endpoints"] if e["name"] == "app"][0]
    assert app["host_header"] == "app.example"
    assert app["latency_limit_ms"] == 500
    assert [c["name"] for c in data["commands"]] == ["queue-depth", "redis-ping"]
    assert data["commands"][0]["warn_above"] == 1000 and data["commands"][0]["timeout_seconds"] == 10
    assert data["certificates"] == [{"host": "127.0.0.1", "port": 8443, "server_name": "app.test",
                                     "ca_file": "/opt/fixture/tls.pem", "timeout_seconds": 10}]
    assert data["resource_checks"] is True and data["cpu_window_seconds"] == 300
    assert host.run("/usr/local/bin/runbook-ops health-check --config %s --validate"
                    % CONFIG).rc == 0


def test_log_is_rotated(host):
    conf = host.file("/etc/logrotate.d/health-monitor")
    assert conf.exists
    assert "/var/log/health-monitor.log" in conf.content_string
    assert host.run("logrotate -d /etc/logrotate.d/health-monitor").rc == 0


def test_one_alert_after_the_second_failure_none_in_cooldown_then_recovery(host):
    _fixture(host, "start")
    _run_job(host)
    assert _messages(host, "(app:") == []

    _fixture(host, "stop")
    _run_job(host)
    assert _messages(host, "(app:") == [], "one failed run must not page"

    _run_job(host)
    alerts = _messages(host, "(app:")
    assert len(alerts) == 1
    assert alerts[0].startswith("🚨 %s CRITICAL: health check failed "
                                "(app: connection refused)" % _name(host))

    _run_job(host)
    _run_job(host)
    assert len(_messages(host, "(app:")) == 1, "no repeat inside the cooldown"

    _fixture(host, "start")
    _run_job(host)
    recoveries = _messages(host, "recovered: app is back after")
    assert len(recoveries) == 1
    assert recoveries[0].startswith("✅ %s recovered: app is back after " % _name(host))

    _run_job(host)
    assert len(_messages(host, "(app:")) == 1
    assert len(_messages(host, "recovered: app ")) == 1


def test_wrong_host_header_is_caught(host):
    texts = _messages(host, "(app-wrong-host:")
    assert len(texts) == 1, "one alert, then quiet in the cooldown"
    assert texts[0].startswith("🚨 %s CRITICAL: health check failed "
                               "(app-wrong-host: HTTP 404, expected 200 (Host: wrong.example))"
                               % _name(host))


def test_slow_response_is_caught(host):
    texts = _messages(host, "(app-slow:")
    assert len(texts) == 1
    assert texts[0].startswith("⚠️ %s WARNING: health check degraded "
                               "(app-slow: slow: " % _name(host))
    assert " ms (limit 500 ms))" in texts[0]


def test_job_log_and_state(host):
    log = host.file("/var/log/health-monitor.log").content_string
    assert "critical app" in log
    assert "HTTP 404, expected 200 (Host: wrong.example)" in log
    assert "ok       queue-depth                    value 5" in log
    assert "ok       redis-ping                     exit 0" in log
    assert "ok       app.test:8443                  39 days left: expires in 39 days" in log
    assert "ok       cpu                            measuring" in log
    assert "cat /var/tmp/queue-depth" not in log  # the command itself is never logged
    job = json.loads(host.file("/var/lib/runbook-ops/jobs/health-monitor.json").content_string)
    assert job["rc"] == 0
    state = json.loads(host.file("/var/lib/runbook-ops/health.json").content_string)
    assert set(state["checks"]) == {"endpoint:app-wrong-host", "endpoint:app-slow"}


def test_health_check_playbook_reports_what_is_broken(host):
    """The morning check against this instance: a table, a summary, and a failed host."""
    _fixture(host, "stop")
    try:
        done = _playbook(host, os.path.join(REPO, "playbooks", "health_check.yml"))
    finally:
        _fixture(host, "start")
    out = done.stdout
    assert done.returncode == 2, out + done.stderr
    assert "%s: CRITICAL" % _name(host) in out
    assert "endpoint   app-wrong-host" in out
    assert "HTTP 404, expected 200 (Host: wrong.example)" in out
    assert "connection refused" in out  # the app was down during the check
    assert "slow: " in out
    assert "disk       /" in out
    assert "memory     ram" in out
    assert "memory     swap" in out
    assert "cpu        busy" in out
    assert "command    queue-depth                  value 5" in out
    assert "cert       app.test:8443                39 days left" in out
    assert "job        health-monitor" in out
    assert "fleet: 1 host, 1 critical" in out
    assert "failed=1" in out


# --------------------------------------------------------------------------- never silent

def test_a_quiet_run_says_nothing_to_syslog(host):
    before = len(_syslog(host))
    _run_job(host)
    assert len(_syslog(host)) == before


def _with_runtime(host, content):
    """Replace runtime.json for one test (restored by the caller through the returned command)."""
    host.run("cp -p %s /var/tmp/runtime.json.saved" % RUNTIME)
    host.run("printf '%%s' %s > %s" % (quote(content), RUNTIME))
    return "cp -p /var/tmp/runtime.json.saved %s" % RUNTIME


def test_a_runtime_config_the_wrapper_cannot_read_lands_in_syslog(host):
    restore = _with_runtime(host, '{"alert": ')  # a torn write
    try:
        _run_job(host)
    finally:
        host.run(restore)
    wait_until(lambda: _syslog(host, "error: runtime config"), 10, interval=0.2)
    assert _syslog(host, "error: runtime config") == [
        "runbook-ops: job health-monitor: error: runtime config %s: not valid JSON (Expecting "
        "value: line 1 column 11 (char 10)); fix the file or re-run the runbook.ops.base role"
        % RUNTIME]


def test_on_a_read_only_state_dir_the_monitor_still_counts_and_alerts(host):
    """/srv/ro is a read-only tmpfs, as errors=remount-ro leaves a root filesystem: the
    wrapper keeps state in /run/runbook-ops, so the 2-failures rule still pages."""
    data = json.loads(host.file(RUNTIME).content_string)
    data.update(state_dir="/srv/ro/state", log_dir="/srv/ro/log")
    restore = _with_runtime(host, json.dumps(data))
    _fixture(host, "stop")
    try:
        before = len(_messages(host, "(app:"))
        _run_job(host)
        _run_job(host)
    finally:
        _fixture(host, "start")
        host.run(restore)
    alerts = _messages(host, "(app:")[before:]
    assert len(alerts) == 1 and alerts[0].startswith(
        "🚨 %s CRITICAL: health check failed (app: connection refused)" % _name(host))
    storage = _messages(host, "job health-monitor: cannot write the state directory /srv/ro/state "
                              "(Read-only file system)")
    assert len(storage) == 1, "one storage alert per cooldown"
    assert _syslog(host, "health-monitor: critical app ")  # the log lines went to syslog
    assert host.file("/run/runbook-ops/health.json").exists
    assert host.file("/run/runbook-ops/jobs/health-monitor.json").exists


def test_a_dot_in_the_job_name_is_refused_before_anything_changes(host):
    play = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "converge.yml")
    done = _playbook(host, play, "-e", "health_monitor_job_name=health.monitor")
    out = done.stdout + done.stderr
    assert done.returncode == 2, out[-3000:]
    assert ("health_monitor_job_name: health.monitor is not a valid job name: use letters, "
            "digits, '_' and '-' (not first), at most 100 characters (no dot: Debian's cron "
            "silently ignores /etc/cron.d files with one)") in out
    assert not host.file("/etc/cron.d/runbook-ops-health.monitor").exists
    assert not host.file("/etc/runbook-ops/health.monitor.json").exists


# --------------------------------------------------------------------------- own checks

def test_a_command_check_alerts_after_two_runs_and_recovers(host):
    """The runbook's queue depth alert (> 1000 jobs), written as a command in the inventory."""
    host.run("echo 1500 > /var/tmp/queue-depth")
    try:
        _run_job(host)
        assert _messages(host, "(queue-depth:") == [], "one run must not page"
        _run_job(host)
        alerts = _messages(host, "(queue-depth:")
        assert alerts == ["⚠️ %s WARNING: health check degraded (queue-depth: 1500, above 1000)"
                          % _name(host)]
    finally:
        host.run("echo 5 > /var/tmp/queue-depth")
    _run_job(host)
    assert len(_messages(host, "recovered: queue-depth is back after")) == 1

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour of runbook.ops.docker_cleanup: the weekly job cleans, keeps, logs and rotates."""

from __future__ import annotations

import json
import os
import sys

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(REPO, "tests", "verifiers"))
from common_checks import cron_command, refusal  # noqa: E402 pylint: disable=wrong-import-position

JOB = "docker-cleanup"
CRON = "0 3 * * 0 "


def engine_tags(host):
    config = json.loads(host.file("/etc/runbook-ops/%s.json" % JOB).content_string)
    out = host.check_output(
        "python3 -c \"import docker; c = docker.APIClient(base_url='%s'); "
        "print(' '.join(t for i in c.images() for t in (i['RepoTags'] or [])))\""
        % config["docker_host"])
    return set(out.split())


def test_the_weekly_cron_job_runs_through_the_wrapper(host):
    cron = host.file("/etc/cron.d/runbook-ops-%s" % JOB)
    assert cron.user == "root" and cron.mode == 0o644
    lines = cron.content_string.splitlines()
    header = lines[:next(i for i, line in enumerate(lines) if not line.startswith("#"))]
    assert any("Ansible managed" in line for line in header)  # the `ansible_managed | comment` block
    assert cron_command(host, JOB, CRON).startswith(
        "/usr/local/bin/runbook-ops run --job docker-cleanup --timeout 3600 -- "
        "/usr/local/bin/runbook-ops docker-cleanup --config /etc/runbook-ops/docker-cleanup.json")


def test_the_job_settings_are_the_module_options(host):
    config = json.loads(host.file("/etc/runbook-ops/%s.json" % JOB).content_string)
    assert config["images"] == "unused" and config["builder_cache"] is True
    assert config["volumes"] == "none" and config["keep_label"] == "runbook.ops.keep"
    assert config["until"] == "1s" and config["target_percent"] is None


def test_the_cron_line_removes_only_the_unused_image_and_logs_it(host):
    assert {"old:1", "used:1", "keep:1"} <= engine_tags(host)
    run = host.run(cron_command(host, JOB, CRON))
    assert run.rc == 0, run.stdout + run.stderr
    tags = engine_tags(host)
    assert "old:1" not in tags
    assert {"used:1", "keep:1"} <= tags
    log = host.file("/var/log/%s.log" % JOB).content_string
    assert "images        1 removed" in log and "- old:1" in log
    again = host.run(cron_command(host, JOB, CRON))
    assert again.rc == 0
    assert host.file("/var/log/%s.log" % JOB).content_string.count("images        0 removed") == 1


def test_the_log_rotates_weekly_keeping_8_compressed(host):
    conf = host.file("/etc/logrotate.d/%s" % JOB).content_string
    assert "/var/log/docker-cleanup.log" in conf
    for directive in ("weekly", "rotate 8", "compress"):
        assert directive in [line.strip() for line in conf.splitlines()]
    assert host.run("logrotate -d /etc/logrotate.d/%s" % JOB).rc == 0


def evidence(host, phase):
    """daemon.json after ``phase`` and the service actions the restart handler asked for."""
    data = json.loads(host.file("/var/tmp/evidence/%s.json" % phase).content_string)
    actions = host.file("/var/tmp/evidence/%s.service" % phase).content_string.split()
    return data, [a for a in actions if a in ("restart", "start")]


def test_daemon_json_gets_log_limits_and_keeps_its_settings(host):
    data, restarts = evidence(host, "json-file")
    assert data == {"live-restore": True, "log-driver": "json-file",
                    "log-opts": {"labels": "app", "max-size": "10m", "max-file": "3"}}
    assert len(restarts) == 1


def test_a_log_driver_change_replaces_the_old_drivers_options(host):
    data, restarts = evidence(host, "journald")
    assert data == {"live-restore": True, "log-driver": "journald", "log-opts": {"tag": "web"}}
    assert len(restarts) == 2


def test_an_option_the_driver_does_not_take_is_refused_and_nothing_restarts(host):
    refusal = json.loads(host.file("/var/tmp/evidence/refusal.txt").content_string)
    message = refusal["msg"]
    assert "\n" not in message.strip()
    assert "'max-size' is not an option of log-driver journald" in message
    assert "docker_cleanup_daemon_log_opts=" in message and "not restarted" in message
    data, restarts = evidence(host, "refused")
    assert data == evidence(host, "journald")[0]  # the file did not change
    assert len(restarts) == 2  # and the handler never ran
    assert json.loads(host.file("/etc/docker/daemon.json").content_string) == data


def test_the_written_daemon_json_validates_on_the_host(host):
    run = host.run("runbook-ops docker-daemon-json --config /etc/docker/daemon.json --validate")
    assert run.rc == 0 and run.stdout.strip() == "/etc/docker/daemon.json: ok"


@pytest.mark.parametrize("phase", ["json-file", "journald"])
def test_a_real_docker_20_10_starts_on_the_file_each_phase_wrote(host, phase, tmp_path):
    """An isolated dockerd on this machine, started with the instance's daemon.json."""
    harness = os.path.join(REPO, "tests", "harness")
    if harness not in sys.path:
        sys.path.insert(0, harness)
    from isolated_engine import start_isolated_engine  # pylint: disable=import-outside-toplevel

    path = tmp_path / "daemon.json"
    path.write_text(host.file("/var/tmp/evidence/%s.json" % phase).content_string)
    engine = start_isolated_engine("dc-%s" % phase, config_file=str(path))
    try:
        info = engine.client().info()
        assert info["LoggingDriver"] == json.loads(path.read_text())["log-driver"]
        assert info["LiveRestoreEnabled"] is True
    finally:
        engine.stop()


def test_a_file_with_the_same_content_is_not_rewritten_and_nothing_restarts(host):
    data, restarts = evidence(host, "same")
    assert data == evidence(host, "journald")[0]
    assert len(restarts) == 2  # no restart for formatting and key order alone
    raw = host.file("/var/tmp/evidence/same.raw").content_string
    assert raw == '{"log-opts":{"tag":"web"},"log-driver":"journald","live-restore":true}'


def test_a_daemon_json_that_is_not_json_is_refused_naming_the_file(host):
    message = refusal(host, "broken")
    assert "\n" not in message.strip()
    assert message.startswith("/etc/docker/daemon.json is not a JSON object (")
    assert "fix or remove it" in message and "Nothing was changed" in message
    assert host.file("/var/tmp/evidence/broken.raw").content_string == '{"live-restore": true,'
    assert len(evidence(host, "broken")[1]) == 2


def test_log_opts_also_given_in_docker_opts_are_refused(host):
    message = refusal(host, "flags")
    assert "\n" not in message.strip()
    assert ("log-opts is also given as dockerd flags (--log-opt=tag=x, from /etc/init.d/docker with "
            "DOCKER_OPTS of /etc/default/docker)") in message
    assert "not restarted" in message
    assert len(evidence(host, "flags")[1]) == 2


def test_a_plugin_driver_needs_the_opt_in_and_an_engine_that_has_it(host):
    assert "log-driver 'loki' is not a built-in Docker log driver" in refusal(host, "not-builtin")
    message = refusal(host, "plugin")
    assert "log-driver loki is not an enabled log driver plugin of the engine at unix:///tmp/rbo-eng/" in message
    assert "(its plugins: none)" in message
    for phase in ("not-builtin", "plugin"):
        assert len(evidence(host, phase)[1]) == 2


def test_check_mode_meets_the_refusal_a_real_run_meets(host):
    message = refusal(host, "check")
    assert "'max-size' is not an option of log-driver journald" in message
    data, restarts = evidence(host, "check")
    assert data == evidence(host, "journald")[0] and len(restarts) == 2

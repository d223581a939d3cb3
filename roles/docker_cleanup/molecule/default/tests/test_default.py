# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Behaviour of runbook.ops.docker_cleanup: the weekly job cleans, keeps, logs and rotates."""

from __future__ import annotations

import json

JOB = "docker-cleanup"
CRON = "0 3 * * 0 "


def cron_command(host):
    line = [l for l in host.file("/etc/cron.d/runbook-ops-%s" % JOB).content_string.splitlines()
            if l.startswith(CRON)][0]
    return line.split(" root ", 1)[1].replace("2>&1 | logger -t runbook-ops", "")


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
    assert cron_command(host).startswith(
        "/usr/local/bin/runbook-ops run --job docker-cleanup --timeout 3600 -- "
        "/usr/local/bin/runbook-ops docker-cleanup --config /etc/runbook-ops/docker-cleanup.json")


def test_the_job_settings_are_the_module_options(host):
    config = json.loads(host.file("/etc/runbook-ops/%s.json" % JOB).content_string)
    assert config["images"] == "unused" and config["builder_cache"] is True
    assert config["volumes"] == "none" and config["keep_label"] == "runbook.ops.keep"
    assert config["until"] == "1s" and config["target_percent"] is None


def test_the_cron_line_removes_only_the_unused_image_and_logs_it(host):
    assert {"old:1", "used:1", "keep:1"} <= engine_tags(host)
    run = host.run(cron_command(host))
    assert run.rc == 0, run.stdout + run.stderr
    tags = engine_tags(host)
    assert "old:1" not in tags
    assert {"used:1", "keep:1"} <= tags
    log = host.file("/var/log/%s.log" % JOB).content_string
    assert "images        1 removed" in log and "- old:1" in log
    again = host.run(cron_command(host))
    assert again.rc == 0
    assert host.file("/var/log/%s.log" % JOB).content_string.count("images        0 removed") == 1


def test_the_log_rotates_weekly_keeping_8_compressed(host):
    conf = host.file("/etc/logrotate.d/%s" % JOB).content_string
    assert "/var/log/docker-cleanup.log" in conf
    for directive in ("weekly", "rotate 8", "compress"):
        assert directive in [line.strip() for line in conf.splitlines()]
    assert host.run("logrotate -d /etc/logrotate.d/%s" % JOB).rc == 0


def test_daemon_json_gets_log_limits_and_keeps_its_settings(host):
    data = json.loads(host.file("/etc/docker/daemon.json").content_string)
    assert data["data-root"] == "/srv/docker"
    assert data["log-driver"] == "json-file"
    assert data["log-opts"] == {"labels": "app", "max-size": "10m", "max-file": "3"}

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Job roles that need Docker, applied to fresh container hosts without a Docker engine.

``runbook.ops.docker_cleanup`` installs nothing there and says so (a weekly job that
fails with an alert every Sunday is a false alarm), or fails when
``docker_cleanup_require_docker`` asks for Docker; ``runbook.ops.health_monitor`` leaves
the Compose projects out of its settings and says so (its endpoint checks still run), or
fails with ``health_monitor_require_docker``. Real ansible-playbook runs against real
hosts (containers of the offline test image, no Docker inside).
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest
from container_hosts import REPO, host_file, remove_hosts, start_hosts, write_inventory

PREFIX = "runbook-ops-nodocker-%d-" % os.getpid()
COMMON = {
    "runbook_ops_telegram_bot_token": "123456:no-docker-test-token",
    "runbook_ops_telegram_chat_id": "-100123",
    "runbook_ops_telegram_api_url": "http://127.0.0.1:9",
    "health_monitor_endpoints": [{"name": "app", "url": "http://127.0.0.1:8000/health/"}],
    "health_monitor_compose_projects": ["shop"],
    "health_monitor_oneshot_services": ["shop/migrate"],
}


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    image = os.environ.get("RUNBOOK_OPS_TEST_IMAGE")
    if not image:
        pytest.skip("RUNBOOK_OPS_TEST_IMAGE is not set; source scripts/dev-env.sh")
    names = [PREFIX + "skip", PREFIX + "require"]
    tmp = tmp_path_factory.mktemp("nodocker")
    try:
        start_hosts(names, image)
        inventory = write_inventory(str(tmp / "hosts.yml"), {
            names[0]: {},
            names[1]: {"docker_cleanup_require_docker": True,
                       "health_monitor_require_docker": True}}, common=COMMON)
        (tmp / "play.yml").write_text(json.dumps([{
            "name": "Apply the Docker job roles", "hosts": "all", "gather_facts": False,
            "tasks": [
                {"name": "Apply the cleanup", "ansible.builtin.include_role": {
                    "name": "runbook.ops.docker_cleanup"}},
                {"name": "Apply the monitor", "ansible.builtin.include_role": {
                    "name": "runbook.ops.health_monitor"}}]}]))
        env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
                   ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"),
                   ANSIBLE_NOCOLOR="1", ANSIBLE_STDOUT_CALLBACK="ansible.builtin.default")
        proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i",
                               inventory, str(tmp / "play.yml")], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=900, check=False)
        yield names, proc.stdout + proc.stderr
    finally:
        remove_hosts(names)


def test_without_docker_the_cleanup_is_not_installed_and_the_run_says_so(hosts):
    (skip, _require), output = hosts
    assert "%s : ok=" % skip in output and "failed=0" in output.split(skip + " : ")[-1].split("\n")[0]
    assert ("runbook.ops.docker_cleanup skipped: no Docker engine on this host "
            "(no /var/run/docker.sock); the weekly cleanup is not installed.") in output
    assert host_file(skip, "/etc/cron.d/runbook-ops-docker-cleanup") is None
    assert host_file(skip, "/etc/runbook-ops/docker-cleanup.json") is None


def test_without_docker_the_monitor_checks_only_its_endpoints_and_says_so(hosts):
    (skip, _require), output = hosts
    assert ("health_monitor_compose_projects not checked on this host: no Docker engine "
            "(no /var/run/docker.sock); only the endpoints are monitored.") in output
    settings = json.loads(host_file(skip, "/etc/runbook-ops/health-monitor.json"))
    assert settings["compose_projects"] == []
    assert settings["oneshot_services"] == ["shop/migrate"]
    assert [e["name"] for e in settings["endpoints"]] == ["app"]


def test_require_docker_fails_the_host_with_one_line_and_installs_no_job(hosts):
    (_skip, require), output = hosts
    recap = output.split(require + " : ")[-1].split("\n")[0]
    assert "failed=1" in recap, output[-3000:]
    assert ("docker_cleanup_require_docker: true, but this host has no Docker engine "
            "(no /var/run/docker.sock); install Docker first") in output
    assert host_file(require, "/etc/cron.d/runbook-ops-docker-cleanup") is None

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""provision.yml refuses bad input before anything changes, on fresh container hosts.

Containers from the offline test image (``RUNBOOK_OPS_TEST_IMAGE``: Debian 12 with cron,
logrotate, restic and python3-psutil/-docker, but no python3-apt) play fresh servers over
the ``community.docker.docker`` connection. One real ``ansible-playbook`` run of
``playbooks/provision.yml`` goes across one host per bad input of issue #17; each must fail
with exactly the expected lines (variable, value, rule; every problem of the host at once),
``changed=0``, no spec dump and no traceback, and its ``/etc/cron.d``, ``/etc/runbook-ops``
and ``/etc/logrotate.d`` must be byte for byte what they were before. A role applied on its
own refuses the same way before runbook.ops.base installs anything, and ``provision.yml
--check`` with valid input passes on a host without python3-apt and changes nothing.
The containers are named ``runbook-ops-scale-i17v-*`` on the main engine and are removed at
the end, always.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
PREFIX = "runbook-ops-scale-i17v-"
WATCHED = "/etc/cron.d /etc/runbook-ops /etc/logrotate.d"
HOUR_RULE = "is not an hour (0-23, */N, lists and ranges as cron reads them)"
JOB_RULE = "is not a valid job name: use letters, digits, '_' and '-' (not first), at most 100 characters"

# host -> (its variables, the exact problems provision.yml must report for it)
CASES = {
    "cron-hour": ({"disk_monitor_cron_hour": 25}, ["disk_monitor_cron_hour: 25 " + HOUR_RULE]),
    "cron-3am": ({"docker_cleanup_cron_hour": "3am"}, ["docker_cleanup_cron_hour: 3am " + HOUR_RULE]),
    "missing-path": ({"disk_monitor_paths": ["/", "/srv/missing"]},
                     ["disk_monitor_paths: /srv/missing does not exist on the host"]),
    "no-password": ({"backup_repository": "/srv/restic", "backup_password": "", "backup_paths": ["/srv/app"]},
                    ['backup_password: "" must be set when backup_engine is restic']),
    "thresholds": ({"disk_monitor_warn_percent": 90}, [
        "disk_monitor_warn_percent: 90 is not below disk_monitor_crit_percent (85)"]),
    "types": ({"disk_monitor_alert": "maybe", "health_monitor_endpoints": [{"name": "app"}],
               "disk_monitor_largest_count": "many"}, [
        "disk_monitor_largest_count: many is not a whole number",
        "disk_monitor_alert: maybe is not true or false",
        "health_monitor_endpoints[0].url: is required (http:// or https:// URL, "
        "e.g. http://127.0.0.1:8000/health/)"]),
    "all-at-once": ({"disk_monitor_job_name": "disk.monitor", "disk_monitor_timeout_seconds": 0,
                     "docker_cleanup_until": "7d", "docker_cleanup_cron_weekday": "sunday",
                     "disk_monitor_paths": ["/srv/gone"], "disk_monitor_warn_precent": 60}, [
        "disk_monitor_timeout_seconds: 0 is not a valid timeout: use a number of seconds greater than 0",
        "disk_monitor_job_name: disk.monitor %s (no dot: Debian's cron silently ignores "
        "/etc/cron.d files with one)" % JOB_RULE,
        "docker_cleanup_until: 7d is not a duration (a Go duration such as 168h, 24h, 90m or 0s)",
        "docker_cleanup_cron_weekday: sunday is not a day of the week (0-7 or sun-sat, */N, lists and "
        "ranges as cron reads them)",
        "disk_monitor_paths: /srv/gone does not exist on the host"]),
}
GOOD = {"backup_repository": "/srv/restic", "backup_password": "pw", "backup_paths": ["/srv/app"],
        "media_baseline_path": "/srv/media/uploads",
        "health_monitor_endpoints": [{"name": "app", "url": "http://127.0.0.1:8000/health/"}]}


def _docker(*args, timeout=120):
    return subprocess.run(["docker"] + list(args), capture_output=True, text=True, timeout=timeout, check=False)


def _snapshot(host):
    """Every entry under the watched directories: path, mode, size, mtime, and file contents."""
    proc = _docker("exec", host, "sh", "-c",
                   "find %s -printf '%%p %%m %%s %%T@\\n' 2>/dev/null; "
                   "find %s -type f -exec sha256sum {} + 2>/dev/null; true" % (WATCHED, WATCHED))
    assert proc.returncode == 0, proc.stderr
    return sorted(proc.stdout.splitlines())


@pytest.fixture(scope="module")
def hosts(tmp_path_factory):
    image = os.environ.get("RUNBOOK_OPS_TEST_IMAGE")
    if not image:
        pytest.skip("RUNBOOK_OPS_TEST_IMAGE is not set; source scripts/dev-env.sh")
    names = {case: PREFIX + case for case in list(CASES) + ["alone", "good"]}
    try:
        for name in names.values():
            _docker("rm", "-f", name)
            started = _docker("run", "-d", "--name", name, "--network", "none", image)
            assert started.returncode == 0, started.stderr
            _docker("exec", name, "mkdir", "-p", "/srv/app", "/srv/media/uploads")
        inventory = {"all": {
            "vars": {"ansible_connection": "community.docker.docker",
                     "ansible_python_interpreter": "/usr/bin/python3",
                     "runbook_ops_telegram_api_url": "http://127.0.0.1:9"},
            "hosts": {names[case]: CASES[case][0] for case in CASES}}}
        inventory["all"]["hosts"][names["alone"]] = {"disk_monitor_cron_hour": "25"}
        inventory["all"]["hosts"][names["good"]] = GOOD
        path = tmp_path_factory.mktemp("i17v") / "hosts.json"
        path.write_text(json.dumps(inventory))
        yield names, str(path)
    finally:
        for name in names.values():
            _docker("rm", "-f", name)


def _play(inventory, playbook, limit, check=False):
    """``(json callback output, stdout + stderr)`` of one real ansible-playbook run."""
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1")
    argv = [ANSIBLE_PLAYBOOK, "-i", inventory, playbook, "--limit", ",".join(limit)]
    proc = subprocess.run(argv + (["--check"] if check else []), cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1200, check=False)
    return json.loads(proc.stdout), proc.stdout + proc.stderr


def _failures(data, host):
    return [result for play in data["plays"] for task in play["tasks"]
            for name, result in task["hosts"].items() if name == host and result.get("failed")]


def test_provision_refuses_each_bad_input_before_any_change(hosts):
    names, inventory = hosts
    before = {case: _snapshot(names[case]) for case in CASES}
    data, output = _play(inventory, os.path.join(REPO, "playbooks", "provision.yml"),
                         [names[case] for case in CASES])
    assert "argument_spec_data" not in output and "Traceback" not in output  # no spec dump
    for case, (_vars, problems) in CASES.items():
        host = names[case]
        failed = _failures(data, host)
        assert len(failed) == 1 and failed[0]["problems"] == problems, (case, failed)
        assert failed[0]["msg"] == "; ".join(problems)
        assert data["stats"][host]["changed"] == 0 and data["stats"][host]["failures"] == 1, case
        assert _snapshot(host) == before[case], "%s: the host changed" % case
    warned = [w for play in data["plays"] for task in play["tasks"]
              for w in task["hosts"].get(names["all-at-once"], {}).get("warnings", [])]
    assert warned == ["disk_monitor_warn_precent: did you mean disk_monitor_warn_percent? "
                      "(not a variable of runbook.ops.disk_monitor, ignored)"]


def test_a_role_on_its_own_refuses_before_base_installs_anything(hosts, tmp_path):
    names, inventory = hosts
    host = names["alone"]
    playbook = tmp_path / "alone.yml"
    playbook.write_text(json.dumps([{"name": "Apply the disk monitor alone", "hosts": "all",
                                     "gather_facts": False, "roles": ["runbook.ops.disk_monitor"]}]))
    before = _snapshot(host)
    data, _output = _play(inventory, str(playbook), [host])
    failed = _failures(data, host)
    assert len(failed) == 1 and failed[0]["problems"] == ["disk_monitor_cron_hour: 25 " + HOUR_RULE]
    assert data["stats"][host]["changed"] == 0
    assert _snapshot(host) == before


def test_provision_check_passes_without_python3_apt_and_changes_nothing(hosts):
    names, inventory = hosts
    host = names["good"]
    assert _docker("exec", host, "python3", "-c", "import apt").returncode != 0, "no python3-apt"
    before = _snapshot(host)
    data, output = _play(inventory, os.path.join(REPO, "playbooks", "provision.yml"), [host], check=True)
    assert data["stats"][host]["failures"] == 0 and data["stats"][host]["unreachable"] == 0, output[-3000:]
    assert _snapshot(host) == before

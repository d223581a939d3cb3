# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role refuses a job name with a dot, or a timeout of 0 or less, before it or
runbook.ops.base change anything.

Debian's cron silently ignores /etc/cron.d files whose names contain a dot, so
``backup_job_name: backup.daily`` would install a job that never runs; a timeout of 0 or
less on the cron line (``runbook-ops run --timeout -5``) would make every run fail before
the job starts. Each role is applied for real by one ansible-playbook run against
localhost in check mode (nothing on this machine changes), one inventory alias per case:
each must fail at its first task, the variable check of its runbook.ops.preflight
dependency (before runbook.ops.base runs), with one line per problem naming the variable,
its value and the rule.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_PLAYBOOK = os.path.join(_REPO, ".venv", "bin", "ansible-playbook")

# The least each role needs besides its job name (argument specs require these), with paths
# that exist on this machine (the check looks them up on the host).
ROLE_VARS = {
    "backup": {"backup_engine": "archive", "backup_paths": ["/tmp"]},
    "disk_monitor": {},
    "docker_cleanup": {},
    "health_monitor": {},
    "media_baseline": {"media_baseline_path": "/tmp"},
    "media_cleanup": {"media_cleanup_media_path": "/tmp", "media_cleanup_chdir": "/tmp"},
}


# The timeout each role passes to `runbook-ops run --timeout` (backup: two of them).
TIMEOUT_VARS = {
    "backup": {"backup_timeout_seconds": -5, "backup_check_timeout_seconds": 0},
    "disk_monitor": {"disk_monitor_timeout_seconds": 0},
    "docker_cleanup": {"docker_cleanup_timeout_seconds": -5},
    "health_monitor": {"health_monitor_job_timeout_seconds": -120},
    "media_baseline": {"media_baseline_timeout_seconds": 0},
    "media_cleanup": {"media_cleanup_command_timeout_seconds": -1},
}
RULE = "use letters, digits, '_' and '-' (not first), at most 100 characters"


@pytest.fixture(scope="module")
def plays(tmp_path_factory):
    """``{alias: [task results]}``: each case applied to its own alias of localhost: the
    role's name with a dotted job name, ``<role>-timeout`` with bad timeouts,
    ``backup-long-name`` with a job name whose ``-freshness`` job is too long."""
    tmp = tmp_path_factory.mktemp("job-names")
    hosts = {}
    for role in sorted(ROLE_VARS):
        hosts[role] = dict(ROLE_VARS[role], role_under_test=role)
        hosts[role]["%s_job_name" % role] = "nightly.%s" % role
        hosts[role + "-timeout"] = dict(ROLE_VARS[role], role_under_test=role,
                                        **TIMEOUT_VARS[role])
    hosts["backup-long-name"] = dict(ROLE_VARS["backup"], role_under_test="backup",
                                     backup_job_name="b" * 95)
    # One play, so a host that fails (as most must) does not end the others' runs.
    (tmp / "play.yml").write_text(json.dumps([{
        "name": "Apply each host's role", "hosts": "all", "gather_facts": False,
        "tasks": [{"name": "Apply the role under test", "ansible.builtin.include_role": {
            "name": "runbook.ops.{{ role_under_test }}"}}]}]))
    (tmp / "hosts.yml").write_text(json.dumps({"all": {
        "hosts": hosts, "vars": {"ansible_connection": "local", "runbook_ops_packages": ["python3"],
                                 "ansible_python_interpreter": "/usr/bin/python3"}}}))
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(_REPO, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(_REPO, ".collections"),
               ANSIBLE_STDOUT_CALLBACK="ansible.builtin.json", ANSIBLE_NOCOLOR="1",
               ANSIBLE_LOAD_CALLBACK_PLUGINS="true")
    proc = subprocess.run([_PLAYBOOK, "-i", str(tmp / "hosts.yml"), "--check",
                           str(tmp / "play.yml")], cwd=_REPO, env=env, capture_output=True,
                          text=True, timeout=600, check=False)
    data = json.loads(proc.stdout)
    return {host: [dict(task["task"], **task["hosts"][host]) for task in data["plays"][0]["tasks"]
                   if host in task["hosts"]]
            for host in hosts}


def _refused_first(tasks, role):
    """The problems of the one failed task, the role's preflight check, which ran first."""
    failed = [t for t in tasks if t.get("failed")]
    assert len(failed) == 1 and failed[0]["name"] == (
        "runbook.ops.preflight : Check, before anything changes, the variables of runbook.ops.base, "
        "runbook.ops.%s" % role)
    changed = [t for t in tasks if "/roles/" in t.get("path", "") and "/roles/preflight/" not in t["path"]]
    assert changed == [], "neither runbook.ops.base nor the role ran a task"
    return failed[0]["problems"]


@pytest.mark.parametrize("role", sorted(ROLE_VARS))
def test_a_dot_in_the_job_name_is_refused_before_anything_runs(plays, role):
    assert _refused_first(plays[role], role) == [
        "%s_job_name: nightly.%s is not a valid job name: %s (no dot: Debian's cron silently "
        "ignores /etc/cron.d files with one)" % (role, role, RULE)]


@pytest.mark.parametrize("role", sorted(ROLE_VARS))
def test_a_timeout_of_0_or_less_is_refused_before_anything_runs(plays, role):
    assert _refused_first(plays[role + "-timeout"], role) == [
        "%s: %s is not a valid timeout: use a number of seconds greater than 0" % (variable, value)
        for variable, value in TIMEOUT_VARS[role].items()]


def test_the_backup_role_refuses_a_name_whose_freshness_job_is_too_long(plays):
    assert _refused_first(plays["backup-long-name"], "backup") == [
        "backup_job_name: %s is too long for the freshness job %s-freshness (is not a valid "
        "job name: %s)" % ("b" * 95, "b" * 95, RULE)]

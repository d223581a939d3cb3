# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role refuses a job name with a dot before it changes anything.

Debian's cron silently ignores /etc/cron.d files whose names contain a dot, so
``backup_job_name: backup.daily`` would install a job that never runs. Each role is
applied for real by one ansible-playbook run against localhost in check mode (nothing on
this machine changes), one inventory alias per role, with such a name: each must fail at
the role's first task with one line naming the variable, its value and the rule.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_PLAYBOOK = os.path.join(_REPO, ".venv", "bin", "ansible-playbook")

# The least each role needs besides its job name (argument specs require these).
ROLE_VARS = {
    "backup": {"backup_engine": "archive", "backup_paths": ["/srv"]},
    "disk_monitor": {},
    "docker_cleanup": {},
    "health_monitor": {},
    "media_baseline": {"media_baseline_path": "/srv/media"},
    "media_cleanup": {"media_cleanup_media_path": "/srv/media", "media_cleanup_chdir": "/srv"},
}


@pytest.fixture(scope="module")
def plays(tmp_path_factory):
    """``{role: [task results]}``: each role applied to its own alias of localhost."""
    tmp = tmp_path_factory.mktemp("job-names")
    hosts = {}
    for role in sorted(ROLE_VARS):
        hosts[role] = dict(ROLE_VARS[role], role_under_test=role)
        hosts[role]["%s_job_name" % role] = "nightly.%s" % role
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


@pytest.mark.parametrize("role", sorted(ROLE_VARS))
def test_a_dot_in_the_job_name_is_refused_by_the_role_first_task(plays, role):
    tasks = plays[role]
    failed = [t for t in tasks if t.get("failed")]
    assert len(failed) == 1 and failed[0]["name"] == (
        "runbook.ops.%s : Check the job name (the rule of runbook-ops run --job)" % role)
    assert failed[0]["msg"] == (
        "%s_job_name 'nightly.%s' is not a valid job name: use letters, digits, '_' and '-' "
        "(not first), at most 100 characters (no dot: Debian's cron silently ignores "
        "/etc/cron.d files with one)" % (role, role))
    own = [t for t in tasks if "/roles/%s/" % role in t.get("path", "")]
    assert own == failed, "the role ran nothing before refusing the name"

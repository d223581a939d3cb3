# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Review of #15 items 4, 5, 9: ways docker_cleanup and emergency-disk.yml still lose
data or fail quietly. Each test fails on 74bd1c6 and names the rule it breaks.

* a stopped container that is started again (and crashes) between the plan and its
  removal is removed anyway: only images are re-read right before removal, containers
  are not; the next run then removes its anonymous volume (the data);
* emergency-disk.yml rescues a failed Docker step and ends green (``failed=0``, rc 0):
  "a failed step turns the recap red".
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import time

import pytest

from images import build_busybox_image
from isolated_engine import ENGINES

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_cleanup as dc

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="isolated engines need root")

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
UNTIL_SECONDS = 15  # a "week" scaled down


@pytest.fixture(params=ENGINES, ids=["docker-%s" % v for v in ENGINES])
def engine(request, isolated_engine_factory):
    return isolated_engine_factory("review", version=request.param)


def test_a_container_started_again_after_the_plan_and_crashed_stays(engine, monkeypatch):
    """db stopped longer than ``until`` ago, so the plan removes it. Between the plan and
    the removal (in a real run: the build-cache prune, the removals before it) an
    operator starts it again and it crashes at once (exit 3): it has *just crashed* and
    must stay, with its data, in this run and the next."""
    api = engine.api()
    build_busybox_image(engine, "db:1", filler_bytes=4096)
    crash = "echo row >> /var/lib/db/table; exit 3"
    engine.docker_cli("run", "--name", "db", "-v", "/var/lib/db", "db:1", "sh", "-c", crash, check=False)
    volume = [m["Name"] for m in api.inspect_container("db")["Mounts"] if m["Type"] == "volume"][0]
    time.sleep(UNTIL_SECONDS + 2)
    args = {"until": "%ds" % UNTIL_SECONDS, "containers": True, "volumes": "anonymous",
            "images": "none", "builder_cache": False, "docker_host": engine.host}
    plan_cleanup_steps = dc.plan_cleanup_steps

    def plan_then_restart(state, options, now=None):
        plan = plan_cleanup_steps(state, options, now)
        engine.docker_cli("start", "db")
        assert api.wait("db", timeout=30)["StatusCode"] == 3
        return plan

    monkeypatch.setattr(dc, "plan_cleanup_steps", plan_then_restart)
    result = dc.run_docker_cleanup(args)
    monkeypatch.setattr(dc, "plan_cleanup_steps", plan_cleanup_steps)
    again = dc.run_docker_cleanup(args)

    lost = {"db removed by the run": result["steps"][1]["removed"] != [],
            "its data volume removed by the next run": volume in again["steps"][3]["removed"]}
    assert not any(lost.values()), "a container that crashed a moment ago: %s" % lost
    assert api.inspect_container("db")["State"]["ExitCode"] == 3


def _stale_socket(path):
    """A unix socket file nobody listens on: a dockerd that died (as on a full disk)."""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.close()
    return "unix://" + path


def test_a_failed_docker_step_turns_the_emergency_recap_red(tmp_path):
    """The Docker engine does not answer: every Docker step fails. The playbook goes on
    (logs step, summary) but must end with the host failed, not ``failed=0`` and rc 0."""
    logs = tmp_path / "log"
    logs.mkdir()
    extra = {"emergency_disk_path": str(tmp_path), "emergency_disk_force": True,
             "emergency_disk_docker_host": _stale_socket(str(tmp_path / "docker.sock")),
             "emergency_disk_log_dir": str(logs), "emergency_disk_journal_vacuum": False,
             "emergency_disk_telegram": False, "emergency_disk_target_percent": 1,
             "emergency_disk_crit_percent": 99, "emergency_disk_escalate_percent": 99}
    env = dict(os.environ, ANSIBLE_CONFIG=os.path.join(REPO, "ansible.cfg"),
               ANSIBLE_COLLECTIONS_PATH=os.path.join(REPO, ".collections"))
    proc = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"),
                           os.path.join(REPO, "playbooks", "emergency-disk.yml"),
                           "-e", json.dumps(extra)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert "failed: cannot reach the Docker daemon" in proc.stdout, proc.stdout[-3000:]
    recap = proc.stdout[proc.stdout.rindex("PLAY RECAP"):]
    assert proc.returncode != 0 and "failed=0" not in recap, recap

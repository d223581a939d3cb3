# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks at fleet scale: 20 container hosts in one run.

Twenty containers from the offline test image (``RUNBOOK_OPS_TEST_IMAGE``, no network)
play Debian servers, reached through the ``community.docker.docker`` connection plugin
with the tuning a fleet user wants: 25 forks, pipelining, no fact gathering (neither
playbook gathers facts).
One run of ``emergency_disk.yml --check`` (forced, with a 1% target so every step is
previewed on every host) and one of ``provision.yml`` go across all of them; every host
must succeed. A second ``provision.yml`` on every fifth host must change nothing. The containers are named
``runbook-ops-scale-*`` on the main engine and are removed at the end, always.

``benchmarks/fleet_scale.py`` reuses the helpers here to time 1, 10 and 20 hosts.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import time

import pytest
from container_hosts import PREFIX, remove_hosts, start_fleet, write_fleet_inventory

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
FLEET_SIZE = int(os.environ.get("RUNBOOK_OPS_FLEET_SIZE", "20"))
# provision.yml runs a second time on every SECOND_RUN_EVERY-th host (20 hosts: 4 of them).
SECOND_RUN_EVERY = int(os.environ.get("RUNBOOK_OPS_FLEET_SECOND_RUN_EVERY", "5"))
# What a fleet user tunes (ansible.cfg has the same; the environment makes it explicit).
FLEET_ENV = {
    "ANSIBLE_CONFIG": os.path.join(REPO, "ansible.cfg"),
    "ANSIBLE_COLLECTIONS_PATH": os.path.join(REPO, ".collections"),
    "ANSIBLE_FORKS": "25",
    "ANSIBLE_PIPELINING": "true",
    "ANSIBLE_GATHERING": "explicit",
    "ANSIBLE_NOCOLOR": "1",
    "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.default",
}
# Every step of emergency_disk.yml previewed on every host: forced, 1% target.
EMERGENCY_CHECK_VARS = {"emergency_disk_force": True, "emergency_disk_target_percent": 1,
                        "emergency_disk_escalate_percent": 99}
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                   r"\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)", re.M)


def run_playbook(playbook, inventory, extra_vars=None, check=False, timeout=3600, limit=None):
    """Run a playbook of this repo; returns (returncode, output, seconds, recap)."""
    argv = [ANSIBLE_PLAYBOOK, "-i", inventory, os.path.join(REPO, "playbooks", playbook)]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    if limit:
        argv += ["--limit", ",".join(limit)]
    if check:
        argv.append("--check")
    env = dict(os.environ)
    env.update(FLEET_ENV)
    started = time.monotonic()
    proc = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=timeout, check=False)
    seconds = time.monotonic() - started
    output = proc.stdout + proc.stderr
    return proc.returncode, output, seconds, parse_recap(output)


def parse_recap(output):
    """{host: {"ok", "changed", "unreachable", "failed", ...}} from the PLAY RECAP."""
    keys = ("ok", "changed", "unreachable", "failed", "skipped", "rescued", "ignored")
    return {m.group(1): dict(zip(keys, map(int, m.groups()[1:]))) for m in RECAP.finditer(output)}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    names = [f"{PREFIX}{n}" for n in range(1, FLEET_SIZE + 1)]
    try:
        start_fleet(FLEET_SIZE)
        inventory = write_fleet_inventory(str(tmp_path_factory.mktemp("fleet") / "hosts.yml"), names)
        yield names, inventory
    finally:
        remove_hosts(names)


def _assert_all_ok(names, recap, output):
    assert sorted(recap) == sorted(names), output[-3000:]
    bad = {h: r for h, r in recap.items() if r["failed"] or r["unreachable"]}
    assert not bad, "hosts failed: %s\n%s" % (bad, output[-5000:])


def test_emergency_disk_check_across_the_fleet(fleet):
    names, inventory = fleet
    rc, output, seconds, recap = run_playbook("emergency_disk.yml", inventory,
                                              EMERGENCY_CHECK_VARS, check=True)
    print("emergency_disk.yml --check on %d hosts: %.1f s" % (len(names), seconds))
    _assert_all_ok(names, recap, output)
    assert rc == 0
    # every host previewed every step; none has a Docker engine, so those steps say so
    assert output.count("skipped: no Docker engine on this host") >= 3 * len(names)
    assert output.count("Journal and rotated logs") >= len(names)


def test_provision_across_the_fleet_then_nothing_changes(fleet):
    names, inventory = fleet
    rc, output, seconds, recap = run_playbook("provision.yml", inventory)
    print("provision.yml on %d hosts: %.1f s" % (len(names), seconds))
    _assert_all_ok(names, recap, output)
    assert rc == 0
    assert all(r["changed"] > 0 for r in recap.values()), "the first run installs something"

    # The second run goes to a sample spread over the fleet: every host got the same
    # first run, and the Molecule scenarios check each role's idempotence on its own.
    sample = names[::SECOND_RUN_EVERY]
    rc, output, seconds, recap = run_playbook("provision.yml", inventory, limit=sample)
    print("provision.yml again on %d hosts: %.1f s" % (len(sample), seconds))
    _assert_all_ok(sample, recap, output)
    assert rc == 0
    changed = {h: r["changed"] for h, r in recap.items() if r["changed"]}
    assert not changed, "second run changed something: %s\n%s" % (changed, output[-5000:])

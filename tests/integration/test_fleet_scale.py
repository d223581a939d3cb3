# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The playbooks at fleet scale: 20 container hosts in one run.

Twenty containers from the offline test image (``RUNBOOK_OPS_TEST_IMAGE``, no network)
play Debian servers, reached through the ``community.docker.docker`` connection plugin
with the tuning a fleet user wants: 25 forks, pipelining, facts limited to what the
playbooks use (emergency-disk gathers none, provision only pkg_mgr and service_mgr).
One run of ``emergency-disk.yml --check`` (forced, with a 1% target so every step is
previewed on every host) and one of ``provision.yml`` go across all of them; every host
must succeed. A second ``provision.yml`` on every fifth host must change nothing. The containers are named
``runbook-ops-scale-*`` on the main engine and are removed at the end, always.

``benchmarks/fleet_scale.py`` reuses the helpers here to time 1, 10 and 20 hosts.
"""

from __future__ import annotations

import glob
import json
import os
import re
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ANSIBLE_PLAYBOOK = os.path.join(REPO, ".venv", "bin", "ansible-playbook")
# Our containers on the main engine are named runbook-ops-scale-*, nothing else.
PREFIX = os.environ.get("RUNBOOK_OPS_FLEET_PREFIX", "runbook-ops-scale-")
assert PREFIX.startswith("runbook-ops-scale-"), PREFIX
FLEET_SIZE = int(os.environ.get("RUNBOOK_OPS_FLEET_SIZE", "20"))
DOCKER = "docker"
# provision.yml runs a second time on every SECOND_RUN_EVERY-th host (20 hosts: 4 of them).
SECOND_RUN_EVERY = int(os.environ.get("RUNBOOK_OPS_FLEET_SECOND_RUN_EVERY", "5"))
# The base role installs its packages with apt, whose module needs python3-apt; a real
# server fetches it on first use, these offline containers get it from the host's apt.
APT_DEBS = ("python3-apt", "python-apt-common", "distro-info-data")
DEB_CACHE = os.path.join(REPO, ".cache", "fleet-debs")
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
# Every step of emergency-disk.yml previewed on every host: forced, 1% target.
EMERGENCY_CHECK_VARS = {"emergency_disk_force": True, "emergency_disk_target_percent": 1,
                        "emergency_disk_escalate_percent": 99}
RECAP = re.compile(r"^(\S+)\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)"
                   r"\s+skipped=(\d+)\s+rescued=(\d+)\s+ignored=(\d+)", re.M)


def _docker(*args, check=True, timeout=120):
    proc = subprocess.run([DOCKER] + list(args), capture_output=True, text=True, timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("docker %s failed (%d): %s" % (" ".join(args[:3]), proc.returncode,
                                                          proc.stderr.strip()))
    return proc


def fleet_image():
    image = os.environ.get("RUNBOOK_OPS_TEST_IMAGE")
    if not image:
        pytest.skip("RUNBOOK_OPS_TEST_IMAGE is not set; source scripts/dev-env.sh")
    return image


def apt_debs():
    """The python3-apt .debs (downloaded once with the host's apt into .cache/fleet-debs)."""
    os.makedirs(DEB_CACHE, exist_ok=True)
    found = [glob.glob(os.path.join(DEB_CACHE, "%s_*.deb" % name)) for name in APT_DEBS]
    if not all(found):
        proc = subprocess.run(["apt-get", "download"] + list(APT_DEBS), cwd=DEB_CACHE,
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError("apt-get download %s failed: %s" % (
                " ".join(APT_DEBS), proc.stderr.strip()))
        found = [glob.glob(os.path.join(DEB_CACHE, "%s_*.deb" % name)) for name in APT_DEBS]
    return [sorted(paths)[-1] for paths in found]


def _start_host(name, image, debs):
    _docker("rm", "-f", name, check=False)
    _docker("run", "-d", "--name", name, "--network", "none", image)
    _docker("exec", name, "mkdir", "-p", "/tmp/debs", "/srv/media/uploads")
    for deb in debs:
        _docker("cp", deb, "%s:/tmp/debs/" % name)
    _docker("exec", name, "sh", "-c", "dpkg -i /tmp/debs/*.deb >/dev/null && rm -rf /tmp/debs",
            timeout=300)
    return name


def start_fleet(count, image=None):
    """Start ``count`` hosts ``runbook-ops-scale-1..count``; returns their names."""
    image = image or fleet_image()
    debs = apt_debs()
    names = ["%s%d" % (PREFIX, n) for n in range(1, count + 1)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda name: _start_host(name, image, debs), names))
    return names


def remove_fleet(names):
    """Remove the named containers (and nothing else)."""
    for start in range(0, len(names), 50):
        _docker("rm", "-f", *names[start:start + 50], check=False, timeout=300)


def write_inventory(path, names):
    """A YAML inventory of ``names`` over the docker connection; returns its path.

    Telegram points at a closed port on 127.0.0.1 (nothing leaves the machine); media
    baselines and the health monitor are configured so provision.yml runs those roles.
    """
    inventory = {"all": {
        "vars": {
            "ansible_connection": "community.docker.docker",
            "ansible_python_interpreter": "/usr/bin/python3",
            "runbook_ops_telegram_bot_token": "123456:fleet-test-token",
            "runbook_ops_telegram_chat_id": "-100123",
            "runbook_ops_telegram_api_url": "http://127.0.0.1:9",
            "media_baseline_path": "/srv/media/uploads",
            "health_monitor_endpoints": [{"name": "app", "url": "http://127.0.0.1:8000/health/"}],
        },
        "hosts": {name: {} for name in names},
    }}
    with open(path, "w") as fh:
        json.dump(inventory, fh, indent=2)  # JSON is YAML
    return path


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
        inventory = write_inventory(str(tmp_path_factory.mktemp("fleet") / "hosts.yml"), names)
        yield names, inventory
    finally:
        remove_fleet(names)


def _assert_all_ok(names, recap, output):
    assert sorted(recap) == sorted(names), output[-3000:]
    bad = {h: r for h, r in recap.items() if r["failed"] or r["unreachable"]}
    assert not bad, "hosts failed: %s\n%s" % (bad, output[-5000:])


def test_emergency_disk_check_across_the_fleet(fleet):
    names, inventory = fleet
    rc, output, seconds, recap = run_playbook("emergency-disk.yml", inventory,
                                              EMERGENCY_CHECK_VARS, check=True)
    print("emergency-disk.yml --check on %d hosts: %.1f s" % (len(names), seconds))
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

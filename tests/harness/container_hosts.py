# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Debian hosts as containers on the main engine, for playbook tests and benchmarks.

Containers from the offline test image (``RUNBOOK_OPS_TEST_IMAGE``, no network) with
python3-apt added from the host's apt play fresh Debian servers without a Docker engine,
reached through the ``community.docker.docker`` connection. Only containers with the
caller's names are created and removed; nothing else on the main engine is touched.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# The fleet's containers are named runbook-ops-scale-*, nothing else.
PREFIX = os.environ.get("RUNBOOK_OPS_FLEET_PREFIX", "runbook-ops-scale-")
assert PREFIX.startswith("runbook-ops-scale-"), PREFIX
# The base role installs its packages with apt, whose module needs python3-apt; a real
# server fetches it on first use, these offline containers get it from the host's apt.
APT_DEBS = ("python3-apt", "python-apt-common", "distro-info-data")
DEB_CACHE = os.path.join(REPO, ".cache", "fleet-debs")
HOST_VARS = {
    "ansible_connection": "community.docker.docker",
    "ansible_python_interpreter": "/usr/bin/python3",
}


def docker(*args, check=True, timeout=300):
    """The docker CLI on the main engine; ``RuntimeError`` with stderr when it fails."""
    proc = subprocess.run(["docker"] + list(args), capture_output=True, text=True,
                          timeout=timeout, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError("docker %s failed (%d): %s" % (" ".join(args[:3]), proc.returncode,
                                                          proc.stderr.strip()))
    return proc


def fleet_image():
    """The offline test image's tag (skips the test when scripts/dev-env.sh was not sourced)."""
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


def start_host(name, image, debs, run_args=()):
    """Start one fresh host ``name`` (a leftover of that name is removed first) with
    ``run_args`` as extra ``docker run`` options; returns ``name``."""
    docker("rm", "-f", name, check=False)
    docker("run", "-d", "--name", name, "--network", "none", *run_args, image)
    docker("exec", name, "mkdir", "-p", "/tmp/debs", "/srv/media/uploads")
    for deb in debs:
        docker("cp", deb, "%s:/tmp/debs/" % name)
    docker("exec", name, "sh", "-c", "dpkg -i /tmp/debs/*.deb >/dev/null && rm -rf /tmp/debs")
    return name


def start_hosts(names, image, run_args=None):
    """Start one fresh host per name; ``run_args`` ``{name: [docker run options]}``."""
    debs = apt_debs()
    return [start_host(name, image, debs, (run_args or {}).get(name, ())) for name in names]


def start_fleet(count, image=None):
    """Start ``count`` hosts ``<PREFIX>1..count`` in parallel; returns their names."""
    image = image or fleet_image()
    debs = apt_debs()
    names = ["%s%d" % (PREFIX, n) for n in range(1, count + 1)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda name: start_host(name, image, debs), names))
    return names


def remove_hosts(names):
    """Remove the named containers, and nothing else."""
    for start in range(0, len(names), 50):
        docker("rm", "-f", *names[start:start + 50], check=False)


def write_fleet_inventory(path, names, host_vars=None):
    """A YAML inventory of ``names`` over the docker connection; returns its path.

    ``host_vars`` maps an inventory name to its variables (e.g. ``ansible_host``: the
    container) when the inventory names are not the containers' own. Telegram points at a
    closed port on 127.0.0.1 (nothing leaves the machine); media baselines and the health
    monitor are configured so provision.yml runs those roles.
    """
    common = {
        "runbook_ops_telegram_bot_token": "123456:fleet-test-token",
        "runbook_ops_telegram_chat_id": "-100123",
        "runbook_ops_telegram_api_url": "http://127.0.0.1:9",
        "media_baseline_path": "/srv/media/uploads",
        "health_monitor_endpoints": [{"name": "app", "url": "http://127.0.0.1:8000/health/"}],
    }
    hosts = {name: dict((host_vars or {}).get(name, {})) for name in names}
    return write_inventory(path, hosts, common=common)


def write_inventory(path, hosts, groups=None, common=None):
    """A YAML (JSON) inventory: ``hosts`` ``{name: vars}`` under ``all`` with the docker
    connection, ``groups`` ``{group: [names]}``; returns ``path``."""
    inventory = {"all": {"vars": dict(HOST_VARS, **(common or {})), "hosts": hosts,
                         "children": {group: {"hosts": {name: {} for name in members}}
                                      for group, members in (groups or {}).items()}}}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(inventory, handle, indent=2)  # JSON is YAML
    return path


def host_file(name, path):
    """The text of ``path`` on host ``name``, or None when it does not exist."""
    proc = docker("exec", name, "cat", path, check=False)
    return proc.stdout if proc.returncode == 0 else None

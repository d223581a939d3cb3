# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Debian hosts as containers on the main engine, for playbook tests and benchmarks.

Containers from the offline test image (``RUNBOOK_OPS_TEST_IMAGE``, no network) with
python3-apt added from the host's apt play Debian servers, reached through the
``community.docker.docker`` connection. Every container is named ``runbook-ops-scale-*``
and nothing else is ever removed.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess
from concurrent.futures import ThreadPoolExecutor

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Our containers on the main engine are named runbook-ops-scale-*, nothing else.
PREFIX = os.environ.get("RUNBOOK_OPS_FLEET_PREFIX", "runbook-ops-scale-")
assert PREFIX.startswith("runbook-ops-scale-"), PREFIX
DOCKER = "docker"
# The base role installs its packages with apt, whose module needs python3-apt; a real
# server fetches it on first use, these offline containers get it from the host's apt.
APT_DEBS = ("python3-apt", "python-apt-common", "distro-info-data")
DEB_CACHE = os.path.join(REPO, ".cache", "fleet-debs")


def docker(*args, check=True, timeout=120):
    """Run the docker CLI against the main engine; raise with its stderr when it fails."""
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


def start_host(name, image, debs):
    docker("rm", "-f", name, check=False)
    docker("run", "-d", "--name", name, "--network", "none", image)
    docker("exec", name, "mkdir", "-p", "/tmp/debs", "/srv/media/uploads")
    for deb in debs:
        docker("cp", deb, "%s:/tmp/debs/" % name)
    docker("exec", name, "sh", "-c", "dpkg -i /tmp/debs/*.deb >/dev/null && rm -rf /tmp/debs",
           timeout=300)
    return name


def start_fleet(count, image=None):
    """Start ``count`` hosts ``runbook-ops-scale-1..count``; returns their names."""
    image = image or fleet_image()
    debs = apt_debs()
    names = ["%s%d" % (PREFIX, n) for n in range(1, count + 1)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda name: start_host(name, image, debs), names))
    return names


def remove_fleet(names):
    """Remove the named containers (and nothing else)."""
    for start in range(0, len(names), 50):
        docker("rm", "-f", *names[start:start + 50], check=False, timeout=300)


def write_inventory(path, names, host_vars=None):
    """A YAML inventory of ``names`` over the docker connection; returns its path.

    ``host_vars`` maps an inventory name to its variables (e.g. ``ansible_host``: the
    container) when the inventory names are not the containers' own.
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
        "hosts": {name: dict((host_vars or {}).get(name, {})) for name in names},
    }}
    with open(path, "w") as fh:
        json.dump(inventory, fh, indent=2)  # JSON is YAML
    return path

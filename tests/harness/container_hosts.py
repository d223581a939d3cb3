# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Container hosts for playbook tests: fresh Debian hosts without a Docker engine.

Containers of the offline test image (``RUNBOOK_OPS_TEST_IMAGE``, no network) on the main
engine, reached through the ``community.docker.docker`` connection plugin, with
python3-apt from the host's apt (as ``tests/integration/test_fleet_scale.py`` does).
Only containers named with the caller's prefix are created and removed; nothing else on
the main engine is touched.
"""

from __future__ import annotations

import glob
import json
import os
import subprocess

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
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


def apt_debs():
    """The python3-apt .debs (downloaded once with the host's apt into .cache/fleet-debs)."""
    os.makedirs(DEB_CACHE, exist_ok=True)
    found = [glob.glob(os.path.join(DEB_CACHE, "%s_*.deb" % name)) for name in APT_DEBS]
    if not all(found):
        subprocess.run(["apt-get", "download"] + list(APT_DEBS), cwd=DEB_CACHE,
                       capture_output=True, text=True, check=True)
        found = [glob.glob(os.path.join(DEB_CACHE, "%s_*.deb" % name)) for name in APT_DEBS]
    return [sorted(paths)[-1] for paths in found]


def start_hosts(names, image, run_args=None):
    """Start one fresh host per name (removing a leftover of the same name first);
    ``run_args`` ``{name: [docker run options]}`` (volumes, ...)."""
    debs = apt_debs()
    for name in names:
        docker("rm", "-f", name, check=False)
        docker("run", "-d", "--name", name, "--network", "none",
               *(run_args or {}).get(name, []), image)
        docker("exec", name, "mkdir", "-p", "/tmp/debs")
        for deb in debs:
            docker("cp", deb, "%s:/tmp/debs/" % name)
        docker("exec", name, "sh", "-c", "dpkg -i /tmp/debs/*.deb >/dev/null && rm -rf /tmp/debs")
    return list(names)


def remove_hosts(names):
    """Remove the named containers, and nothing else."""
    if names:
        docker("rm", "-f", *names, check=False)


def write_inventory(path, hosts, groups=None, common=None):
    """A YAML (JSON) inventory: ``hosts`` ``{name: vars}`` under ``all`` with the docker
    connection, ``groups`` ``{group: [names]}``; returns ``path``."""
    inventory = {"all": {"vars": dict(HOST_VARS, **(common or {})), "hosts": hosts,
                         "children": {group: {"hosts": {name: {} for name in members}}
                                      for group, members in (groups or {}).items()}}}
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(inventory, handle, indent=2)
    return path


def host_file(name, path):
    """The text of ``path`` on host ``name``, or None when it does not exist."""
    proc = docker("exec", name, "cat", path, check=False)
    return proc.stdout if proc.returncode == 0 else None

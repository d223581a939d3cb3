"""The built collection tarball: no dev clutter inside, and it works once installed elsewhere."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"

# Paths a user's installed collection must never carry (dev and test clutter).
FORBIDDEN_PREFIXES = (
    ".venv/", ".cache/", ".collections/", ".ci/", ".git/", "benchmarks/", "scripts/",
    "tests/unit/", "tests/integration/", "tests/harness/", "tests/fakes/", "requirements/",
)


def _run(argv, cwd, env=None):
    full_env = dict(os.environ)
    # Nothing of the checkout may leak in: no ansible.cfg, no collections path to .collections.
    for name in ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS"):
        full_env.pop(name, None)
    full_env.update(env or {})
    proc = subprocess.run(argv, cwd=cwd, env=full_env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, "%s failed (%d):\n%s\n%s" % (argv, proc.returncode, proc.stdout, proc.stderr)
    return proc.stdout


@pytest.fixture(scope="module")
def tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    _run([str(VENV_BIN / "ansible-galaxy"), "collection", "build", "--output-path", str(out), str(REPO)], cwd=out)
    (built,) = out.glob("runbook-ops-*.tar.gz")
    return built


@pytest.fixture(scope="module")
def installed(tarball, tmp_path_factory):
    root = tmp_path_factory.mktemp("installed")
    _run([str(VENV_BIN / "ansible-galaxy"), "collection", "install", "--offline", "--force", "-p", str(root), str(tarball)],
         cwd=root)
    return root


def test_tarball_carries_no_dev_or_test_clutter(tarball):
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    clutter = [n for n in names if n.startswith(FORBIDDEN_PREFIXES) or "/molecule/" in n or "__pycache__" in n]
    assert clutter == []
    assert "galaxy.yml" not in names and "MANIFEST.json" in names
    assert "plugins/module_utils/_ops/cli.py" in names
    assert "roles/base/tasks/main.yml" in names


def test_installed_collection_documents_every_module(installed):
    modules = sorted(p.stem for p in (REPO / "plugins" / "modules").glob("*.py") if p.stem != "__init__")
    assert modules, "the collection ships no module"
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed)}
    listing = json.loads(_run([str(VENV_BIN / "ansible-doc"), "-t", "module", "-l", "runbook.ops", "--json"],
                              cwd=installed, env=env))
    assert sorted(name.split(".")[-1] for name in listing) == modules


def test_installed_collection_runs_a_module_outside_the_checkout(installed, tmp_path):
    env = {"ANSIBLE_COLLECTIONS_PATH": str(installed), "ANSIBLE_LOCALHOST_WARNING": "false",
           "ANSIBLE_INVENTORY_UNPARSED_WARNING": "false"}
    out = _run([str(VENV_BIN / "ansible"), "localhost", "-c", "local", "-e",
                "ansible_python_interpreter=%s" % (VENV_BIN / "python"), "-m", "runbook.ops.disk_check",
                "-a", "paths=%s" % tmp_path, "-o"], cwd=tmp_path, env=env)
    assert "SUCCESS" in out and '"used_percent"' in out


def test_installed_roles_find_the_core_they_ship_to_hosts(installed):
    role = installed / "ansible_collections" / "runbook" / "ops" / "roles" / "base"
    core = (role / ".." / ".." / "plugins" / "module_utils" / "_ops").resolve()
    assert (core / "cli.py").is_file() and (core / "jobs.py").is_file()

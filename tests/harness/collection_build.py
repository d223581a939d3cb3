# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as users get it: built with ``ansible-galaxy collection build`` into a
temp directory and installed from that tarball into a temp collections path.

``run_tool(argv, cwd, env)`` runs a command with nothing of the checkout leaking in (no
``ansible.cfg``, no collections path to ``.collections``) and fails the test with its
output when it exits non-zero. Fixtures (registered by tests/conftest.py):
``collection_tarball`` (the ``.tar.gz``), ``installed_collections`` (the collections
path) and ``installed_collection`` (``<path>/ansible_collections/runbook/ops``), built
once per test session.
"""

from __future__ import annotations

import os
import subprocess
import tempfile

import pytest

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
VENV_BIN = os.path.join(REPO, ".venv", "bin")
_TOOL_HOME = tempfile.mkdtemp(prefix="runbook-ops-tool-home-")
_CHECKOUT_ENV = ("ANSIBLE_CONFIG", "ANSIBLE_COLLECTIONS_PATH", "ANSIBLE_COLLECTIONS_PATHS",
                 "ANSIBLE_ROLES_PATH")


def run_tool(argv, cwd, env=None, timeout=900, expect_rc=0):
    """Run ``argv`` in ``cwd`` without the checkout's Ansible settings; return stdout.

    ``env`` adds variables; ``expect_rc=None`` accepts any exit status and returns the
    ``CompletedProcess`` instead.
    """
    full_env = {k: v for k, v in os.environ.items() if k not in _CHECKOUT_ENV}
    # A HOME of their own: ansible-lint (also inside galaxy-importer) installs the collection
    # it lints into ~/.ansible/collections, which would shadow the checkout for later runs.
    full_env["HOME"] = _TOOL_HOME
    full_env.update(env or {})
    proc = subprocess.run([str(a) for a in argv], cwd=str(cwd), env=full_env, capture_output=True,
                          text=True, errors="replace", timeout=timeout, check=False)
    if expect_rc is None:
        return proc
    assert proc.returncode == expect_rc, "%s exited %d:\n%s\n%s" % (
        " ".join(str(a) for a in argv), proc.returncode, proc.stdout[-6000:], proc.stderr[-6000:])
    return proc.stdout


@pytest.fixture(scope="session")
def collection_tarball(tmp_path_factory):
    out = tmp_path_factory.mktemp("build")
    run_tool([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "build", "--output-path", out, REPO],
             cwd=out)
    (built,) = out.glob("runbook-ops-*.tar.gz")
    return built


@pytest.fixture(scope="session")
def installed_collections(collection_tarball, tmp_path_factory):
    root = tmp_path_factory.mktemp("collections")
    run_tool([os.path.join(VENV_BIN, "ansible-galaxy"), "collection", "install", "--offline", "--force",
              "-p", root, collection_tarball], cwd=root)
    return root


@pytest.fixture(scope="session")
def installed_collection(installed_collections):
    return installed_collections / "ansible_collections" / "runbook" / "ops"

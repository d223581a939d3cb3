# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook-ops CLI laid out under a directory as the base role installs it on a host."""

from __future__ import annotations

import os
import shutil

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CORE = os.path.join(REPO, "plugins", "module_utils", "_ops")
# What hosts run; a venv interpreter would hide a missing distribution package.
HOST_PYTHON = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else "python3"


def install_host_cli(root, python=HOST_PYTHON):
    """Copy the core to ``<root>/lib/runbook_ops/`` and write ``<root>/runbook-ops``; return its path."""
    package = os.path.join(str(root), "lib", "runbook_ops")
    os.makedirs(package)
    for name in os.listdir(CORE):
        if name.endswith(".py"):
            shutil.copy(os.path.join(CORE, name), package)
    launcher = os.path.join(str(root), "runbook-ops")
    with open(launcher, "w", encoding="utf-8") as handle:
        handle.write("#!%s\nimport sys\nsys.path.insert(0, %r)\nfrom runbook_ops.cli import main\n"
                     "sys.exit(main())\n" % (python, os.path.dirname(package)))
    os.chmod(launcher, 0o755)
    return launcher

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The README's Install section as typed, from the built tarball, against a Debian host.

The host is a container from the offline test image (``web1`` in the inventory the
commands name); the tarball sits where the command expects it; the collections path is
empty until the section's own ``ansible-galaxy collection install`` fills it.
"""

from __future__ import annotations

import os
import shlex
import shutil

import pytest
from collection_build import VENV_BIN, run_tool
from container_hosts import PREFIX, apt_debs, fleet_image, remove_hosts, start_host, write_fleet_inventory
from readme import code_blocks, readme_section


@pytest.fixture(scope="module")
def web1():
    name = PREFIX + "readme-install"
    try:
        yield start_host(name, fleet_image(), apt_debs())
    finally:
        remove_hosts([name])


def test_readme_install_commands_work_as_typed(collection_tarball, web1, tmp_path):
    (block,) = code_blocks(readme_section("Install (from Galaxy or a release tarball)"), "sh")
    commands = [shlex.split(line) for line in block.splitlines() if line.strip()]
    assert commands[0][:3] == ["ansible-galaxy", "collection", "install"]
    assert commands[0][3] == collection_tarball.name, "the README names another version than galaxy.yml's"
    shutil.copy(collection_tarball, tmp_path / collection_tarball.name)
    write_fleet_inventory(str(tmp_path / "inventory.yml"), ["web1"], {"web1": {"ansible_host": web1}})
    env = {"ANSIBLE_COLLECTIONS_PATH": str(tmp_path / "collections"), "ANSIBLE_NOCOLOR": "1",
           "ANSIBLE_PIPELINING": "true"}
    outputs = {}
    for argv in commands:
        named = [arg for arg in argv if arg.startswith("runbook.ops.")] or [argv[0]]
        outputs[named[0]] = run_tool([os.path.join(VENV_BIN, argv[0])] + argv[1:], cwd=tmp_path, env=env,
                                     timeout=1200)
    assert (tmp_path / "collections" / "ansible_collections" / "runbook" / "ops" / "MANIFEST.json").is_file()
    assert "RETURN VALUES" in outputs["runbook.ops.docker_cleanup"]
    for playbook in ("runbook.ops.provision", "runbook.ops.emergency_disk"):
        recap = outputs[playbook].rsplit("PLAY RECAP", 1)[1]
        assert "web1" in recap and "failed=0" in recap and "unreachable=0" in recap, outputs[playbook][-3000:]
    assert "CHECK MODE: nothing changed" in outputs["runbook.ops.emergency_disk"]

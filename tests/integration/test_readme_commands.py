# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every shell command block of the README, as typed, in one shell session.

Each ```bash block of README.md runs with ``bash -e -o pipefail`` from the root of the
checkout, in the environment the blocks before it left (one terminal session), in the order
a new user types them: the clone section first (quickstart, the venv on PATH), then the
rest in README order. The session starts with a PATH that does not have the venv on it:
the README must say how to get the tools. The only change to a command is the inventory:
``-i examples/hosts.yml`` becomes an inventory of container hosts with the same names (the
production group: ``web1`` with a Docker engine, a Compose app and a backup repository,
``web2`` without Docker; ``staging1`` never provisioned), their Telegram pointing at a
closed port. The test suite's own block is not run (``NOT_RUN``).

``web1`` is a fresh container of the offline test image whose ``/var/run/docker.sock`` is
an isolated Docker engine (tests/harness/isolated_engine.py) running the app's Compose
project ``eatfit24`` (backend and celery-worker reading ``.env``, and a one-shot
``migrate``), whose ``.env`` has just changed: the ``.env`` desync incident the env-sync
block fixes.
"""

from __future__ import annotations

import os
import re
import subprocess

import pytest
from container_hosts import REPO, docker, remove_hosts, start_hosts, write_inventory
from images import build_busybox_image
from readme import README, code_blocks, readme_section

NOT_RUN = {"./scripts/test": "the whole test suite, this test among it"}
PLAIN_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PREFIX = "runbook-ops-readme-%d-" % os.getpid()
IMAGE = "runbook-ops-readme-app:1"
COMPOSE_BIN = os.environ.get("RUNBOOK_OPS_COMPOSE_BIN") or ""
APP = """\
services:
  backend:
    image: %(image)s
    env_file: .env
    restart: unless-stopped
  celery-worker:
    image: %(image)s
    env_file: .env
    restart: unless-stopped
  migrate:
    image: %(image)s
    command: ["sh", "-c", "echo migrated"]
"""

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="container hosts and isolated engines need root"),
    pytest.mark.skipif(not os.access(COMPOSE_BIN, os.X_OK),
                       reason="RUNBOOK_OPS_COMPOSE_BIN (the Go docker-compose) is not set; "
                              "source scripts/dev-env.sh"),
]


def readme_blocks():
    """The README's bash blocks as a new user meets them: the clone section, then the rest."""
    clone = code_blocks(readme_section("From a clone (development)"), "bash")
    with open(README, encoding="utf-8") as handle:
        every = code_blocks(handle.read(), "bash")
    return clone + [block for block in every if block not in clone]


def _in_host(name, script):
    return docker("exec", name, "sh", "-ec", script)


@pytest.fixture(scope="module")
def hosts(isolated_engine, tmp_path_factory):
    """``(inventory, names)``: production (web1 with Docker and the app, web2), staging1."""
    image = os.environ.get("RUNBOOK_OPS_TEST_IMAGE")
    if not image:
        pytest.skip("RUNBOOK_OPS_TEST_IMAGE is not set; source scripts/dev-env.sh")
    build_busybox_image(isolated_engine, IMAGE)
    socket = isolated_engine.env["DOCKER_HOST"][len("unix://"):]
    web1, web2, staging1 = PREFIX + "web1", PREFIX + "web2", PREFIX + "staging1"
    tmp = tmp_path_factory.mktemp("readme")
    try:
        start_hosts([web1, web2, staging1], image, {web1: [
            "-v", "%s:/var/run/docker.sock" % socket,
            "-v", "%s:/usr/local/bin/docker-compose:ro" % COMPOSE_BIN]})
        _in_host(web2, "mkdir -p /srv/app/uploads && echo order > /srv/app/uploads/1.pdf")
        _in_host(web1, "mkdir -p /opt/eatfit24 /srv/app/uploads && cd /opt/eatfit24 && "
                       "printf '%%s' '%s' > compose.yaml && echo AI_PROXY_SECRET=old-1 > .env && "
                       "docker-compose up -d && echo photo > /srv/app/uploads/1.jpg && "
                       "echo AI_PROXY_SECRET=new-2 > .env" % (APP % {"image": IMAGE}))
        common = {
            "ansible_become_method": "su",
            "runbook_ops_telegram_bot_token": "123456:readme-walk-token",
            "runbook_ops_telegram_chat_id": "-100123",
            "runbook_ops_telegram_api_url": "http://127.0.0.1:9",
            "health_monitor_compose_projects": ["eatfit24"],
            "backup_repository": "/srv/restic-repo",
            "backup_password": "readme-walk-repository-password",
            "backup_paths": ["/srv/app"],
        }
        inventory = write_inventory(
            str(tmp / "hosts.yml"), {"web1": {"ansible_host": web1}, "web2": {"ansible_host": web2},
                                     "staging1": {"ansible_host": staging1}},
            groups={"production": ["web1", "web2"], "staging": ["staging1"]}, common=common)
        yield inventory, (web1, web2, staging1)
    finally:
        subprocess.run([COMPOSE_BIN, "-p", "eatfit24", "down", "--timeout", "0"],
                       env=dict(os.environ, **isolated_engine.env), capture_output=True,
                       timeout=300, check=False)
        remove_hosts([web1, web2, staging1])


def _session_env():
    """A fresh shell's environment: no venv on PATH, nothing dev-env.sh sets."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ANSIBLE_", "RUNBOOK_OPS_", "VIRTUAL_ENV", "DOCKER_"))}
    env["PATH"] = PLAIN_PATH
    env["ANSIBLE_NOCOLOR"] = "1"
    return env


def _run_block(block, env, tmp_path):
    """Run one block; return ``(rc, output, env after it)``."""
    env_file = tmp_path / "env"
    script = "%s\nenv -0 > %s\n" % (block, env_file)
    done = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=1800, check=False)
    after = env
    if done.returncode == 0:
        after = dict(item.split("=", 1) for item in env_file.read_text().split("\0") if "=" in item)
    return done.returncode, done.stdout + done.stderr, after


def _failures(output):
    """The lines of a failed task (Ansible's ``fatal:`` and ``FAILED!``), wherever they are."""
    return "\n".join(line for line in output.splitlines() if "fatal:" in line or "FAILED!" in line)


def test_every_readme_command_block_runs_as_typed(hosts, tmp_path):
    inventory, _names = hosts
    blocks = readme_blocks()
    assert len(blocks) >= 5
    env = _session_env()
    outputs = []
    for block in blocks:
        reason = [why for marker, why in NOT_RUN.items() if marker in block]
        if reason:
            outputs.append((block, None, "not run: " + reason[0]))
            continue
        command = block.replace("-i examples/hosts.yml", "-i " + inventory)
        rc, output, env = _run_block(command, env, tmp_path)
        outputs.append((block, rc, output))
        assert rc == 0, "README block failed (rc %d):\n%s\n--- failures ---\n%s\n--- output ---\n%s" % (
            rc, block, _failures(output), output[-6000:])
    text = "\n".join(out for _block, _rc, out in outputs)
    # what each step was for: set up, morning check, env-sync, backup and restores
    for host in ("web1", "web2"):                             # both production servers set up
        assert re.search(r"%s\s*: ok=\d+\s+changed=[1-9]" % host, text), host
    assert "staging1" not in text
    assert "one-shot run done, exit code 0" in text          # migrate exited 0: ok
    assert "no backup yet" in text                            # a warning on day one
    assert "recreated: backend, celery-worker" in text
    assert "restored files are under" in text
    ran = sum(1 for _block, rc, _out in outputs if rc is not None)
    assert ran == len(blocks) - len(NOT_RUN), [item[0][:60] for item in outputs]


def test_a_playbook_against_a_host_never_provisioned_says_to_provision_it(hosts):
    inventory, _names = hosts
    done = subprocess.run([os.path.join(REPO, ".venv", "bin", "ansible-playbook"), "-i",
                           inventory, "playbooks/health-check.yml", "-l", "staging1"],
                          cwd=REPO, env=_session_env(), capture_output=True, text=True,
                          timeout=600, check=False)
    out = done.stdout + done.stderr
    assert done.returncode == 2, out
    assert ("staging1 has no runbook.ops runtime (/usr/local/bin/runbook-ops is missing): run "
            "runbook.ops.provision first, e.g. ansible-playbook runbook.ops.provision -i INVENTORY "
            "-l staging1") in out, out
    assert "No such file or directory" not in out, out

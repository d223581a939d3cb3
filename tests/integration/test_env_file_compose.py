# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""_ops/env_file.py against the real Docker Compose: what `docker compose config` reads from
``env_file:`` files is what the core's parser reads, for lines ``format_env_line`` writes and
for the hand-written lines of the unit tests' rule table; and the backup role's credentials
file, written by its own task through ansible-playbook, reads back unchanged by both.

`compose config` resolves the project without an engine (DOCKER_HOST points nowhere), in a
clean environment, so nothing from this process is interpolated.
"""

from __future__ import annotations

import importlib.util
import json
import os
import random
import subprocess
import sys

import pytest
import yaml

from ansible_collections.runbook.ops.plugins.module_utils._ops import backup
from ansible_collections.runbook.ops.plugins.module_utils._ops.env_file import format_env_line, parse_env_text

COMPOSE_BIN = os.environ.get("RUNBOOK_OPS_COMPOSE_BIN") or ""
_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_UNIT_TESTS = os.path.join(os.path.dirname(__file__), "..", "unit", "plugins", "module_utils", "_ops",
                           "test_env_file.py")

pytestmark = pytest.mark.skipif(not os.access(COMPOSE_BIN, os.X_OK),
                                reason="RUNBOOK_OPS_COMPOSE_BIN (the Go docker-compose) is not set; source scripts/dev-env.sh")

# Values that broke hand-rolled readers: quotes at either end, comments, dollars, backslashes
# (a trailing one, escapes that mean something in double quotes), line breaks, outer spaces.
TRICKY_VALUES = [
    "", "plain", "ends in a quote'", 'ends in a quote"', "'both'", '"both"', "it's", 'say "hi"',
    "a #comment", "#start", "a#b", "$HOME", "${HOME}", "$$", "a$", "\\", "ends\\", "\\'", '\\"',
    "\\n literal", "\\$x", "\\0123", "line1\nline2", "\nlead", "trail\n", "cr\rlf\r\n",
    "  lead and trail  ", "\ttab\t", "=:{}[]", "ünïcødé ✓ 秘密", "' \" # $ \\ mixed $$ ${X:-y} \\\\",
]

PIECES = list("ab '\"#$\\\n\r\t{}=:- ") + ["${A}", "$$", " #", "\\'", '\\"', "\\0123", "\\n", "é", "秘", "\u2028", "\x85"]


def _random_values(count, seed=20):
    """Seeded values built from the pieces that matter to the rules (the same every run)."""
    rng = random.Random(seed)
    return ["".join(rng.choice(PIECES) for _piece in range(rng.randrange(0, 16))) for _value in range(count)]


def _unit_tables():
    """The unit tests' RULES (id, text, expected) and REFUSED (id, text): one table for both."""
    spec = importlib.util.spec_from_file_location("rbo_test_env_file_rules", _UNIT_TESTS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.RULES, module.REFUSED


def _compose_config(directory, env_files):
    """`docker compose config --format json` of a project whose service ``s<N>`` reads
    env_files[N]: the finished process."""
    lines = ["services:"]
    for index, text in enumerate(env_files):
        name = "s%d.env" % index
        with open(os.path.join(directory, name), "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        lines += ["  s%d:" % index, "    image: busybox", "    env_file: %s" % name]
    with open(os.path.join(directory, "compose.yaml"), "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": directory,
           "DOCKER_CONFIG": os.path.join(directory, ".docker"), "DOCKER_HOST": "unix:///nonexistent.sock"}
    proc = subprocess.run([COMPOSE_BIN, "--project-directory", directory, "-p", "envtruth", "config",
                           "--format", "json"], cwd=directory, env=env, capture_output=True, text=True,
                          timeout=120, check=False)
    return proc


def _compose_environments(directory, env_files):
    """[environment of s<N>] as compose resolves it (its ``$`` written back unescaped: compose
    prints every ``$`` as ``$$``)."""
    proc = _compose_config(directory, env_files)
    assert proc.returncode == 0, proc.stderr
    services = json.loads(proc.stdout)["services"]
    return [{k: (v or "").replace("$$", "$") for k, v in (services["s%d" % i].get("environment") or {}).items()}
            for i in range(len(env_files))]


def test_compose_reads_every_env_file_as_the_core_does(tmp_path):
    values = TRICKY_VALUES + _random_values(300)
    written = "".join(format_env_line("V%03d" % i, v) + "\n" for i, v in enumerate(values))
    rules, refused = _unit_tables()
    texts = [written] + [text for _id, text, _expected in rules]
    environments = _compose_environments(str(tmp_path), texts)
    assert environments[0] == {"V%03d" % i: v for i, v in enumerate(values)}
    assert environments[0] == parse_env_text(written)
    differs = {rule_id: (environment, parse_env_text(text))
               for (rule_id, text, _expected), environment in zip(rules, environments[1:])
               if environment != parse_env_text(text)}
    assert differs == {}
    for rule_id, text in refused:
        directory = tmp_path / rule_id
        directory.mkdir()
        assert _compose_config(str(directory), ["OK=1\n" + text]).returncode != 0, rule_id


@pytest.mark.skipif(os.geteuid() != 0, reason="the role's task makes the file owned by root")
def test_the_backup_roles_credentials_file_reads_back_unchanged_by_restic_env_and_compose(tmp_path):
    """roles/backup/tasks/configure.yml's own task, run by ansible-playbook (Ansible's templating,
    the runbook.ops.env_line filter), then read by backup.read_env_file and by compose."""
    with open(os.path.join(_REPO, "roles", "backup", "tasks", "configure.yml"), encoding="utf-8") as handle:
        (task,) = [t for t in yaml.safe_load(handle) if t.get("name") == "Write the repository credentials (0600)"]
    dest = tmp_path / "backup.env"
    values = {"V%02d" % i: v for i, v in enumerate(TRICKY_VALUES)}
    playbook = tmp_path / "write.yml"
    playbook.write_text(yaml.safe_dump([{"hosts": "localhost", "gather_facts": False, "tasks": [task]}]),
                        encoding="utf-8")
    (tmp_path / "vars.json").write_text(json.dumps({"backup_repository_env": values, "backup_env_file": str(dest)}),
                                        encoding="utf-8")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(playbook),
                           "-e", "@%s" % (tmp_path / "vars.json")], cwd=_REPO, capture_output=True, text=True,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1"), timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert oct(dest.stat().st_mode & 0o777) == "0o600"
    assert backup.read_env_file(str(dest)) == values
    assert _compose_environments(str(tmp_path), [dest.read_text(encoding="utf-8")]) == [values]

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""runbook.ops.compose_env_sync and playbooks/env-sync.yml against an isolated Docker engine.

A project shaped like the runbook's (backend, celery-worker, celery-beat read .env through
env_file, bot through ${VAR} interpolation, a one-shot migrate job) lives in tmp_path. The
module runs through `ansible localhost -m ... -vvv` with DOCKER_HOST of the isolated engine
(never the main one), and no secret string may appear in anything it prints.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from images import build_busybox_image

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_BIN = os.path.dirname(sys.executable)
COMPOSE_BIN = os.environ.get("RUNBOOK_OPS_COMPOSE_BIN") or ""
IMAGE = "runbook-ops-envsync:1"
OLD_SECRET = "ai-proxy-OLD-7f3c9e1d2b"
NEW_SECRET = "ai-proxy-NEW-4a8b6c0e5f"
DB_PASSWORD_1 = "db-password-first-91ab"
DB_PASSWORD_2 = "db-password-other-27cd"  # same length: only the content differs

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="isolated engines need root"),
    pytest.mark.skipif(not os.access(COMPOSE_BIN, os.X_OK),
                       reason="RUNBOOK_OPS_COMPOSE_BIN (the Go docker-compose) is not set; "
                              "source scripts/dev-env.sh"),
]

INCIDENT_COMPOSE = """\
services:
  backend:
    image: %(image)s
    env_file: .env
    environment:
      ROLE: backend
  celery-worker:
    image: %(image)s
    env_file: [.env]
    secrets: [db_password]
  celery-beat:
    image: %(image)s
    env_file: .env
    healthcheck:
      test: ["CMD", "true"]
      interval: 1s
      retries: 3
  bot:
    image: %(image)s
    environment:
      AI_PROXY_SECRET: ${AI_PROXY_SECRET}
      BOT_NAME: envsync-bot
  migrate:
    image: %(image)s
    command: ["true"]
    env_file: .env
secrets:
  db_password:
    file: ./db_password.txt
"""


# --- helpers ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(isolated_engine):
    """The session's isolated engine with the busybox image the projects run."""
    build_busybox_image(isolated_engine, IMAGE)
    return isolated_engine


class Project:
    """A compose project in a temp directory on the isolated engine."""

    def __init__(self, engine, directory, compose_yaml, env, files=None):
        self.engine = engine
        self.dir = str(directory)
        self.name = os.path.basename(self.dir)
        os.makedirs(self.dir)
        with open(os.path.join(self.dir, "compose.yaml"), "w") as handle:
            handle.write(compose_yaml % {"image": IMAGE})
        for name, content in (files or {}).items():
            with open(os.path.join(self.dir, name), "w") as handle:
                handle.write(content)
        self.write_env(env)

    def write_env(self, env):
        with open(os.path.join(self.dir, ".env"), "w") as handle:
            handle.write("".join("%s=%s\n" % item for item in sorted(env.items())))

    def compose(self, *args):
        proc = subprocess.run([COMPOSE_BIN] + list(args), cwd=self.dir, capture_output=True,
                              text=True, env=dict(os.environ, **self.engine.env), timeout=300,
                              check=False)
        assert proc.returncode == 0, proc.stderr
        return proc

    def containers(self):
        """{service: (id, process env of the running container)} for running services."""
        api = self.engine.api()
        try:
            result = {}
            for item in api.containers(filters={"label": "com.docker.compose.project=%s" % self.name}):
                service = item["Labels"]["com.docker.compose.service"]
                exec_id = api.exec_create(item["Id"], ["env"])["Id"]
                env = dict(line.split("=", 1) for line in
                           api.exec_start(exec_id).decode().splitlines() if "=" in line)
                result[service] = (item["Id"], env)
            return result
        finally:
            api.close()

    def read_in(self, service, path):
        api = self.engine.api()
        try:
            item = api.containers(filters={"label": [
                "com.docker.compose.project=%s" % self.name,
                "com.docker.compose.service=%s" % service]})[0]
            return api.exec_start(api.exec_create(item["Id"], ["cat", path])["Id"]).decode()
        finally:
            api.close()


@pytest.fixture
def project_factory(engine, tmp_path):
    projects = []

    def factory(short, compose_yaml, env, files=None):
        project = Project(engine, tmp_path / ("envsync%s%d" % (short, os.getpid())), compose_yaml,
                          env, files)
        projects.append(project)
        return project

    yield factory
    for project in projects:
        subprocess.run([COMPOSE_BIN, "down", "--timeout", "0"], cwd=project.dir, capture_output=True,
                       env=dict(os.environ, **engine.env), timeout=120, check=False)


def run_module(engine, args, check=False, diff=False):
    """Run the module ad hoc with -vvv; return (rc, parsed result, full output)."""
    argv = [os.path.join(_BIN, "ansible"), "localhost", "-m", "runbook.ops.compose_env_sync",
            "-a", json.dumps(args), "-vvv"]
    if check:
        argv.append("--check")
    if diff:
        argv.append("--diff")
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", **engine.env)
    proc = subprocess.run(argv, cwd=_REPO, capture_output=True, text=True, env=env, timeout=600,
                          check=False)
    output = proc.stdout + proc.stderr
    match = re.search(r"^localhost \| (?:CHANGED|SUCCESS|FAILED!) => (\{.*?^\})", proc.stdout,
                      re.S | re.M)
    assert match, output
    return proc.returncode, json.loads(match.group(1)), output


def assert_no_secret(*texts):
    for text in texts:
        for secret in (OLD_SECRET, NEW_SECRET, DB_PASSWORD_1, DB_PASSWORD_2):
            assert secret not in text


def _compose_plugin_works():
    proc = subprocess.run(["docker", "compose", "version"], capture_output=True, text=True,
                          check=False)
    return proc.returncode == 0


# --- tests --------------------------------------------------------------------------------


def test_incident_stale_services_are_recreated_and_the_second_run_changes_nothing(
        project_factory, tmp_path):
    if not _compose_plugin_works():
        pytest.skip("`docker compose` is not set up (source scripts/dev-env.sh)")
    project = project_factory("inc", INCIDENT_COMPOSE, {"AI_PROXY_SECRET": OLD_SECRET,
                                                        "DJANGO_DEBUG": "false"},
                              files={"db_password.txt": DB_PASSWORD_1})
    project.compose("up", "-d")
    # The incident: .env changes and only the backend is brought up again.
    project.write_env({"AI_PROXY_SECRET": NEW_SECRET, "DJANGO_DEBUG": "false"})
    project.compose("up", "-d", "--no-deps", "backend")
    before = project.containers()
    assert before["backend"][1]["AI_PROXY_SECRET"] == NEW_SECRET
    assert before["celery-worker"][1]["AI_PROXY_SECRET"] == OLD_SECRET

    state_dir = str(tmp_path / "state")
    args = {"project_src": project.dir, "consistent_keys": ["AI_PROXY_SECRET"],
            "state_dir": state_dir}  # compose_command auto-detected, DOCKER_HOST from the env
    outputs = []
    stale = {"added": [], "removed": [], "changed": ["AI_PROXY_SECRET"], "files": []}

    rc, result, out = run_module(project.engine, args, check=True, diff=True)
    outputs.append(out)
    assert rc == 0, out
    assert result["changed"] is True
    assert result["drifted"] == {"bot": stale, "celery-beat": stale, "celery-worker": stale}
    assert result["recreated"] == ["bot", "celery-beat", "celery-worker"]
    assert result["not_running"] == ["migrate"]
    assert {s: c[0] for s, c in project.containers().items()} == {s: c[0] for s, c in before.items()}
    assert not os.path.exists(result["state_file"])

    rc, result, out = run_module(project.engine, args, diff=True)
    outputs.append(out)
    assert rc == 0, out
    assert result["changed"] is True
    assert result["drifted"] == {"bot": stale, "celery-beat": stale, "celery-worker": stale}
    assert result["recreated"] == ["bot", "celery-beat", "celery-worker"]
    after = project.containers()
    for service in ("bot", "celery-beat", "celery-worker"):
        assert after[service][0] != before[service][0], service
        assert after[service][1]["AI_PROXY_SECRET"] == NEW_SECRET, service
    assert after["backend"][0] == before["backend"][0]
    assert len({fp["AI_PROXY_SECRET"] for fp in result["fingerprints"].values()}) == 1
    assert result["inconsistent"] == {}
    state_text = open(result["state_file"]).read()
    assert oct(os.stat(result["state_file"]).st_mode & 0o777) == "0o600"

    for check in (True, False):
        rc, result, out = run_module(project.engine, args, check=check)
        outputs.append(out)
        assert rc == 0, out
        assert result["changed"] is False and result["recreated"] == [] and result["drifted"] == {}
    assert {s: c[0] for s, c in project.containers().items()} == {s: c[0] for s, c in after.items()}
    assert_no_secret(state_text, *outputs)


HEALTH_COMPOSE = """\
services:
  web:
    image: %(image)s
    env_file: .env
  worker:
    image: %(image)s
    env_file: .env
    healthcheck:
      test: ["CMD", "test", "-e", "/tmp/healthy"]
      interval: 1s
      timeout: 1s
      retries: 2
"""


def test_a_recreated_service_whose_healthcheck_never_passes_fails_the_task(project_factory, tmp_path):
    project = project_factory("hc", HEALTH_COMPOSE, {"AI_PROXY_SECRET": OLD_SECRET})
    project.compose("up", "-d")
    project.write_env({"AI_PROXY_SECRET": NEW_SECRET})
    rc, result, out = run_module(project.engine, {
        "project_src": project.dir, "compose_command": [COMPOSE_BIN], "wait_timeout": 60,
        "docker_host": project.engine.host, "state_dir": str(tmp_path / "state")})
    assert rc != 0
    assert "recreated service did not come back: worker is running (health: unhealthy), " \
           "exit code 0" in result["msg"], result["msg"]
    assert result["failed_services"] == {
        "worker": {"state": "running", "health": "unhealthy", "exit_code": 0}}
    assert result["recreated"] == ["web", "worker"] and result["changed"] is True
    assert project.containers()["web"][1]["AI_PROXY_SECRET"] == NEW_SECRET
    assert_no_secret(out)


SECRETS_COMPOSE = """\
services:
  backend:
    image: %(image)s
    env_file: .env
    secrets:
      - source: db_password
        target: /run/secrets/db_password
  bot:
    image: %(image)s
    env_file: .env
secrets:
  db_password:
    file: ./db_password.txt
"""


def test_a_secrets_file_content_change_recreates_the_services_using_it(project_factory, tmp_path):
    project = project_factory("sec", SECRETS_COMPOSE, {"AI_PROXY_SECRET": OLD_SECRET},
                              files={"db_password.txt": DB_PASSWORD_1})
    project.compose("up", "-d")
    args = {"project_src": project.dir, "compose_command": [COMPOSE_BIN],
            "state_dir": str(tmp_path / "state")}
    rc, result, first = run_module(project.engine, args)
    assert rc == 0 and result["changed"] is False, first  # records the baseline digests
    before = project.containers()

    # Rotate the password the way editors do (a new file renamed over the old one) and keep
    # the modification time: compose's config hash and the mtime rule cannot see it.
    secret = os.path.join(project.dir, "db_password.txt")
    stamp = os.stat(secret).st_mtime
    with open(secret + ".new", "w") as handle:
        handle.write(DB_PASSWORD_2)
    os.replace(secret + ".new", secret)
    os.utime(secret, (stamp, stamp))
    assert project.read_in("backend", "/run/secrets/db_password") == DB_PASSWORD_1

    rc, result, checked = run_module(project.engine, args, check=True, diff=True)
    assert rc == 0 and result["changed"] is True, checked
    assert result["drifted"] == {"backend": {"added": [], "removed": [], "changed": [],
                                             "files": ["secret:db_password"]}}
    rc, result, synced = run_module(project.engine, args)
    assert rc == 0 and result["recreated"] == ["backend"], synced
    assert project.read_in("backend", "/run/secrets/db_password") == DB_PASSWORD_2
    assert project.containers()["bot"][0] == before["bot"][0]
    rc, result, again = run_module(project.engine, args)
    assert rc == 0 and result["changed"] is False, again
    assert_no_secret(first, checked, synced, again)


INCONSISTENT_COMPOSE = """\
services:
  backend:
    image: %(image)s
    env_file: .env
  celery-worker:
    image: %(image)s
    env_file: .env
  bot:
    image: %(image)s
    environment:
      AI_PROXY_SECRET: ${BOT_AI_PROXY_SECRET}
"""


def test_playbook_prints_the_drift_and_fails_a_host_with_inconsistent_keys(project_factory, tmp_path):
    project = project_factory("pb", INCONSISTENT_COMPOSE, {"AI_PROXY_SECRET": OLD_SECRET,
                                                           "BOT_AI_PROXY_SECRET": OLD_SECRET})
    project.compose("up", "-d")
    before = project.containers()
    project.write_env({"AI_PROXY_SECRET": NEW_SECRET, "BOT_AI_PROXY_SECRET": OLD_SECRET})
    extra = {"project_dir": project.dir, "env_sync_consistent_keys": ["AI_PROXY_SECRET"],
             "env_sync_compose_command": [COMPOSE_BIN], "env_sync_state_dir": str(tmp_path / "st")}

    def playbook(extra_vars):
        proc = subprocess.run(
            [os.path.join(_BIN, "ansible-playbook"), "playbooks/env-sync.yml", "-vvv",
             "-e", json.dumps(extra_vars)], cwd=_REPO, capture_output=True, text=True,
            env=dict(os.environ, ANSIBLE_NOCOLOR="1", **project.engine.env), timeout=600,
            check=False)
        return proc.returncode, proc.stdout + proc.stderr

    rc, out = playbook(extra)
    assert rc != 0, out
    assert '"drifted backend: changed [AI_PROXY_SECRET]"' in out
    assert '"drifted celery-worker: changed [AI_PROXY_SECRET]"' in out
    assert '"recreated: nothing"' in out
    assert '"INCONSISTENT AI_PROXY_SECRET differs between bot"' in out
    assert "failed=1" in out
    assert {s: c[0] for s, c in project.containers().items()} == {s: c[0] for s, c in before.items()}

    project.write_env({"AI_PROXY_SECRET": NEW_SECRET, "BOT_AI_PROXY_SECRET": NEW_SECRET})
    rc, fixed = playbook(extra)
    assert rc == 0, fixed
    assert '"recreated: backend, bot, celery-worker"' in fixed
    rc, again = playbook(extra)
    assert rc == 0 and '"recreated: nothing"' in again and "changed=0" in again
    assert_no_secret(out, fixed, again)


def test_a_missing_project_directory_fails_with_a_clear_message(engine, tmp_path):
    rc, result, out = run_module(engine, {"project_src": str(tmp_path / "nope"),
                                          "compose_command": [COMPOSE_BIN]})
    assert rc != 0
    assert result["msg"] == ("project directory %s does not exist; set project_src to the "
                             "directory holding the compose file" % (tmp_path / "nope"))

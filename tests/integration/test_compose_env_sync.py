# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""runbook.ops.compose_env_sync and playbooks/env_sync.yml (runbook.ops.env_sync) against an isolated Docker engine.

A project shaped like the runbook's (backend, celery-worker, celery-beat read .env through
env_file, bot through ${VAR} interpolation, a one-shot migrate job) lives in tmp_path. The
module runs through `ansible localhost -m ... -vvv` with DOCKER_HOST of the isolated engine
(never the main one), and no secret string may appear in anything it prints.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from compose_project import COMPOSE_BIN, ComposeProject
from images import build_busybox_image

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_BIN = os.path.dirname(sys.executable)
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


class Project(ComposeProject):
    """The env-sync project, with ``env`` as its .env file."""

    def __init__(self, engine, directory, compose_yaml, env, files=None):
        super().__init__(engine, directory, compose_yaml, {"image": IMAGE}, files)
        self.write_env(env)

    def write_env(self, env):
        with open(os.path.join(self.dir, ".env"), "w", encoding="utf-8") as handle:
            handle.write("".join("%s=%s\n" % item for item in sorted(env.items())))

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
        # `down` leaves the services of profiles it was not given (gpu-worker): the engine is
        # shared by the session, so every container of the project goes
        client = engine.client()
        try:
            for container in client.containers.list(
                    all=True, filters={"label": "com.docker.compose.project=%s" % project.name}):
                container.remove(force=True)
        finally:
            client.close()


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


def run_playbook(engine, extra_vars, *args):
    """Run playbooks/env_sync.yml with -vvv; return (rc, full output)."""
    proc = subprocess.run(
        [os.path.join(_BIN, "ansible-playbook"), "playbooks/env_sync.yml", "-vvv",
         "-e", json.dumps(extra_vars)] + list(args), cwd=_REPO, capture_output=True, text=True,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", **engine.env), timeout=600, check=False)
    return proc.returncode, proc.stdout + proc.stderr


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
        return run_playbook(project.engine, extra_vars, "-l", "localhost")

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


def test_the_playbook_names_its_own_variables_and_says_it_once(engine, tmp_path):
    missing = str(tmp_path / "nope")
    proc = subprocess.run(
        [os.path.join(_BIN, "ansible-playbook"), "playbooks/env-sync.yml", "-l", "localhost",
         "-e", json.dumps({"project_dir": missing, "env_sync_compose_command": [COMPOSE_BIN],
                           "env_sync_state_dir": str(tmp_path / "state")})],
        cwd=_REPO, capture_output=True, text=True, timeout=600, check=False,
        env=dict(os.environ, ANSIBLE_NOCOLOR="1", **engine.env))
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "failed=1" in out, out
    reason = ("project directory %s does not exist; set project_dir to the directory holding "
              "the compose file" % missing)
    # one task reports it (ansible-core shows a failed task's message in its [ERROR] line and
    # in its fatal result; before, the module's failure, the summary and the last task did)
    failing_tasks = [block for block in out.split("\nTASK [")[1:] if reason in block]
    assert len(failing_tasks) == 1 and failing_tasks[0].startswith("Fail hosts"), out
    assert "project_src" not in out, out
    assert "FAILED (the reason is the last line of this host)" in out, out


# --- `$` values, profiles, host selection, keyed fingerprints ---------------------------------

BCRYPT_OLD = "$2y$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"
BCRYPT_NEW = "$2y$10$Qc8Sv2oW7pLx0nB4eT6uUOxJ3mY9rK1hZ5aD8fG2jH4kL6mN0pQrS"
HTPASSWD = "admin:$apr1$Vh3f0qS2$3mZ1rJ8p0eQ9Xc2LkYwT1/"
GENERATED = "pa$$w0rd-$HOME-gen"

DOLLAR_COMPOSE = """\
services:
  web:
    image: %(image)s
    env_file: .env
    environment:
      ADMIN_HTPASSWD: 'admin:$$apr1$$Vh3f0qS2$$3mZ1rJ8p0eQ9Xc2LkYwT1/'
      HASH_FROM_ENV: ${ADMIN_BCRYPT}
  worker:
    image: %(image)s
    environment:
      ADMIN_BCRYPT: ${ADMIN_BCRYPT}
      PIN: ${PIN}
  gpu-worker:
    image: %(image)s
    profiles: [gpu]
    environment:
      ADMIN_BCRYPT: ${ADMIN_BCRYPT}
"""


def _dollar_env(bcrypt, pin="1234"):
    return {"ADMIN_BCRYPT": "'%s'" % bcrypt, "GENERATED_PASSWORD": "'%s'" % GENERATED, "PIN": pin}


def _ids(project):
    return {service: found[0] for service, found in project.containers().items()}


def test_values_with_dollars_are_not_drift_and_a_changed_hash_recreates_once(project_factory, tmp_path):
    # Before the fix every run reported web drifted, recreated it and failed: "drift remains".
    project = project_factory("dol", DOLLAR_COMPOSE, _dollar_env(BCRYPT_OLD))
    project.compose("up", "-d")
    held = project.containers()["web"][1]
    assert held["HASH_FROM_ENV"] == BCRYPT_OLD and held["ADMIN_HTPASSWD"] == HTPASSWD
    assert held["GENERATED_PASSWORD"] == GENERATED
    before = _ids(project)
    args = {"project_src": project.dir, "compose_command": [COMPOSE_BIN],
            "state_dir": str(tmp_path / "state")}
    outputs = []
    for check in (True, False, False):
        rc, result, out = run_module(project.engine, args, check=check)
        outputs.append(out)
        assert rc == 0, out
        assert result["changed"] is False and result["drifted"] == {} and result["recreated"] == []
        assert result["fingerprints"] == {}
    assert _ids(project) == before

    project.write_env(_dollar_env(BCRYPT_NEW))
    rc, result, out = run_module(project.engine, args)
    outputs.append(out)
    assert rc == 0, out
    assert result["drifted"] == {
        "web": {"added": [], "removed": [], "changed": ["ADMIN_BCRYPT", "HASH_FROM_ENV"], "files": []},
        "worker": {"added": [], "removed": [], "changed": ["ADMIN_BCRYPT"], "files": []}}
    assert result["recreated"] == ["web", "worker"]
    assert project.containers()["web"][1]["HASH_FROM_ENV"] == BCRYPT_NEW
    rc, result, out = run_module(project.engine, args)
    outputs.append(out)
    assert rc == 0 and result["changed"] is False and result["drifted"] == {}, out
    for text in outputs:
        for value in (BCRYPT_OLD, BCRYPT_NEW, HTPASSWD, GENERATED, BCRYPT_NEW.replace("$", "$$")):
            assert value not in text


def test_services_of_a_profile_are_compared_only_with_their_profile(project_factory, tmp_path):
    project = project_factory("prof", DOLLAR_COMPOSE, _dollar_env(BCRYPT_OLD))
    project.compose("--profile", "gpu", "up", "-d")
    project.write_env(_dollar_env(BCRYPT_NEW))
    before = _ids(project)
    state_dir = str(tmp_path / "state")

    # without the profile: gpu-worker is named in a warning, never compared or recreated
    rc, result, out = run_module(project.engine, {
        "project_src": project.dir, "compose_command": [COMPOSE_BIN], "state_dir": state_dir,
        "services": ["worker"]})
    assert rc == 0 and result["recreated"] == ["worker"], out
    assert "[WARNING]: running service gpu-worker of compose project %s not in the configuration " \
           "compose resolves (a profile not listed in profiles, or removed from the compose " \
           "file): not compared" % project.name in out
    assert _ids(project)["gpu-worker"] == before["gpu-worker"]

    # with it, through the playbook: check mode previews, the run recreates exactly gpu-worker
    extra = {"project_dir": project.dir, "env_sync_profiles": ["gpu"],
             "env_sync_services": ["gpu-worker"], "env_sync_compose_command": [COMPOSE_BIN],
             "env_sync_state_dir": state_dir, "env_sync_hosts": "localhost"}
    rc, out = run_playbook(project.engine, extra, "--check")
    assert rc == 0 and '"would recreate: gpu-worker"' in out, out
    assert _ids(project)["gpu-worker"] == before["gpu-worker"]
    rc, out = run_playbook(project.engine, extra)
    assert rc == 0 and '"recreated: gpu-worker"' in out, out
    after = _ids(project)
    assert after["gpu-worker"] != before["gpu-worker"] and after["web"] == before["web"]
    assert project.containers()["gpu-worker"][1]["ADMIN_BCRYPT"] == BCRYPT_NEW
    rc, out = run_playbook(project.engine, extra)
    assert rc == 0 and '"recreated: nothing"' in out and "changed=0" in out, out
    assert _ids(project) == after


def test_playbook_refuses_to_run_without_a_host_selection(project_factory, tmp_path):
    project = project_factory("sel", DOLLAR_COMPOSE, _dollar_env(BCRYPT_OLD))
    project.compose("up", "-d")
    project.write_env(_dollar_env(BCRYPT_NEW))
    before = _ids(project)
    rc, out = run_playbook(project.engine, {"project_dir": project.dir,
                                            "env_sync_compose_command": [COMPOSE_BIN],
                                            "env_sync_state_dir": str(tmp_path / "state")})
    assert rc != 0
    messages = re.findall(r'"msg": "([^"]*)"', out)
    assert messages == ["Refusing to run on every host of the inventory: choose them with --limit "
                        "HOST or -e env_sync_hosts=GROUP (on the command line; in group_vars it is "
                        "not seen by the play's hosts line), e.g. ansible-playbook "
                        "runbook.ops.env_sync -l web1 -e project_dir=/opt/app"], out
    assert "compose_env_sync" not in out.split("Refusing", 1)[1] and "drifted" not in out
    assert _ids(project) == before
    assert not os.path.exists(str(tmp_path / "state"))


def test_fingerprints_are_keyed_per_host_and_only_for_drifted_keys(project_factory, tmp_path):
    project = project_factory("fp", DOLLAR_COMPOSE, _dollar_env(BCRYPT_OLD, pin="1234"))
    project.compose("up", "-d")
    hosts = [str(tmp_path / name) for name in ("host-a", "host-b", "host-c")]
    args = {"project_src": project.dir, "compose_command": [COMPOSE_BIN]}
    outputs = []

    # nothing drifted: no fingerprint at all; the first real run makes the host's key, 0600
    for state_dir in hosts[:2]:
        rc, result, out = run_module(project.engine, dict(args, state_dir=state_dir))
        outputs.append(out)
        assert rc == 0 and result["changed"] is False and result["fingerprints"] == {}, out
        key_file = os.path.join(state_dir, "fingerprint.key")
        assert oct(os.stat(key_file).st_mode & 0o777) == "0o600"
        assert open(key_file).read().strip() not in out

    # the PIN changes: only PIN is fingerprinted, the same in both services of one host,
    # different on another host, and never the plain sha256 prefix a guess would find
    project.write_env(_dollar_env(BCRYPT_OLD, pin="9876"))
    shown = []
    for state_dir in hosts[:2]:
        rc, result, out = run_module(project.engine, dict(args, state_dir=state_dir), check=True,
                                     diff=True)
        outputs.append(out)
        assert rc == 0 and result["recreated"] == ["web", "worker"], out
        assert {name: list(keys) for name, keys in result["fingerprints"].items()} == {
            "web": ["PIN"], "worker": ["PIN"]}
        assert result["fingerprints"]["web"] == result["fingerprints"]["worker"]
        shown.append(result["fingerprints"]["web"]["PIN"])
    assert shown[0] != shown[1]
    assert hashlib.sha256(b"1234").hexdigest()[:12] not in shown

    # check mode on a host without a key: a throw-away key and a warning, no key file
    rc, result, out = run_module(project.engine, dict(args, state_dir=hosts[2]), check=True)
    outputs.append(out)
    assert rc == 0 and "[WARNING]: the fingerprint key %s/fingerprint.key does not exist yet " \
        "(check mode creates nothing); this run used a throw-away key" % hosts[2] in out, out
    assert not os.path.exists(os.path.join(hosts[2], "fingerprint.key"))
    for text in outputs:
        for pin in (b"1234", b"9876"):
            assert hashlib.sha256(pin).hexdigest()[:12] not in text
        assert_no_secret(text)
        for value in (BCRYPT_OLD, GENERATED):
            assert value not in text
    state = json.load(open(os.path.join(hosts[0], "compose-env-sync", project.name + ".json")))
    assert state["version"] == 2 and len(state["key_id"]) == 16


# --- values as compose puts them into containers ---------------------------------------------
#
# An independent model of how each form of a compose file and its env files carries a value
# (compose-go's dotenv and interpolation rules, docker's --env-file format for `format: raw`):
# every generated value is written in every form that can carry it, one real `up` per example,
# and the container must hold exactly the value, the module must see no drift, and one value
# changed must be exactly one key drifted. RUNBOOK_OPS_ENV_EXAMPLES (default 8) examples, each
# with 4-8 values in up to 15 forms, one `up` each (10 examples took 117 s on 2 busy cores).

ENV_IMAGE = "runbook-ops-envsync-env:1"
#: The image's own ENV: values compose never sets (or overrides) must never count as drift.
IMAGE_ENV = {"IMG_HASH": "$2y$05$imageOwnHashValue", "IMG_QUOTES": "it's \"q\" \\ #x",
             "IMG_OVERRIDDEN": "from-image"}
VALUE_CHARS = ("abcXYZ0189" + "$" * 6 + "'\"#\\ @%!&*()-_=+:;,.<>/?^~|[]`")
YAML_PLAIN = re.compile(r"[A-Za-z][A-Za-z0-9_@%./+=$!^~-]*")
UNSET = "RBO_SURELY_UNSET_VARIABLE"


def _dotenv_single(value):
    return "'%s'" % value if "'" not in value and not value.endswith("\\") else None


def _dotenv_double(value):
    return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")


def _dotenv_unquoted(value):
    if value != value.strip() or value[:1] in ("'", '"') or " #" in value:
        return None
    return value.replace("$", "$$")


def _yaml_single(text):
    return "'%s'" % text.replace("'", "''")


def _yaml_double(text):
    return '"%s"' % text.replace("\\", "\\\\").replace('"', '\\"')


def _yaml_plain(text, value):
    words = ("true", "false", "null", "yes", "no", "on", "off", "y", "n")
    return text if YAML_PLAIN.fullmatch(value) and value.lower() not in words else None


def _dollars(value):
    return value.replace("$", "$$")


# form -> (service, function(value, key) -> (compose text, dotenv line, env_file line, raw line))
def _forms(raw_supported):
    """Each form: the service holding the key and how to write a value into the files.
    Returns {form: (service, writer)}; a writer returns a dict of file -> line, or None when
    the form cannot carry the value."""
    forms = {
        "map_double": ("svc-map", lambda v, k: {"map": "%s: %s" % (k, _yaml_double(_dollars(v)))}),
        "map_single": ("svc-map", lambda v, k: {"map": "%s: %s" % (k, _yaml_single(_dollars(v)))}),
        "map_plain": ("svc-map", lambda v, k: _yaml_plain(_dollars(v), v) and {
            "map": "%s: %s" % (k, _dollars(v))}),
        "list_double": ("svc-list", lambda v, k: {"list": "- %s" % _yaml_double("%s=%s" % (k, _dollars(v)))}),
        "list_single": ("svc-list", lambda v, k: {"list": "- %s" % _yaml_single("%s=%s" % (k, _dollars(v)))}),
        "list_plain": ("svc-list", lambda v, k: _yaml_plain(_dollars(v), v) and {
            "list": "- %s=%s" % (k, _dollars(v))}),
        "envfile_single": ("svc-map", lambda v, k: _dotenv_single(v) and {
            "app.env": "%s=%s # comment after a quoted value" % (k, _dotenv_single(v))}),
        "envfile_double": ("svc-map", lambda v, k: {"app.env": "%s=%s" % (k, _dotenv_double(v))}),
        # (an empty unquoted value takes the comment after it as its value: no comment there)
        "envfile_unquoted": ("svc-map", lambda v, k: _dotenv_unquoted(v) is not None and {
            "app.env": "%s=%s%s" % (k, _dotenv_unquoted(v), " # inline comment" if v else "")}),
        # interpolation: each key its own variable in .env, so one change is one key
        "interp": ("svc-map", lambda v, k: {".env": "V_%s=%s" % (k, _dotenv_double(v)),
                                            "map": "%s: ${V_%s}" % (k, k)}),
        "interp_default": ("svc-list", lambda v, k: {
            "list": "- %s" % _yaml_single("%s=${%s:-%s}" % (k, UNSET, _dollars(v)))}),
        "interp_dash_default": ("svc-map", lambda v, k: {
            "map": "%s: %s" % (k, _yaml_single("${%s-%s}" % (UNSET, _dollars(v))))}),
        "interp_required": ("svc-map", lambda v, k: v != "" and {
            ".env": "V_%s=%s" % (k, _dotenv_single(v) or _dotenv_double(v)),
            "map": "%s: ${V_%s:?set V_%s}" % (k, k, k)}),
        "interp_nested": ("svc-list", lambda v, k: {
            ".env": "V_%s=%s" % (k, _dotenv_double(v)),
            "list": "- %s" % _yaml_single("%s=${%s:-${V_%s}}" % (k, UNSET, k))}),
    }
    if raw_supported:
        forms["raw"] = ("svc-map", lambda v, k: {"raw.env": "%s=%s" % (k, v)})
    return forms


# Fixed lines: comments, `\n` in double quotes, empty values, keys without `=`, image ENV.
FIXED_FILES = {
    ".env": ["# interpolation source", "EMPTY_SOURCE="],
    "app.env": ["# a comment line", "   # an indented comment", "FIX_NEWLINE=\"line1\\nline2\"",
                "FIX_EMPTY=", "FIX_EMPTY_QUOTED=''", "FIX_HASH_INSIDE=a#b",
                "FIX_INLINE=value # comment", "RBO_NOT_IN_ANY_ENVIRONMENT"],
    "raw.env": ["# raw: docker run --env-file rules", "FIX_RAW_TRAILING=keeps 'q' \"dq\" $X  "],
    "map": ["FIX_MAP_BARE:", "FIX_MAP_EMPTY: ''", "FIX_MAP_FROM_EMPTY: ${EMPTY_SOURCE-unused}",
            "IMG_OVERRIDDEN: from-compose", "FIX_MAP_NEWLINE: \"a\\nb\""],
    "list": ["- FIX_LIST_BARE", "- FIX_LIST_EMPTY="],
}
FIXED_HELD = {
    "svc-map": {"FIX_NEWLINE": "line1\nline2", "FIX_EMPTY": "", "FIX_EMPTY_QUOTED": "",
                "FIX_HASH_INSIDE": "a#b", "FIX_INLINE": "value", "FIX_MAP_FROM_EMPTY": "",
                "FIX_MAP_BARE": None, "FIX_MAP_EMPTY": "", "IMG_OVERRIDDEN": "from-compose",
                "FIX_MAP_NEWLINE": "a\nb", "IMG_HASH": IMAGE_ENV["IMG_HASH"],
                "IMG_QUOTES": IMAGE_ENV["IMG_QUOTES"]},
    "svc-list": {"FIX_LIST_BARE": None, "FIX_LIST_EMPTY": "", "IMG_OVERRIDDEN": "from-image",
                 "IMG_HASH": IMAGE_ENV["IMG_HASH"]},
}
FIXED_RAW_HELD = {"FIX_RAW_TRAILING": "keeps 'q' \"dq\" $X  "}


def render_project(directory, spec, forms, raw_supported):
    """Write compose.yaml, .env, app.env (and raw.env) for ``spec`` ({key: (form, value)})."""
    lines = {name: list(fixed) for name, fixed in FIXED_FILES.items()}
    for key, (form, value) in sorted(spec.items()):
        for name, line in forms[form][1](value, key).items():
            lines[name].append(line)
    env_files = "      - app.env\n"
    if raw_supported:
        env_files += "      - path: raw.env\n        format: raw\n"
    compose = (
        "services:\n"
        "  svc-map:\n    image: %s\n    env_file:\n%s    environment:\n%s"
        "  svc-list:\n    image: %s\n    environment:\n%s" % (
            ENV_IMAGE, env_files, "".join("      %s\n" % line for line in lines["map"]),
            ENV_IMAGE, "".join("      %s\n" % line for line in lines["list"])))
    files = {"compose.yaml": compose}
    for name in (".env", "app.env") + (("raw.env",) if raw_supported else ()):
        files[name] = "".join(line + "\n" for line in lines[name])
    for name, text in files.items():
        with open(os.path.join(directory, name), "w") as handle:
            handle.write(text)


def expected_environment(spec, forms, raw_supported):
    """The model: {service: {key: value}} compose must put into the containers."""
    held = {name: dict(values) for name, values in FIXED_HELD.items()}
    if raw_supported:
        held["svc-map"].update(FIXED_RAW_HELD)
    for key, (form, value) in spec.items():
        held[forms[form][0]][key] = value
    return held


def _compose_version():
    out = subprocess.run([COMPOSE_BIN, "version", "--short"], capture_output=True, text=True,
                         check=False).stdout.strip().lstrip("v")
    return tuple(int(part) for part in re.findall(r"\d+", out)[:2])


def _container_envs(engine, project):
    api = engine.api()
    try:
        result = {}
        for item in api.containers(filters={"label": "com.docker.compose.project=%s" % project}):
            info = api.inspect_container(item["Id"])
            env = {}
            for entry in info["Config"]["Env"]:
                key, sep, value = entry.partition("=")
                env[key] = value if sep else None
            result[item["Labels"]["com.docker.compose.service"]] = env
        return result
    finally:
        api.close()


@pytest.fixture(scope="module")
def env_engine(engine):
    build_busybox_image(engine, ENV_IMAGE, env=IMAGE_ENV)
    return engine


@pytest.fixture(scope="module")
def value_project(env_engine, tmp_path_factory):
    """One project directory reused by every generated example (each `up` recreates)."""
    directory = str(tmp_path_factory.mktemp("values") / ("envsyncval%d" % os.getpid()))
    os.makedirs(directory)
    yield directory
    subprocess.run([COMPOSE_BIN, "down", "--timeout", "0"], cwd=directory, capture_output=True,
                   env=dict(os.environ, **env_engine.env), timeout=120, check=False)


def _check(engine, directory, state_dir):
    from ansible_collections.runbook.ops.plugins.module_utils._ops.compose_env import (
        sync_compose_env)

    return sync_compose_env(directory, compose_command=[COMPOSE_BIN], docker_host=engine.host,
                            state_dir=state_dir, check_mode=True)


VALUES = st.text(st.sampled_from(VALUE_CHARS), max_size=16)


@settings(max_examples=int(os.environ.get("RUNBOOK_OPS_ENV_EXAMPLES", "8")), database=None)
@given(data=st.data(), values=st.lists(VALUES, min_size=4, max_size=8))
def test_every_form_holds_generated_values_as_compose_puts_them_into_containers(
        env_engine, value_project, tmp_path_factory, data, values):
    raw_supported = _compose_version() >= (2, 30)
    forms = _forms(raw_supported)
    spec = {}
    for index, value in enumerate(values):
        for form, (_service, writer) in sorted(forms.items()):
            if writer(value, "K") not in (None, False):
                spec["G%d_%s" % (index, form.upper())] = (form, value)
    render_project(value_project, spec, forms, raw_supported)
    env = dict(os.environ, **env_engine.env)
    up = subprocess.run([COMPOSE_BIN, "up", "-d"], cwd=value_project, env=env,
                        capture_output=True, text=True, timeout=300, check=False)
    assert up.returncode == 0, up.stderr

    # the model and the containers agree, key by key (what compose really did)
    held = _container_envs(env_engine, os.path.basename(value_project))
    for service, expected in expected_environment(spec, forms, raw_supported).items():
        assert {k: held[service].get(k, "(absent)") for k in expected} == expected, service
    assert "RBO_NOT_IN_ANY_ENVIRONMENT" not in held["svc-map"]

    state_dir = str(tmp_path_factory.mktemp("state"))
    result = _check(env_engine, value_project, state_dir)
    assert result["drifted"] == {} and result["recreated"] == [] and result["fingerprints"] == {}

    # one value changed (still in the same form): exactly that key of that service drifts
    key = data.draw(st.sampled_from(sorted(spec)), label="changed key")
    form, value = spec[key]
    spec[key] = (form, value + "$x")
    render_project(value_project, spec, forms, raw_supported)
    result = _check(env_engine, value_project, state_dir)
    assert result["drifted"] == {forms[form][0]: {"added": [], "removed": [], "changed": [key],
                                                  "files": []}}
    assert list(result["fingerprints"][forms[form][0]]) == [key]


# --- review of #15/#16 item 6 (branch review-compose): what must not be recreated ------------
#
# Each test below failed on d41fe8a; they state what an operator relies on.

REVIEW_SECRET_1 = "review-secret-one-5c1e"
REVIEW_SECRET_2 = "review-secret-two-9d7a"
REVIEW_COMPOSE = """\
services:
  worker:
    image: %(image)s
    environment:
      SECRET: ${SECRET}
"""


def _running(project, service):
    """[(id, mounts destinations)] of the running containers of one service."""
    api = project.engine.api()
    try:
        found = api.containers(filters={"label": [
            "com.docker.compose.project=%s" % project.name,
            "com.docker.compose.service=%s" % service]})
        return sorted((item["Id"], sorted(m["Destination"] for m in item["Mounts"]))
                      for item in found)
    finally:
        api.close()


def test_review_host_selection_in_group_vars_does_not_bypass_the_guard(tmp_path):
    # env_sync_hosts left in group_vars/prod.yml: the play's `hosts:` cannot see it (it is
    # templated without a host) and targets every host, while the guard, evaluated on the
    # first host, finds it and lets the play through: db1 (not in prod) is synced too.
    inventory = tmp_path / "inventory"
    (inventory / "group_vars").mkdir(parents=True)
    local = "{ansible_connection: local, ansible_python_interpreter: %s}" % sys.executable
    (inventory / "hosts.yml").write_text(
        "all:\n  hosts:\n    web1: %s\n    web2: %s\n    db1: %s\n"
        "  children:\n    prod:\n      hosts:\n        web1:\n        web2:\n" % ((local,) * 3))
    (inventory / "group_vars" / "prod.yml").write_text("env_sync_hosts: prod\n")
    missing = str(tmp_path / "no-such-project")
    proc = subprocess.run(
        [os.path.join(_BIN, "ansible-playbook"), "-i", str(inventory), "playbooks/env_sync.yml",
         "-e", json.dumps({"project_dir": missing, "env_sync_state_dir": str(tmp_path / "st")})],
        cwd=_REPO, capture_output=True, text=True, env=dict(os.environ, ANSIBLE_NOCOLOR="1"),
        timeout=600, check=False)
    out = proc.stdout + proc.stderr
    reached = set(re.findall(r"(?:fatal|ok|changed): \[(\w+)\].*project directory %s does not "
                             r"exist" % re.escape(missing), out))
    assert "db1" not in reached, out
    assert proc.returncode != 0 and "Refusing to run on every host" in out, out


def test_review_a_same_named_project_in_another_directory_is_left_alone(engine, tmp_path):
    # /srv/app and /opt/app both make compose project "app". Syncing /opt/app (never started
    # here) must not recreate /srv/app's container with /opt/app's configuration, which drops
    # its volume and gives it the other application's environment.
    name = "envsyncsame%d" % os.getpid()
    running = Project(engine, tmp_path / "srv" / name, REVIEW_COMPOSE.replace(
        "    environment:", "    volumes: [data:/data]\n    environment:") + "volumes:\n  data:\n",
        {"SECRET": REVIEW_SECRET_1})
    other = Project(engine, tmp_path / "opt" / name, REVIEW_COMPOSE, {"SECRET": REVIEW_SECRET_2})
    try:
        running.compose("up", "-d")
        before = _running(running, "worker")
        assert before[0][1] == ["/data"]
        rc, result, out = run_module(engine, {"project_src": other.dir,
                                              "compose_command": [COMPOSE_BIN],
                                              "state_dir": str(tmp_path / "state")})
        assert _running(running, "worker") == before, out
        assert result.get("recreated", []) == [], out
    finally:
        for project in (running, other):
            subprocess.run([COMPOSE_BIN, "down", "--timeout", "0", "-v"], cwd=project.dir,
                           capture_output=True, env=dict(os.environ, **engine.env), timeout=120,
                           check=False)


def test_review_a_run_without_the_override_file_does_not_drop_it(project_factory, tmp_path):
    # Started with `-f compose.yaml -f compose.prod.yml`; env-sync run without env_sync_files
    # sees the override's keys as "removed" drift and recreates the db from compose.yaml
    # alone: without its data volume (the database then starts empty in the container layer).
    override = ("services:\n  worker:\n    environment:\n      APP_ENV: production\n"
                "    volumes: [dbdata:/var/lib/db]\nvolumes:\n  dbdata:\n")
    project = project_factory("ovr", REVIEW_COMPOSE, {"SECRET": REVIEW_SECRET_1},
                              files={"compose.prod.yml": override})
    project.compose("-f", "compose.yaml", "-f", "compose.prod.yml", "up", "-d")
    before = _running(project, "worker")
    assert before[0][1] == ["/var/lib/db"]
    try:
        rc, result, out = run_module(project.engine, {"project_src": project.dir,
                                                      "compose_command": [COMPOSE_BIN],
                                                      "state_dir": str(tmp_path / "state")})
        assert _running(project, "worker") == before, out
    finally:
        project.compose("-f", "compose.yaml", "-f", "compose.prod.yml", "down", "-t", "0", "-v")


def test_review_a_scaled_service_keeps_its_replicas(project_factory, tmp_path):
    # `up -d --scale worker=3` (celery workers), then a .env change: the sync must give all
    # three the new value, not scale the service down to the file's single replica.
    project = project_factory("scl", REVIEW_COMPOSE, {"SECRET": REVIEW_SECRET_1})
    project.compose("up", "-d", "--scale", "worker=3")
    assert len(_running(project, "worker")) == 3
    project.write_env({"SECRET": REVIEW_SECRET_2})
    rc, result, out = run_module(project.engine, {"project_src": project.dir,
                                                  "compose_command": [COMPOSE_BIN],
                                                  "state_dir": str(tmp_path / "state")})
    assert rc == 0 and result["recreated"] == ["worker"], out
    assert len(_running(project, "worker")) == 3, out


def test_review_an_unescaped_dollar_in_the_compose_file_does_not_print_the_value(
        project_factory, tmp_path):
    # A generated password pasted into compose.yaml with `${` in it: compose refuses it and
    # quotes the whole value; the module's error (and so the play's output) must not.
    secret = "Xk9-pa${ss-review-TOPSECRET"
    project = project_factory("lk", "services:\n  web:\n    image: %(image)s\n    environment:\n"
                              "      DB_PASSWORD: \"" + secret + "\"\n", {"A": "b"})
    rc, result, out = run_module(project.engine, {"project_src": project.dir,
                                                  "compose_command": [COMPOSE_BIN],
                                                  "state_dir": str(tmp_path / "state")})
    assert rc != 0 and "invalid interpolation format" in result["msg"], out
    assert "TOPSECRET" not in out


def test_review_a_replaced_key_does_not_silently_lose_a_changed_secrets_file(
        project_factory, tmp_path):
    # The key file is replaced (deleted by hand as the short-key message says, or the state
    # directory restored without it): the recorded keyed digests are dropped and a file is
    # judged by mtime alone. A secrets file copied in with its old mtime (cp -p, rsync -a,
    # tar) is then never reported, and the state is rewritten so it never will be; at least
    # a warning must say that this run could not compare the files.
    project = project_factory("key", INCIDENT_COMPOSE.split("  celery-beat:", maxsplit=1)[0].replace(
        "  backend:", "  unused:") + "secrets:\n  db_password:\n    file: ./db_password.txt\n",
        {"AI_PROXY_SECRET": OLD_SECRET}, files={"db_password.txt": DB_PASSWORD_1})
    secret = os.path.join(project.dir, "db_password.txt")
    os.utime(secret, (946684800, 946684800))  # 2000-01-01, before the container
    project.compose("up", "-d")
    args = {"project_src": project.dir, "compose_command": [COMPOSE_BIN],
            "state_dir": str(tmp_path / "state")}
    rc, result, out = run_module(project.engine, args)
    assert rc == 0 and result["drifted"] == {}, out
    with open(secret, "w") as handle:
        handle.write(DB_PASSWORD_2)
    os.utime(secret, (946684800, 946684800))
    os.unlink(os.path.join(args["state_dir"], "fingerprint.key"))
    rc, result, out = run_module(project.engine, args)  # makes a new key, as base would
    assert rc == 0, out
    warnings = "".join(re.findall(r"\[WARNING\].*", out))
    assert "celery-worker" in result["drifted"] or "key" in warnings, out


# --- what a recreate keeps: the files, the replicas and the values it was started with -------


def test_env_files_the_containers_were_started_with_are_used_and_others_refused(
        project_factory, tmp_path):
    # Started with `--env-file prod.env`; the directory's .env holds other (development) values.
    # A run without env_files used .env: every value "changed", the service was recreated with
    # the development secret. Now the label's env file is used, and a different one is refused.
    project = project_factory("envf", REVIEW_COMPOSE, {"SECRET": REVIEW_SECRET_1},
                              files={"prod.env": "SECRET=%s\n" % REVIEW_SECRET_2})
    project.compose("--env-file", "prod.env", "up", "-d")
    before = _ids(project)
    args = {"project_src": project.dir, "compose_command": [COMPOSE_BIN],
            "state_dir": str(tmp_path / "state")}
    rc, result, out = run_module(project.engine, args)
    assert rc == 0 and result["drifted"] == {} and result["recreated"] == [], out
    rc, result, refused = run_module(project.engine, dict(args, env_files=[".env"]))
    assert rc != 0 and result["msg"] == (
        "env_files (.env) are not the env files the running containers of worker in compose "
        "project %s were started with (prod.env); recreating them from other files changes more "
        "than their environment; set env_files to those, or leave it unset to use them (nothing "
        "was recreated)" % project.name), refused
    assert _ids(project) == before
    assert project.containers()["worker"][1]["SECRET"] == REVIEW_SECRET_2
    for text in (out, refused):
        assert REVIEW_SECRET_1 not in text and REVIEW_SECRET_2 not in text


def test_a_scaled_service_with_a_stopped_replica_is_refused_then_kept_at_its_size(
        project_factory, tmp_path):
    # deploy.replicas 2 in the file, scaled to 3 by hand, one replica stopped: compose would
    # remove one container (2.20.1: the stopped one, 2.40.3: a running one) to reach a count;
    # the run refuses instead. Started again, the three are recreated and stay three.
    project = project_factory("rep", REVIEW_COMPOSE.replace(
        "    environment:", "    deploy:\n      replicas: 2\n    environment:"),
        {"SECRET": REVIEW_SECRET_1})
    project.compose("up", "-d", "--scale", "worker=3")
    stopped = "%s-worker-2" % project.name
    project.engine.docker_cli("stop", "-t", "0", stopped)
    project.write_env({"SECRET": REVIEW_SECRET_2})
    everything = _all_ids(project)
    args = {"project_src": project.dir, "compose_command": [COMPOSE_BIN],
            "state_dir": str(tmp_path / "state")}
    rc, result, out = run_module(project.engine, args)
    assert rc != 0 and result["msg"].startswith(
        "cannot recreate worker without removing or restarting a stopped container (compose "
        "keeps the running count): %s is exited (exit code " % stopped), out
    assert result["drifted"]["worker"]["changed"] == ["SECRET"] and result["changed"] is False
    assert _all_ids(project) == everything

    project.engine.docker_cli("start", stopped)
    rc, result, out = run_module(project.engine, args)
    assert rc == 0 and result["recreated"] == ["worker"], out
    assert "[WARNING]: worker runs 3 containers, its compose file asks for 2: the recreate " \
           "keeps 3 (--scale worker=3)" in out
    held = [i for i, _mounts in _running(project, "worker")]
    assert len(held) == 3 and not set(held) & set(everything)
    assert _secrets_held(project, held) == [REVIEW_SECRET_2] * 3


def _all_ids(project):
    api = project.engine.api()
    try:
        return sorted(c["Id"] for c in api.containers(all=True))
    finally:
        api.close()


def _secrets_held(project, ids):
    """SECRET as the process of each container sees it."""
    api = project.engine.api()
    try:
        return [dict(line.split("=", 1) for line in api.exec_start(api.exec_create(
            cid, ["env"])["Id"]).decode().splitlines() if "=" in line).get("SECRET")
            for cid in ids]
    finally:
        api.close()


NON_ESCAPING = """#!%s
# An early Compose v2 (docker/compose#8518): `config` prints `$` once, as containers hold it.
import subprocess, sys
proc = subprocess.run([%r] + sys.argv[1:], capture_output=True, text=True)
out = proc.stdout.replace("$$", "$") if "config" in sys.argv else proc.stdout
sys.stdout.write(out)
sys.stderr.write(proc.stderr)
sys.exit(proc.returncode)
"""


def test_a_compose_that_prints_dollars_once_is_compared_as_it_prints(project_factory, tmp_path):
    # A value held as `x$$y` (only even runs of `$`): halving the output of a compose that does
    # not escape gave `x$y`, so every run recreated the service and failed with "drift remains".
    project = project_factory("noesc", "services:\n  web:\n    image: %(image)s\n"
                              "    environment:\n      PAIR: ${PAIR}\n", {"PAIR": "'x$$y'"})
    project.compose("up", "-d")
    assert project.containers()["web"][1]["PAIR"] == "x$$y"
    wrapper = tmp_path / "compose-without-escaping"
    wrapper.write_text(NON_ESCAPING % (sys.executable, COMPOSE_BIN))
    wrapper.chmod(0o755)
    before = _ids(project)
    args = {"project_src": project.dir, "compose_command": [str(wrapper)],
            "state_dir": str(tmp_path / "state")}
    rc, result, out = run_module(project.engine, args)
    assert rc == 0 and result["drifted"] == {} and result["recreated"] == [], out
    assert _ids(project) == before
    project.write_env({"PAIR": "'x$$z'"})
    rc, result, out = run_module(project.engine, args)
    assert rc == 0 and result["recreated"] == ["web"], out
    assert project.containers()["web"][1]["PAIR"] == "x$$z"

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""playbooks/service-down.yml (runbook.ops.service_down) end to end, three outages at once.

Three Compose projects on an isolated engine, each behind an HTTP endpoint on loopback
(a published port, requested with a Host header), each broken another way, and one
inventory host per project (all local), so one run takes three paths:

* ``crash``: web was killed (exit 137) and worker too, after .env changed its secret: the
  service step restarts web (the same container) and recreates worker (a restart would
  keep the old secret); health is back;
* ``dependency``: db lost the file it hands to web through a shared volume (a change in its
  container's own layer that a restart keeps) and web exited: restarting the failing
  services does not help, recreating the project does (its volume and data stay);
* ``down``: web needs a config file that is gone: nothing helps, the host escalates;
* ``hung``: every container runs but web answers wrongly (a change in its own layer that
  a restart keeps): no service failed, the endpoint is on a port the project publishes and
  no one-off container runs, so the project step recreates the stack (the runbook's
  "restart the whole stack"), keeping db's volume, and health is back.

--check first (nothing may change, every step is listed as "would"), then the real run:
each host's summary says which step fixed it and the downtime, ``down`` fails with the
runbook's escalation text, and Telegram (a fake on loopback, through the real
``runbook-ops alert``) gets three warnings and one critical message. Bad input (an unknown
service, a directory without a compose project) is one line before anything restarts.

Every service stops within 1 s (``stop_grace_period``): httpd as PID 1 ignores SIGTERM, and
each recreate would wait compose's 10 s default.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request

import pytest

from ansible_collections.runbook.ops.plugins.module_utils._ops import service_down
from compose_project import COMPOSE_BIN, ComposeProject
from images import build_busybox_image
from tmpfs import mounted_tmpfs
from waiting import wait_for

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_BIN = os.path.dirname(sys.executable)
IMAGE = "runbook-ops-servicedown:1"
OLD_SECRET = "api-secret-OLD-3c9e1d"
NEW_SECRET = "api-secret-NEW-8b6c0e"
TOKEN = "777:AAServiceDown_secret_0123456789abcdef"
WAIT = 3
STACK_WAIT = 15

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="isolated engines need root"),
    pytest.mark.skipif(not os.access(COMPOSE_BIN, os.X_OK),
                       reason="RUNBOOK_OPS_COMPOSE_BIN (the Go docker-compose) is not set; "
                              "source scripts/dev-env.sh"),
]

# httpd serving /www/health on the project's published port
WEB = """\
  web:
    image: %(image)s
    stop_grace_period: 1s
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    ports: ["127.0.0.1:%(port)d:8080"]
"""

CRASH = """\
services:
""" + WEB + """\
  worker:
    image: %(image)s
    stop_grace_period: 1s
    env_file: .env
"""

DEPENDENCY = """\
services:
  db:
    image: %(image)s
    stop_grace_period: 1s
    command: ["sh", "-c", "if test -f /www/ready; then cp /www/ready /shared/ready; fi; exec httpd -f -p 8080 -h /www"]
    volumes: ["shared:/shared"]
    healthcheck:
      test: ["CMD", "test", "-f", "/shared/ready"]
      interval: 1s
      retries: 1
  web:
    image: %(image)s
    stop_grace_period: 1s
    command: ["sh", "-c", "test -f /shared/ready && exec httpd -f -p 8080 -h /www"]
    volumes: ["shared:/shared"]
    ports: ["127.0.0.1:%(port)d:8080"]
    depends_on:
      db: {condition: service_healthy}
volumes:
  shared: {}
"""

HUNG = """\
services:
""" + WEB + """\
  db:
    image: %(image)s
    stop_grace_period: 1s
    command: ["httpd", "-f", "-p", "8080", "-h", "/www"]
    volumes: ["data:/data"]
volumes:
  data: {}
"""

DOWN = """\
services:
  web:
    image: %(image)s
    stop_grace_period: 1s
    command: ["sh", "-c", "test -f /config/enabled && exec httpd -f -p 8080 -h /www"]
    volumes: ["./config:/config"]
    ports: ["127.0.0.1:%(port)d:8080"]
  migrate:
    image: %(image)s
    stop_grace_period: 1s
    command: ["true"]
"""

# web; worker from an image of its own that nothing else uses; builder built on the host
# (compose names its image <project>-builder)
KEPT = """\
services:
""" + WEB + """\
  worker:
    image: runbook-ops-sdworker:1
    stop_grace_period: 1s
  builder:
    build: ./builder
    stop_grace_period: 1s
"""


def build_image(engine):
    """The busybox image every project runs: httpd's /www/health and db's /www/ready."""
    build_busybox_image(engine, IMAGE, extra_files={"/www/health": "healthy\n",
                                                    "/www/ready": "ready\n"})


@pytest.fixture(scope="module")
def engine(isolated_engine):
    build_image(isolated_engine)
    return isolated_engine


class Project(ComposeProject):
    """The service-down project: its health endpoint answers on ``port``."""

    def __init__(self, engine, directory, compose_yaml, port, files=None):
        super().__init__(engine, directory, compose_yaml, {"image": IMAGE, "port": port}, files)
        self.port = port

    def containers(self):
        """{service: (id, status, started at)} of the project's containers."""
        api = self.engine.api()
        try:
            found = {}
            for item in api.containers(all=True, filters={
                    "label": "com.docker.compose.project=%s" % self.name}):
                state = api.inspect_container(item["Id"])["State"]
                found[item["Labels"]["com.docker.compose.service"]] = (
                    item["Id"], state["Status"], state["StartedAt"])
            return found
        finally:
            api.close()

    def exec(self, service, *argv):
        api = self.engine.api()
        try:
            cid = self.containers()[service][0]
            return api.exec_start(api.exec_create(cid, list(argv))["Id"]).decode()
        finally:
            api.close()

    def kill(self, service):
        self.engine.docker_cli("kill", self.containers()[service][0])

    def answers(self):
        try:
            with urllib.request.urlopen("http://127.0.0.1:%d/health" % self.port, timeout=2) as answer:
                return answer.status == 200
        except OSError:
            return False

    def endpoint(self):
        return {"name": "%s-web" % self.name[:8], "url": "http://127.0.0.1:%d/health" % self.port,
                "host_header": "shop.example.test", "expected_text": "healthy",
                "timeout_seconds": 2}


@pytest.fixture
def outages(engine, tmp_path):
    """The four broken projects: {host: Project}."""
    base = 18000 + (os.getpid() % 500) * 4
    projects = {
        "crash": Project(engine, tmp_path / ("sdcrash%d" % os.getpid()), CRASH, base,
                         {".env": "API_SECRET=%s\n" % OLD_SECRET}),
        "dependency": Project(engine, tmp_path / ("sddep%d" % os.getpid()), DEPENDENCY, base + 1),
        "down": Project(engine, tmp_path / ("sddown%d" % os.getpid()), DOWN, base + 2,
                        {"config/enabled": "yes\n"}),
        "hung": Project(engine, tmp_path / ("sdhung%d" % os.getpid()), HUNG, base + 3),
    }
    try:
        for project in projects.values():
            project.compose("up", "-d")
            assert wait_for(project.answers, 20, 0.3), "timed out"
        # crash: web and worker killed; .env changed meanwhile (worker's secret is stale)
        with open(os.path.join(projects["crash"].dir, ".env"), "w") as handle:
            handle.write("API_SECRET=%s\n" % NEW_SECRET)
        projects["crash"].kill("web")
        projects["crash"].kill("worker")
        # dependency: db's own layer loses the file, the shared copy goes, web exits
        dependency = projects["dependency"]
        dependency.exec("db", "sh", "-c", "echo kept > /shared/data; rm /www/ready /shared/ready")
        dependency.kill("web")
        # down: the config web needs is gone
        os.remove(os.path.join(projects["down"].dir, "config", "enabled"))
        projects["down"].kill("web")
        # hung: web runs but answers wrongly until its container is recreated
        projects["hung"].exec("db", "sh", "-c", "echo kept > /data/rows")
        projects["hung"].exec("web", "rm", "/www/health")
        assert wait_for(lambda: not projects["hung"].answers(), 10, 0.3), "still answers"
        assert wait_for(lambda: dependency.containers()["db"][1] == "running"
                        and engine.api().inspect_container(dependency.containers()["db"][0])
                        ["State"]["Health"]["Status"] == "unhealthy", 20, 0.3), "timed out"
        yield projects
    finally:
        for project in projects.values():
            subprocess.run([COMPOSE_BIN, "down", "--volumes", "--timeout", "0"], cwd=project.dir,
                           capture_output=True, env=dict(os.environ, **engine.env), timeout=120,
                           check=False)


def write_inventory(tmp_path, engine, projects, cli, extra=None):
    """One local host per project; returns the inventory path."""
    hosts = {}
    for host, project in projects.items():
        hosts[host] = {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "service_down_project_dir": project.dir,
            "service_down_endpoints": [project.endpoint()],
            "service_down_docker_host": engine.host,
            "service_down_compose_command": [COMPOSE_BIN],
            "service_down_wait_seconds": WAIT, "service_down_stack_wait_seconds": STACK_WAIT,
            "service_down_report_dir": str(tmp_path / "reports" / host),
            "service_down_state_dir": str(tmp_path / "state" / host),
            "service_down_disk_paths": [str(tmp_path)]}
        hosts[host].update((extra or {}).get(host) or {})
    path = tmp_path / "inventory.json"
    path.write_text(json.dumps({"all": {"hosts": hosts}}))
    return path, cli


def run_playbook(inventory_cli, *args):
    """ansible-playbook playbooks/service-down.yml with the JSON callback; returns
    (rc, {host: [(task name, result)]}, stderr)."""
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", ANSIBLE_NOCOLOR="1",
               ANSIBLE_CONFIG=os.path.join(_REPO, "ansible.cfg"))
    inventory, cli = inventory_cli
    # the play's own vars beat the inventory's: the CLI of the fake host comes with -e
    proc = subprocess.run([os.path.join(_BIN, "ansible-playbook"), "-i", str(inventory),
                           "playbooks/service-down.yml", "-e", "service_down_hosts=all",
                           "-e", "__sd_runbook_ops_cli=%s" % cli]
                          + list(args), cwd=_REPO, capture_output=True, text=True, env=env,
                          timeout=600, check=False)
    try:
        out = json.loads(proc.stdout)
    except ValueError:
        pytest.fail("no JSON (rc %d):\n%s\n%s" % (proc.returncode, proc.stdout[-3000:],
                                                  proc.stderr[-3000:]))
    ran = {}
    for play in out["plays"]:
        for task in play["tasks"]:
            for host, result in task["hosts"].items():
                ran.setdefault(host, []).append((task["task"]["name"], result))
    return proc.returncode, ran, proc.stderr


def result_of(ran, host, name):
    return [result for task, result in ran[host] if task == name][0]


def summary_of(ran, host):
    return result_of(ran, host, "Print the summary")["msg"]


@pytest.fixture
def host_cli(tmp_path):
    """The runbook-ops CLI as the base role installs it, with a runtime whose alerts go to a
    fake Telegram on loopback; yields (cli path, fake)."""
    sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))
    from fake_telegram import telegram_runtime
    from host_layout import install_host_cli

    host = tmp_path / "host"
    host.mkdir()
    install_host_cli(host)
    cli = host / "runbook-ops-here"
    with telegram_runtime(host, TOKEN) as (runtime, fake):
        (host / "token").chmod(0o600)
        runtime.update(log_dir=str(host / "log"), lock_dir=str(host / "lock"),
                       fallback_state_dir=str(host / "fallback"))
        (host / "runtime.json").write_text(json.dumps(runtime))
        cli.write_text('#!/bin/sh\nexec %s --runtime %s "$@"\n' % (
            host / "runbook-ops", host / "runtime.json"))
        cli.chmod(0o755)
        yield cli, fake


@pytest.fixture
def full_disk(tmp_path):
    """A 1 MiB tmpfs filled to 99%: a disk above the runbook's 95%."""
    with mounted_tmpfs(tmp_path / "full") as path:
        (path / "fill").write_bytes(b"x" * (1024 * 1024 - 16 * 1024))
        yield str(path)


def test_three_outages_take_exactly_the_step_each_needs(engine, outages, host_cli, full_disk,
                                                        tmp_path):
    cli, fake = host_cli
    # the host that stays down also has a full disk: space is freed first, and said so
    inventory = write_inventory(tmp_path, engine, outages, cli,
                                extra={"down": {"service_down_disk_paths": [full_disk]}})
    before = {host: project.containers() for host, project in outages.items()}

    # --check: diagnoses, lists every step it would take, changes nothing
    rc, ran, err = run_playbook(inventory, "--check")
    assert rc == 0, (err, {h: summary_of(ran, h) for h in ran})
    for host, project in outages.items():
        summary = summary_of(ran, host)
        print("\n".join(summary))
        assert "[CHECK MODE" in summary[0], summary
        assert project.containers() == before[host], host
        result = result_of(ran, host, "Take the outage procedure's steps until health is back")
        assert not result["changed"] and not result["escalate"] and not result["recovered"]
        assert [s["id"] for s in result["steps"]] == (["free_resources"] if host == "down" else []) + [
            "restart_services", "restart_project"]
        assert all(line[37:44].strip() == "would" for line in summary
                   if line.startswith(("free disk", "restart the failing", "restart the whole"))
                   and "not needed" not in line), summary
    assert not (tmp_path / "reports").exists()
    check = result_of(ran, "crash", "Take the outage procedure's steps until health is back")
    assert check["steps"][0]["restart"] == ["web"] and check["steps"][0]["recreate"] == ["worker"]
    assert check["drifted"] == ["worker"]
    assert not fake.requests

    # for real
    started = time.monotonic()
    rc, ran, err = run_playbook(inventory)
    seconds = time.monotonic() - started
    assert rc != 0, "the host still down must fail"
    results = {host: result_of(ran, host, "Take the outage procedure's steps until health is back")
               for host in outages}
    for host in outages:
        print("\n".join(summary_of(ran, host)))
    print("real run: %.1f s" % seconds)

    crash = outages["crash"]
    assert results["crash"]["recovered"] and results["crash"]["fixed_by"] == "restart_services"
    assert [s["id"] for s in results["crash"]["steps"]] == ["restart_services"]
    after = crash.containers()
    assert after["web"][0] == before["crash"]["web"][0], "web is restarted, not recreated"
    assert after["web"][1] == "running" and after["web"][2] != before["crash"]["web"][2]
    assert after["worker"][0] != before["crash"]["worker"][0], "worker is recreated"
    assert crash.exec("worker", "env").count("API_SECRET=%s" % NEW_SECRET) == 1
    assert any(line.startswith('RECOVERED by "restart the failing services": down for ')
               for line in summary_of(ran, "crash"))

    dependency = outages["dependency"]
    assert results["dependency"]["recovered"], summary_of(ran, "dependency")
    assert results["dependency"]["fixed_by"] == "restart_project"
    steps = results["dependency"]["steps"]
    assert [s["id"] for s in steps] == ["restart_services", "restart_project"]
    assert steps[0]["healthy_after"] is False and steps[1]["healthy_after"] is True
    assert dependency.exec("web", "cat", "/shared/data") == "kept\n", "volumes are kept"

    down = outages["down"]
    assert results["down"]["escalate"] and not results["down"]["recovered"]
    assert [s["id"] for s in results["down"]["steps"]] == [
        "free_resources", "restart_services", "restart_project"]
    assert results["down"]["steps"][0]["note"].startswith(
        "because disk %s at 99%% (above 95%%): freed 0 B (emergency disk steps 1-2: " % full_disk)
    assert down.containers()["web"][1] == "exited"
    failed = ran["down"][-1]
    assert failed[0] == "Fail the hosts still down after their steps (escalate)" and failed[1]["failed"]
    assert "escalate now (runbook P1: no progress for 15 min goes to L2" in failed[1]["msg"]
    assert "evidence: %s" % results["down"]["report_file"] in failed[1]["msg"]
    assert not any(result.get("failed") for _task, result in ran["crash"] + ran["dependency"] + ran["hung"])

    hung = outages["hung"]
    assert results["hung"]["recovered"] and results["hung"]["fixed_by"] == "restart_project"
    steps = results["hung"]["steps"]
    assert [s["id"] for s in steps] == ["restart_services", "restart_project"]
    assert steps[0]["restart"] == [] and steps[0]["recreate"] == [] and steps[1]["healthy_after"]
    assert hung.containers()["web"][0] != before["hung"]["web"][0], "web is recreated"
    assert hung.containers()["db"][0] != before["hung"]["db"][0], "the whole stack is recreated"
    assert hung.exec("db", "cat", "/data/rows") == "kept\n", "volumes are kept"
    assert "== docker logs --tail 200 " in open(results["hung"]["report_file"]).read()

    # the evidence: docker ps -a and the failing services' last log lines, on the host
    for host, result in results.items():
        assert result["report_file"].startswith(str(tmp_path / "reports" / host / "service-down-"))
        text = open(result["report_file"]).read()
        assert "== docker ps -a" in text and "== docker logs --tail 200 " in text
        assert text.splitlines()[-1].startswith("ESCALATE: " if host == "down" else "recovered by ")
        assert oct(os.stat(result["report_file"]).st_mode & 0o777) == "0o600"
    assert OLD_SECRET not in json.dumps(results) and NEW_SECRET not in json.dumps(results)

    # Telegram: a warning per recovered host, a critical one for the escalation
    texts = sorted(r["text"] for r in fake.requests if "text" in r)
    assert len(texts) == 4, fake.requests
    critical = [t for t in texts if "CRITICAL" in t]
    assert len(critical) == 1 and "ESCALATE: " in critical[0] and down.name in critical[0]
    assert sum("RECOVERED by" in t for t in texts) == 3


def test_bad_input_is_one_line_before_anything_restarts(engine, tmp_path):
    """An unknown service, and a directory without a compose project: each host fails with
    one line naming the variable and what to do; the broken project is left as it is."""
    project = Project(engine, tmp_path / ("sdbad%d" % os.getpid()), DOWN, 18000 + os.getpid() % 500 * 4 + 3,
                      {"config/enabled": "yes\n"})
    empty = tmp_path / "empty"
    empty.mkdir()
    # a project never started here (a wrong directory or name): nothing may be created
    absent = Project(engine, tmp_path / ("sdabsent%d" % os.getpid()), DOWN, 18000 + os.getpid() % 500 * 4 + 1,
                     {"config/enabled": "yes\n"})
    try:
        project.compose("up", "-d")
        project.kill("web")
        before = project.containers()
        inventory = write_inventory(tmp_path, engine, {"unknown": project, "empty": project,
                                                       "absent": absent},
                                    tmp_path / "no-cli", extra={
                                        "unknown": {"service_down_services": ["web", "nope"]},
                                        "empty": {"service_down_project_dir": str(empty)}})
        rc, ran, err = run_playbook(inventory)
        assert rc != 0 and "Traceback" not in err
        for host in ("unknown", "empty", "absent"):
            name, result = ran[host][-1]
            assert name == "Stop on bad input, in the playbook's words (nothing was restarted)"
            assert "\n" not in result["msg"]
            assert "Print the summary" not in [task for task, _r in ran[host]]
        assert ran["unknown"][-1][1]["msg"].startswith(
            "unknown: unknown service nope in compose project %s; known: migrate, web" % project.name)
        assert ran["empty"][-1][1]["msg"].startswith(
            "empty: docker compose could not resolve the project in %s" % empty)
        assert ran["absent"][-1][1]["msg"].startswith(
            "absent: project %s has no containers on this host: a wrong project directory or name" % absent.name)
        assert project.containers() == before and absent.containers() == {}
        assert not (tmp_path / "reports").exists()

        rc, ran, _err = run_playbook(inventory, "-l", "unknown", "-e", json.dumps(
            {"service_down_project_dir": "relative/dir", "service_down_wait_seconds": "soon",
             "service_down_budget_minutes": 0.5}))
        assert rc != 0
        name, result = ran["unknown"][-1]
        assert name == "Check the inputs before anything else"
        assert result["msg"] == ('service_down_project_dir: "relative/dir" is not an absolute path; set it '
                                 "to the compose project's directory, e.g. /opt/shop; "
                                 'service_down_wait_seconds: "soon" is not a whole number of seconds (0 or more)')
    finally:
        subprocess.run([COMPOSE_BIN, "down", "--timeout", "0"], cwd=project.dir,
                       capture_output=True, env=dict(os.environ, **engine.env), timeout=120,
                       check=False)


def test_a_hung_looking_outage_is_not_recreated_on_a_guess(engine, host_cli, tmp_path):
    """Every container runs and only the endpoint fails, but recreating the stack would be a
    guess (``foreign``: the endpoint is on a port the project does not publish) or would cut
    a migration off mid-write (``migrating``: a ``docker compose run`` container of the
    project runs): each host escalates and no container of either project is touched."""
    cli, fake = host_cli
    base = 18000 + (os.getpid() % 500) * 4 + 2000
    projects = {"foreign": Project(engine, tmp_path / ("sdfor%d" % os.getpid()), HUNG, base),
                "migrating": Project(engine, tmp_path / ("sdmig%d" % os.getpid()), HUNG, base + 1)}
    try:
        for project in projects.values():
            project.compose("up", "-d")
            assert wait_for(project.answers, 20, 0.3), "timed out"
        projects["migrating"].exec("web", "rm", "/www/health")
        projects["migrating"].compose("run", "-d", "--no-deps", "db", "sleep", "300")
        foreign = dict(projects["foreign"].endpoint(), url="http://127.0.0.1:%d/health" % (base + 2))

        def ids(project):
            api = engine.api()
            try:
                return sorted(c["Id"] for c in api.containers(all=True, filters={
                    "label": "com.docker.compose.project=%s" % project.name}))
            finally:
                api.close()

        before = {host: ids(project) for host, project in projects.items()}
        assert len(before["migrating"]) == 3, "web, db and the one-off run"
        inventory = write_inventory(tmp_path, engine, projects, cli,
                                    extra={"foreign": {"service_down_endpoints": [foreign]}})
        rc, ran, _err = run_playbook(inventory)
        assert rc != 0
        for host, project in projects.items():
            result = result_of(ran, host, "Take the outage procedure's steps until health is back")
            print("\n".join(summary_of(ran, host)))
            assert result["escalate"] and not result["recovered"] and not result["changed"], host
            step = result["steps"][-1]
            assert step["id"] == "restart_project" and not step["ran"], step
            assert step["note"].startswith("not run: every container runs while endpoints fail, and "), step
            assert ids(project) == before[host], "nothing recreated on %s" % host
            assert ", without recreating the stack (" in result["escalation"]
            assert any(line.startswith("restart the whole project") and line[37:44].strip() == "not run"
                       for line in summary_of(ran, host))
        assert "not on a loopback port %s publishes" % projects["foreign"].name in result_of(
            ran, "foreign", "Take the outage procedure's steps until health is back")["steps"][-1]["note"]
        assert "a one-off container of %s runs" % projects["migrating"].name in result_of(
            ran, "migrating", "Take the outage procedure's steps until health is back")["steps"][-1]["note"]
        assert sum("CRITICAL" in r.get("text", "") for r in fake.requests) == 2
    finally:
        for project in projects.values():
            subprocess.run([COMPOSE_BIN, "down", "--volumes", "--timeout", "0", "--remove-orphans"], cwd=project.dir,
                           capture_output=True, env=dict(os.environ, **engine.env), timeout=120, check=False)


def test_freeing_space_keeps_the_images_the_recreate_needs(isolated_engine_factory, full_disk,
                                                           tmp_path):
    """A full disk, and two services whose containers are gone (removed by hand in the
    night), one from a named image, one built on the host: the free step removes an image
    nothing needs but not theirs, although no container uses them and they are older than
    the cutoff, so the service step recreates both from the engine, which has no registry
    to pull them from again."""
    engine = isolated_engine_factory("sdkeep")
    build_image(engine)
    worker_image = build_busybox_image(engine, "runbook-ops-sdworker:1", filler_bytes=4096)
    junk_image = build_busybox_image(engine, "runbook-ops-sdjunk:1", filler_bytes=4096)
    project = Project(engine, tmp_path / ("sdkeep%d" % os.getpid()), KEPT,
                      18000 + (os.getpid() % 500) * 4 + 3000, {"builder/Dockerfile": "FROM scratch\n"})
    built_image = build_busybox_image(engine, "%s-builder:latest" % project.name, filler_bytes=4096)
    project.compose("up", "-d")
    assert wait_for(project.answers, 20, 0.3), "timed out"
    project.compose("rm", "--stop", "--force", "worker", "builder")
    assert set(project.containers()) == {"web"}

    result = service_down.recover_service(
        project.dir, endpoints=[project.endpoint()], disk_paths=[full_disk], cleanup_until="0s",
        wait_seconds=WAIT, stack_wait_seconds=STACK_WAIT, report_dir=str(tmp_path / "reports"),
        state_dir=str(tmp_path / "state"), compose_command=[COMPOSE_BIN], docker_host=engine.host)

    assert [s["id"] for s in result["steps"]] == ["free_resources", "restart_services"], result["steps"]
    assert "kept the 3 images the project's services are created from" in result["steps"][0]["note"]
    images = set(image["Id"] for image in engine.api().images(all=True))
    assert worker_image in images, "the free step removed the image worker is recreated from"
    assert built_image in images, "the free step removed the image builder is recreated from"
    assert junk_image not in images, "the free step frees what nothing needs"
    assert result["recovered"] and result["fixed_by"] == "restart_services", result["steps"]
    assert result["steps"][1]["recreate"] == ["builder", "worker"], result["steps"][1]
    assert project.containers()["worker"][1] == project.containers()["builder"][1] == "running"

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbooks' "Service Down - Complete Outage" (P1) procedure for one Compose project.

Control flow of ``recover_service``::

    inputs checked (endpoints, numbers) -> compose project resolved (compose_env.open_project:
      unknown services, no project, another project of the same name refused: nothing restarted)
      -> observe(): endpoints (health.check_endpoint, Host header) + the project's containers
         judged per service (health.judge_container; no container is a failure)
      -> resources: memory (/proc/meminfo), disks (the given paths and Docker's data root), load
      -> healthy: report, nothing else
      -> evidence: `docker ps -a` and the last N log lines of every failing service (every service when
         only endpoints fail) into
         <report_dir>/service-down-<project>-<UTC time>.log (before anything is recreated)
      -> next_step() until healthy or escalated:
           free_resources   (only when disk > 95% or memory < 100 MiB: the emergency disk
                             procedure's non-destructive steps, build cache and unused images,
                             never the images of the project's services)
           restart_services (`compose restart` of the failing services; `up -d --force-recreate
                             --no-deps` of those whose environment drifted from .env or that
                             have no container) -> wait_seconds -> observe
           restart_project  (`compose up -d --force-recreate`, never `down -v`)
                             -> stack_wait_seconds (container health checks) -> observe
           escalate         (the steps ran out, or the budget did)
      -> result: which step fixed it and the downtime, or the escalation.

Check mode is the same path minus the effects: nothing is restarted, written or removed,
no wait happens, and each step says what it would do; health does not change, so every
step that a real run could reach is listed.

The decisions are pure functions (``failing_services``, ``service_actions``,
``next_step``, ``resource_problems``) tested against independent models.
"""

from __future__ import annotations

import os
import re
import time
import urllib.parse

from . import compose_env, health
from .disk import filesystem_usage
from .docker_api import short_error
from .errors import OpsError
from .runner import run_command
from .state import read_json
from .timestamps import format_timestamp
from .units import format_bytes, plural

STEP_TITLES = {
    "free_resources": "free disk space first",
    "restart_services": "restart the failing services",
    "restart_project": "restart the whole project",
}
#: Every step, in the order the procedure takes them.
STEP_ORDER = ("free_resources", "restart_services", "restart_project")
MIB = 1024 * 1024
DEFAULTS = {
    "wait_seconds": 30,
    "stack_wait_seconds": 60,
    "budget_minutes": 15,
    "log_lines": 200,
    "disk_crit_percent": 95,
    "memory_min_bytes": 100 * MIB,
    "cleanup_until": "168h",
    "report_dir": "/var/lib/runbook-ops/service-down",
    "state_dir": "/var/lib/runbook-ops",
}
COMPOSE_TIMEOUT_SECONDS = 600
POLL_SECONDS = 2.0
CONTAINER_FIELDS = ("name", "id", "state", "health", "exit_code", "oom_killed", "restart_count")
DISK_FIELDS = ("path", "mount", "used_percent", "free_bytes", "total_bytes")
ESCALATION = ("escalate now (runbook P1: no progress for 15 min goes to L2, the tech lead): read "
              "the evidence file, look for the root cause in the logs (exit code 137 is out of "
              "memory), and if a deployment caused it, roll back (runbook: Rollback Deployment)")


# --------------------------------------------------------------------------- decisions


def failing_services(service_states):
    """Return the sorted services whose containers are judged critical or missing.

    ``service_states``: ``{service: {"level", "missing", ...}}`` from ``observe``."""
    return sorted(name for name, state in service_states.items()
                  if state["level"] == "critical")


def service_actions(failing, drifted, missing, named, endpoints_down):
    """Decide what the service step does: ``{"restart": [...], "recreate": [...]}``.

    ``failing``: services whose containers failed; ``drifted``: services whose containers
    hold another environment than compose resolves now (a restart would keep it);
    ``missing``: services without any container (nothing to restart); ``named``: the
    services the user asked for (``services``), or empty. When no container failed but an
    endpoint is down, the named services are the ones to restart (without names the
    service behind the endpoint is unknown and the step has nothing to do)."""
    targets = set(failing)
    if not targets and endpoints_down:
        targets = set(named)
    recreate = sorted(t for t in targets if t in set(drifted) or t in set(missing))
    restart = sorted(targets - set(recreate))
    return {"restart": restart, "recreate": recreate}


def next_step(healthy, done, elapsed_seconds, budget_seconds, resources_critical):
    """The procedure's next move: ``healthy`` (nothing was wrong), ``recovered`` (a step
    fixed it), one of ``STEP_ORDER``, or ``escalate``.

    ``done``: the steps taken so far, in order. ``free_resources`` comes first, and only
    when ``resources_critical`` (a restart on a full disk fails the same way); the budget
    stops the procedure between steps (never before the first)."""
    if healthy:
        return "recovered" if done else "healthy"
    if done and elapsed_seconds >= budget_seconds:
        return "escalate"
    for step in STEP_ORDER:
        if step in done:
            continue
        if step == "free_resources" and not resources_critical:
            continue
        return step
    return "escalate"


LOOPBACK_HOSTS = ("localhost", "127.0.0.1", "::1", "0.0.0.0")


def hung_stack_blockers(containers, project, endpoints, endpoints_down):
    """Why the project step must not recreate a stack none of whose containers failed
    (only endpoints do: a hung app, where the runbook restarts the whole stack); empty: go.

    ``containers``: the project's inspect dicts; ``endpoints``: ``{"name", "url"}`` dicts;
    ``endpoints_down``: the failing endpoints' names. Blockers: a one-off container of the
    project still runs (a migration, ``docker compose run``: recreating the database under
    it could leave it half applied), or a failing endpoint is not a loopback URL on a port
    this project's running containers publish (another project, a proxy, DNS or a typo:
    recreating would be a guess)."""
    published, oneoff = set(), []
    for attrs in containers:
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        if labels.get(compose_env.LABEL_PROJECT) != project or (attrs.get("State") or {}).get("Status") != "running":
            continue
        if labels.get(compose_env.LABEL_ONEOFF) == "True":
            oneoff.append((attrs.get("Name") or "?").lstrip("/"))
            continue
        for bindings in ((attrs.get("NetworkSettings") or {}).get("Ports") or {}).values():
            published.update(str(b.get("HostPort")) for b in bindings or ())
    blockers = ["a one-off container of %s runs (%s)" % (project, ", ".join(sorted(oneoff)))] if oneoff else []
    for endpoint in endpoints:
        if endpoint["name"] not in endpoints_down:
            continue
        url = urllib.parse.urlsplit(endpoint["url"])
        port = str(url.port or (443 if url.scheme == "https" else 80))
        if url.hostname not in LOOPBACK_HOSTS or port not in published:
            blockers.append("endpoint %s is not on a loopback port %s publishes" % (endpoint["name"], project))
    return blockers


def resource_problems(resources, disk_crit_percent, memory_min_bytes):
    """The reasons to free resources: each disk above ``disk_crit_percent`` and memory
    available below ``memory_min_bytes`` (the runbook: disk > 95%, memory < 100 MB)."""
    problems = []
    for disk in resources.get("disks") or ():
        if disk["used_percent"] > disk_crit_percent:
            problems.append("disk %s at %d%% (above %d%%)" % (
                disk["mount"], disk["used_percent"], disk_crit_percent))
    memory = resources.get("memory")
    if memory and memory["available_bytes"] < memory_min_bytes:
        problems.append("memory: %s available (below %s)" % (
            format_bytes(memory["available_bytes"]), format_bytes(memory_min_bytes)))
    return problems


def escalation_text(project, done, problems, budget_seconds, resources_critical, refused=None):
    """What a host still down says: after which steps (or that the budget ran out before
    the last, or why the stack was not recreated: ``refused``), what is still failing, and
    the runbook's escalation advice."""
    reachable = len(STEP_ORDER) - (0 if resources_critical else 1)
    taken = ", ".join(STEP_TITLES[s] for s in done) or "no step"
    if refused:
        when = "after %s, without recreating the stack (%s)" % (taken, refused)
    elif len(done) < reachable:
        when = "after %s min, the budget (steps taken: %s)" % (
            "%g" % (budget_seconds / 60.0), taken)
    else:
        when = "after its steps (%s)" % taken
    return "%s is still down %s: %s — %s" % (project, when, "; ".join(problems) or "unknown",
                                             ESCALATION)


# --------------------------------------------------------------------------- inputs


def check_inputs(endpoints, wait_seconds, stack_wait_seconds, budget_minutes, log_lines,
                 disk_crit_percent, memory_min_bytes):
    """Return the endpoints with their defaults; OpsError (one line naming the option, its
    value and the rule) for a bad value, before anything is looked at."""
    for name, value, low in (("wait_seconds", wait_seconds, 0),
                             ("stack_wait_seconds", stack_wait_seconds, 0),
                             ("budget_minutes", budget_minutes, 0),
                             ("log_lines", log_lines, 1),
                             ("memory_min_bytes", memory_min_bytes, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or value < low:
            raise OpsError("%s: %r must be a number of at least %d" % (name, value, low))
    if isinstance(disk_crit_percent, bool) or not isinstance(disk_crit_percent, (int, float)) \
            or not 0 < disk_crit_percent < 100:
        raise OpsError("disk_crit_percent: %r must be a percentage between 0 and 100"
                       % (disk_crit_percent,))
    checked = []
    for index, raw in enumerate(endpoints or ()):
        given = {k: v for k, v in raw.items() if v is not None} if isinstance(raw, dict) else raw
        checked.append(health.validate_endpoint(given, index))
    return checked


# --------------------------------------------------------------------------- observing


def judge_services(containers, project, selected, required):
    """``{service: {"level", "problem", "missing", "containers": [{"name", "state", ...}]}}``
    for the ``selected`` services of a project's inspect dicts (one-off runs left out); the
    worst container decides, a service without any container is critical."""
    grouped = {name: [] for name in selected}
    for attrs in containers:
        info = health.describe_container(attrs)
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        if info["project"] != project or labels.get(compose_env.LABEL_ONEOFF) == "True" \
                or info["service"] not in grouped:
            continue
        level, problem = health.judge_container(info, required=required)
        info.update(level=level, problem=problem)
        grouped[info["service"]].append(info)
    states = {}
    for name, infos in grouped.items():
        if not infos:
            states[name] = {"level": "critical", "problem": "no container", "missing": True,
                            "settling": False, "containers": []}
            continue
        worst = max(infos, key=lambda i: health.LEVELS.index(i["level"]))
        states[name] = {
            "level": worst["level"], "problem": worst["problem"], "missing": False,
            # a health check still starting: not a failure, not up yet either
            "settling": any(i["state"] == "running" and i["health"] == "starting" for i in infos),
            "containers": [{k: i[k] for k in CONTAINER_FIELDS} for i in infos]}
    return states


def env_drift(config, containers, client, selected):
    """Services among ``selected`` whose containers - running or stopped, unlike
    compose_env_sync, which compares running ones - hold another environment than compose
    resolves now (``compose_env.compare_environment``): a restart would keep it."""
    project = config["name"]
    images = compose_env.image_environments(client, containers)
    drifted = set()
    for attrs in containers:
        labels = (attrs.get("Config") or {}).get("Labels") or {}
        name = labels.get(compose_env.LABEL_SERVICE)
        if labels.get(compose_env.LABEL_PROJECT) != project or name not in selected \
                or labels.get(compose_env.LABEL_ONEOFF) == "True":
            continue
        desired = compose_env.desired_environment(config["services"][name])
        actual = compose_env.parse_env_list((attrs.get("Config") or {}).get("Env"))
        if any(compose_env.compare_environment(desired, actual, images.get(attrs.get("Image"))).values()):
            drifted.add(name)
    return sorted(drifted)


def measure_resources(disk_paths, docker_root=None, meminfo_path="/proc/meminfo"):
    """Memory (``health.read_memory``), each distinct filesystem of ``disk_paths`` and
    Docker's data root (``disk.filesystem_usage``), and the load averages."""
    disks, seen = [], set()
    for path in list(disk_paths or ()) + ([docker_root] if docker_root else []):
        try:
            usage = filesystem_usage(path)
        except OpsError:
            continue
        if usage["mount"] not in seen:
            seen.add(usage["mount"])
            disks.append({k: usage[k] for k in DISK_FIELDS})
    try:
        memory = health.read_memory(meminfo_path)
    except OSError:
        memory = None
    try:
        load = [round(v, 2) for v in os.getloadavg()]
    except OSError:
        load = None
    return {"memory": memory, "disks": disks, "load": load, "cpus": os.cpu_count() or 1}


class Observer:
    """Looks at the project's containers and the endpoints; ``observe()`` returns a
    snapshot ``{"healthy", "settling", "services", "endpoints", "failing", "problems"}``."""

    def __init__(self, client, project, selected, required, endpoints):
        self.client = client
        self.project = project
        self.selected = selected
        self.required = required
        self.endpoints = endpoints
        self.containers = []

    def observe(self):
        self.containers = compose_env.inspect_project(self.client, self.project)
        services = judge_services(self.containers, self.project, self.selected, self.required)
        endpoints = [health.check_endpoint(e) for e in self.endpoints]
        failing = failing_services(services)
        down = [e for e in endpoints if e["level"] == "critical"]
        problems = ["endpoint %s (%s): %s" % (e["name"], e["target"], e["problem"]) for e in down]
        problems += ["%s: %s" % (name, services[name]["problem"]) for name in failing]
        return {"healthy": not failing and not down,
                "settling": any(s["settling"] for s in services.values()),
                "services": services, "endpoints": endpoints, "failing": failing,
                "endpoints_down": [e["name"] for e in down], "problems": problems}


def wait_until_healthy(observe, seconds, sleep=time.sleep, clock=time.monotonic,
                       poll=POLL_SECONDS):
    """Observe every ``poll`` seconds for up to ``seconds``; return the last snapshot as
    soon as two in a row are healthy with no health check still starting (a container that
    runs for a moment and crashes again is not "back")."""
    deadline = clock() + seconds
    streak = 0
    while True:
        snapshot = observe()
        up = snapshot["healthy"] and not snapshot["settling"]
        streak = streak + 1 if up else 0
        if streak >= 2:
            return snapshot
        if clock() >= deadline:  # a health check still starting at the end is not "back"
            return dict(snapshot, healthy=up)
        sleep(max(0.0, min(poll, deadline - clock())))


# --------------------------------------------------------------------------- evidence


def report_path(report_dir, project, now):
    """``<report_dir>/service-down-<project>-<YYYYmmddTHHMMSSZ>.log``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", project) or "_"
    return os.path.join(report_dir, "service-down-%s-%s.log" % (
        safe, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))))


def ps_table(client):
    """What ``docker ps -a`` prints, from the engine's container list."""
    rows = [("CONTAINER ID", "IMAGE", "COMMAND", "CREATED", "STATUS", "NAMES")]
    for item in client.containers(all=True):
        command = (item.get("Command") or "")
        rows.append((item["Id"][:12], item.get("Image") or "",
                     '"%s"' % (command if len(command) <= 20 else command[:19] + "…"),
                     format_timestamp(item.get("Created")), item.get("Status") or "",
                     ",".join(n.lstrip("/") for n in item.get("Names") or ())))
    return ["%-14s %-28s %-24s %-24s %-28s %s" % row for row in rows]


def gather_evidence(client, observation, log_lines, redact=lambda text: text):
    """The evidence file's text: the failing checks, ``docker ps -a`` and the last
    ``log_lines`` log lines of every container of each failing service (of every service when
    none failed and only endpoints do: a hung app's logs hold the cause), with the project's
    secrets (``redact``: the values of its .env and environment entries) masked."""
    lines = ["== what failed"] + observation["problems"] + ["", "== docker ps -a"]
    lines += ps_table(client)
    for name in observation["failing"] or sorted(observation["services"]):
        for container in observation["services"][name]["containers"]:
            lines += ["", "== docker logs --tail %d %s (%s)" % (log_lines, container["name"], name)]
            try:
                raw = client.logs(container["id"], stdout=True, stderr=True, tail=log_lines,
                                  timestamps=True)
                lines += raw.decode("utf-8", "replace").splitlines()
            except Exception as exc:  # noqa: BLE001 - removed meanwhile, a log driver without reads
                lines.append("(logs not readable: %s)" % str(exc)[:200])
    return redact("\n".join(lines) + "\n")


def write_private(path, text, new=False):
    """Append ``text`` to ``path`` (mode 0600, directory 0700); with ``new`` the file must not
    exist yet (a run's first write never joins a file someone else made, whatever its mode).
    The error text on failure (a full disk must not stop the procedure), else None."""
    try:
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        flags = os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | (os.O_EXCL if new else os.O_APPEND)
        descriptor = os.open(path, flags, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(text)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def down_since(state_dir, project, endpoint_names, fallback):
    """When the outage began: the earliest ``since`` of the health monitor's failing checks
    of this project or these endpoints (``<state_dir>/health.json``), else ``fallback``.
    Returns ``(epoch, source)``."""
    checks = (read_json(os.path.join(state_dir, health.STATE_FILE), {}) or {}).get("checks")
    keys = {"endpoint:%s" % n for n in endpoint_names}
    found = [entry.get("since") for key, entry in (checks or {}).items()
             if isinstance(entry, dict) and isinstance(entry.get("since"), (int, float))
             and (key in keys or key.startswith("compose:%s/" % project)
                  or key == "compose:%s" % project)]
    found = [value for value in found if value <= fallback]
    if found:
        return min(found), "the health monitor's first failed check"
    return fallback, "this run's first check"


# --------------------------------------------------------------------------- steps


def _compose(base, args, env, project_src, redact, what):
    """Run one compose command; the error text (redacted) or None."""
    done = run_command(base + args, env=env, cwd=project_src, timeout=COMPOSE_TIMEOUT_SECONDS)
    if done.ok:
        return None
    return "`docker compose %s` failed (exit %s): %s" % (
        what, done.rc, compose_env.compose_error_text(done.stderr or done.stdout, redact)
        or "no output")


def run_service_step(actions, base, env, project_src, redact, check_mode):
    """Restart and recreate per ``service_actions``; returns ``(note, error)``."""
    words = []
    if actions["restart"]:
        words.append("%s %s" % ("would restart" if check_mode else "restarted",
                                ", ".join(actions["restart"])))
    if actions["recreate"]:
        words.append("%s %s (environment drifted from .env or no container: a restart would keep "
                     "the old one)" % ("would recreate" if check_mode else "recreated",
                                       ", ".join(actions["recreate"])))
    if not words:
        return "nothing to restart: no container failed (name the endpoint's services in services)", None
    if check_mode:
        return "; ".join(words), None
    errors = []
    if actions["restart"]:
        errors.append(_compose(base, ["restart"] + actions["restart"], env, project_src, redact,
                               "restart " + " ".join(actions["restart"])))
    if actions["recreate"]:
        errors.append(_compose(base, ["up", "-d", "--force-recreate", "--no-deps"]
                               + actions["recreate"], env, project_src, redact,
                               "up -d --force-recreate --no-deps " + " ".join(actions["recreate"])))
    return "; ".join(words), "; ".join(e for e in errors if e) or None


def run_project_step(base, env, project_src, redact, check_mode, named=()):
    """``up -d --force-recreate`` of the whole project, or of the ``named`` services only
    when the user chose some (never ``down -v``, never ``-V``: volumes are kept)."""
    command = "up -d --force-recreate" + "".join(" " + name for name in named)
    if check_mode:
        return "would run `docker compose %s` (volumes kept)" % command, None
    return ("ran `docker compose %s` (volumes kept)" % command,
            _compose(base, ["up", "-d", "--force-recreate"] + list(named), env, project_src, redact,
                     command))


def project_images(client, config):
    """The ids of the images the project's services are created from (``image:``, or
    compose's ``<project>-<service>`` for a built one), where present on the engine: a
    service without a container (removed, or never started) needs its image for the
    recreate, and an engine cut off from its registry could not pull it again. Raises
    ``OpsError`` when the engine does not say whether an image is there."""
    from docker.errors import NotFound  # pylint: disable=import-outside-toplevel

    held = set()
    for name, service in sorted(config["services"].items()):
        for ref in [service.get("image")] if service.get("image") else [
                "%s-%s" % (config["name"], name), "%s_%s" % (config["name"], name)]:
            try:
                held.add(client.inspect_image(ref)["Id"])
            except NotFound:
                continue
            except Exception as exc:  # noqa: BLE001 - a timeout, an engine error: keep everything
                raise OpsError("the engine did not say whether the image %s of service %s is "
                               "here (%s); no image was removed" % (ref, name, short_error(exc)))
    return sorted(held)


def run_free_step(problems, client, config, cleanup_options, check_mode):
    """The emergency disk procedure's first, non-destructive steps: Docker build cache
    and images no container uses older than ``cleanup_options["until"]``
    (``docker_cleanup``), never those the project's services are created from; nothing
    for a project that builds a service again at every start (its base image and the
    build cache are what that build needs). Returns ``(note, error, bytes freed)``."""
    because = "because %s" % "; ".join(problems)
    rebuilt = [name for name, service in sorted(config["services"].items())
               if service.get("build") and service.get("pull_policy") == "build"]
    if rebuilt:
        return ("%s: nothing removed: %s built again at every start (pull_policy: build), from "
                "a base image and build cache that must stay" % (because, ", ".join(rebuilt)), None, 0)
    from .docker_cleanup import run_docker_cleanup
    try:
        held = project_images(client, config)
        result = run_docker_cleanup(dict(cleanup_options, builder_cache=True, images="unused", containers=False,
                                         volumes="none", networks=False),
                                    check_mode=check_mode, held_images=held)
    except OpsError as exc:
        return "%s: nothing removed" % because, exc.message, 0
    freed = result["estimated_bytes"] if check_mode else result["reclaimed_bytes"]
    note = ("%s: %s %s (emergency disk steps 1-2: build cache, images unused for %s; kept the %s "
            "the project's services are created from)" % (
                because, "would free" if check_mode else "freed", format_bytes(freed),
                cleanup_options["until"], plural(len(held), "image")))
    return note, "; ".join(result.get("errors") or ()) or None, freed


# --------------------------------------------------------------------------- entry point


def recover_service(project_src, endpoints=None, services=None, files=None, project_name=None,
                    wait_seconds=DEFAULTS["wait_seconds"],
                    stack_wait_seconds=DEFAULTS["stack_wait_seconds"],
                    budget_minutes=DEFAULTS["budget_minutes"], log_lines=DEFAULTS["log_lines"],
                    disk_paths=("/",), disk_crit_percent=DEFAULTS["disk_crit_percent"],
                    memory_min_bytes=DEFAULTS["memory_min_bytes"],
                    cleanup_until=DEFAULTS["cleanup_until"], report_dir=DEFAULTS["report_dir"],
                    state_dir=DEFAULTS["state_dir"], compose_command=None, docker_host=None,
                    check_mode=False, clock=time.time, sleep=time.sleep, poll=POLL_SECONDS):
    """Run the outage procedure on one Compose project; return plain data.

    Keys: ``changed``, ``check_mode``, ``project``, ``healthy_before``, ``recovered``,
    ``escalate``, ``fixed_by`` (the step id that brought health back, or None),
    ``downtime_seconds``, ``downtime`` (``41 s``, ``12 min``) and
    ``down_since``/``down_since_source`` (when recovered),
    ``problems`` (what failed at first), ``steps`` (``{"id", "title", "ran", "note",
    "error", "healthy_after", "problems_after"}`` per step of ``STEP_ORDER``), ``services``
    and ``endpoints`` (the last observation), ``resources``, ``resource_problems``,
    ``report_file`` (None when healthy), ``report_error``, ``elapsed_seconds``,
    ``escalation`` (the text, when escalating), ``warnings``.
    Raises OpsError before anything changes for bad input: a bad option, no project
    directory or compose project, unknown services, an unreachable Docker daemon.
    """
    endpoints = check_inputs(endpoints, wait_seconds, stack_wait_seconds, budget_minutes,
                             log_lines, disk_crit_percent, memory_min_bytes)
    started = clock()
    project_src = os.path.abspath(project_src)
    if not os.path.isdir(project_src):
        raise OpsError("project_src: %s does not exist; set it to the directory holding the "
                       "compose project (nothing was restarted)" % project_src)
    env = {"DOCKER_HOST": docker_host} if docker_host else None
    compose = compose_env.resolve_compose_command(compose_command, env)
    config, base, client, _containers, redact = compose_env.open_project(
        compose, project_src, files, None, project_name, None, services, docker_host)
    project = config["name"]
    selected = compose_env.select_services(config, services)
    named = sorted(set(services or ()))
    observer = Observer(client, project, selected, named, endpoints)
    first = observer.observe()
    if all(first["services"][name]["missing"] for name in first["services"]):
        raise OpsError("project %s has no containers on this host: a wrong project directory or "
                       "name, or a project taken down on purpose; nothing was started (bring it up "
                       "by hand with `docker compose up -d` if it should run)" % project)
    drifted = env_drift(config, observer.containers, client, selected)
    docker_root = None
    try:
        from .docker_cleanup import local_data_root
        docker_root = local_data_root(docker_host, client.info().get("DockerRootDir"))
    except Exception:  # noqa: BLE001 - an engine that does not say: measure the given paths
        docker_root = None
    resources = measure_resources(disk_paths, docker_root)
    problems_now = resource_problems(resources, disk_crit_percent, memory_min_bytes)
    result = {"changed": False, "check_mode": check_mode, "project": project,
              "project_src": project_src, "healthy_before": first["healthy"],
              "recovered": False, "escalate": False, "fixed_by": None, "downtime_seconds": None,
              "downtime": None,
              "down_since": None, "down_since_source": None, "problems": first["problems"],
              "drifted": drifted, "steps": [], "resources": resources,
              "resource_problems": problems_now, "report_file": None, "report_error": None,
              "escalation": None, "warnings": []}
    if first["healthy"]:
        return _finish(result, first, started, clock)

    result["report_file"] = report_path(report_dir, project, started)
    evidence = gather_evidence(client, first, log_lines, redact)
    if not check_mode:
        result["report_error"] = write_private(result["report_file"], evidence, new=True)
        if result["report_error"]:
            result["warnings"].append("could not write the evidence file %s (%s)" % (
                result["report_file"], result["report_error"]))

    observation, done, refused = first, [], None
    budget_seconds = budget_minutes * 60
    while True:
        step = next_step(observation["healthy"], done, clock() - started, budget_seconds,
                         bool(problems_now))
        if step in ("healthy", "recovered", "escalate"):
            break
        done.append(step)
        record = {"id": step, "title": STEP_TITLES[step], "ran": True, "error": None}
        if step == "free_resources":
            record["note"], record["error"], freed = run_free_step(
                problems_now, client, config, {"until": cleanup_until, "docker_host": docker_host,
                                               "state_dir": state_dir}, check_mode)
            result["changed"] |= bool(freed) and not check_mode
            waited = 0
        elif step == "restart_services":
            actions = service_actions(observation["failing"], drifted,
                                      [n for n in observation["failing"]
                                       if observation["services"][n]["missing"]],
                                      named, observation["endpoints_down"])
            record["note"], record["error"] = run_service_step(actions, base, env, project_src,
                                                               redact, check_mode)
            record.update(actions)
            result["changed"] |= bool(actions["restart"] or actions["recreate"]) and not check_mode
            waited = wait_seconds if actions["restart"] or actions["recreate"] else 0
        else:  # the runbook's "restart the whole stack", also for a hung app on this project's port
            blockers = [] if observation["failing"] or named else hung_stack_blockers(
                observer.containers, project, endpoints, observation["endpoints_down"])
            if blockers:
                done.pop()
                refused = "; ".join(blockers)
                record.update(ran=False, healthy_after=None, problems_after=[],
                              note="not run: every container runs while endpoints fail, and %s; name "
                              "the services behind them in services to recreate those" % refused)
                result["steps"].append(record)
                step = "escalate"
                break
            record["note"], record["error"] = run_project_step(base, env, project_src, redact,
                                                               check_mode, named)
            result["changed"] |= not check_mode
            waited = stack_wait_seconds
        if not check_mode:
            try:
                observation = wait_until_healthy(observer.observe, waited, sleep=sleep, poll=poll)
            except OpsError as exc:  # the engine stopped answering after a step: escalate
                record["error"] = "could not check the project afterwards: %s" % exc.message
                observation = dict(observation, healthy=False,
                                   problems=observation["problems"] + [record["error"]])
        record["healthy_after"] = None if check_mode else observation["healthy"]
        record["problems_after"] = [] if check_mode else observation["problems"]
        if record["error"]:
            record["note"] += "; failed: " + record["error"]
        result["steps"].append(record)

    if step == "recovered":
        now = clock()
        since, source = down_since(state_dir, project, [e["name"] for e in endpoints], started)
        result.update(recovered=True, fixed_by=done[-1], downtime_seconds=round(now - since),
                      downtime=health.format_duration(now - since), down_since=since,
                      down_since_source=source)
    elif not check_mode:  # check mode lists every step a real run could take
        result["escalate"] = True
        result["escalation"] = escalation_text(project, done, observation["problems"],
                                               budget_seconds, bool(problems_now), refused)
    if not check_mode and result["report_file"] and not result["report_error"]:
        outcome = ("recovered by %s, down for %s (since %s)" % (
            STEP_TITLES[result["fixed_by"]], result["downtime"], result["down_since_source"])
            if result["recovered"] else "ESCALATE: %s" % result["escalation"])
        write_private(result["report_file"], "\n== steps\n" + "".join(
            "%s: %s\n" % (s["title"], s["note"]) for s in result["steps"]) + "\n== outcome\n" + outcome + "\n")
    return _finish(result, observation, started, clock)


def _finish(result, observation, started, clock):
    result["services"] = observation["services"]
    result["endpoints"] = observation["endpoints"]
    result["elapsed_seconds"] = round(clock() - started, 1)
    return result

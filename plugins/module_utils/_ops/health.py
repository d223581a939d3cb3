# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Service health: HTTP endpoints, Docker Compose containers, host resources, the
team's own commands and TLS certificates.

Two callers:

* the ``health-monitor`` cron job (``runbook-ops health-check``), every few minutes:
  ``load_config`` -> ``run_checks`` (``check_endpoint`` per endpoint,
  ``check_compose_projects`` with each limited container's memory) ->
  ``run_host_checks`` (memory, swap, CPU over a window: ``health_resources``) ->
  ``run_command_checks`` (``health_commands``) -> ``run_certificate_checks`` (daily:
  ``health_certs``) -> ``track_failures`` (consecutive failures and downtime, state in
  ``<state_dir>/health.json``) -> one ``alerts.notify`` call per check that has failed
  ``failures_before_alert`` runs in a row, and a recovery message with the downtime when
  it is back;
* the morning check playbook (``runbook-ops health-report``): ``build_report`` gathers
  containers (and their memory), endpoints, memory, swap, error lines in container logs,
  the newest backup and every installed job's last result, as plain data with a level
  per row, plus the monitor's last CPU, command and certificate results from its state.

Cheap by design (it runs every 5 minutes): only the standard library at import time,
the Docker SDK only when Compose projects are configured, ``health_commands`` and
``health_certs`` (and ``ssl``) only when commands or certificates are, no psutil.
"""

from __future__ import annotations

import json
import os
import re
import time

from . import health_resources
from .cli_output import alert_outcome
from .errors import OpsError
from .http_probe import ProbeError, http_get
from .options import check_config
from .state import read_json_object, write_json_atomic
from .docker_api import connect
from .health_resources import check_result, number_text
from .timestamps import epoch_seconds, format_timestamp
from .units import format_bytes, plural

LEVELS = ("ok", "warning", "critical")
DEFAULT_CONFIG_PATH = "/etc/runbook-ops/health-monitor.json"
STATE_FILE = "health.json"
BODY_READ_LIMIT = 65536
LOG_ERROR_PATTERN = re.compile(r"error|exception|traceback|critical", re.IGNORECASE)
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")

# The options, declared once (argument-spec style, see ``options``): the config check below
# is built from this table, and a unit test holds the health_monitor role's variables to it.
OPTIONS = {
    "failures_before_alert": {"type": "int", "default": 2},
    "cooldown_seconds": {"type": "int", "default": 3600},
    "docker_timeout_seconds": {"type": "int", "default": 10},
    # A container restarted this many times within the window is a warning: a worker
    # OOM-killed every 10 minutes is caught even though it is running at every check.
    "restart_window_seconds": {"type": "int", "default": 3600},
    "restart_threshold": {"type": "int", "default": 2},
    # Services whose containers run once and exit (migrations, seeders): exit 0 is ok
    # even when their restart policy is not "no". Each: "service" or "project/service".
    "oneshot_services": {"type": "list", "elements": "str", "default": []},
    # Host resources (health_resources.py): memory used = MemTotal - MemAvailable, as
    # `free` shows it; CPU busy above the threshold over every interval of the window.
    "resource_checks": {"type": "bool", "default": True},
    "memory_warning_percent": {"type": "int", "default": 80},
    "memory_critical_percent": {"type": "int", "default": 90},
    "swap_warning_percent": {"type": "int", "default": 50},
    "swap_critical_percent": {"type": "int", "default": 80},
    "cpu_warning_percent": {"type": "int", "default": 80},
    "cpu_window_seconds": {"type": "int", "default": 300},
    # Each container of the Compose projects against its own memory limit.
    "container_memory_warning_percent": {"type": "int", "default": 80},
    "container_memory_critical_percent": {"type": "int", "default": 90},
    # TLS certificates (health_certs.py), checked once per interval.
    "certificate_warning_days": {"type": "int", "default": 21},
    "certificate_critical_days": {"type": "int", "default": 7},
    "certificate_interval_seconds": {"type": "int", "default": 86400},
    # What is checked; each entry is checked by its own validator.
    "endpoints": {"type": "list", "elements": "dict", "default": []},
    "compose_projects": {"type": "list", "elements": "raw", "default": []},
    "commands": {"type": "list", "elements": "dict", "default": []},
    "certificates": {"type": "list", "elements": "dict", "default": []},
}
# Threshold pairs: (warning, critical, highest value allowed).
THRESHOLD_PAIRS = (
    ("memory_warning_percent", "memory_critical_percent", 100),
    ("swap_warning_percent", "swap_critical_percent", 100),
    ("container_memory_warning_percent", "container_memory_critical_percent", 100),
)
# One endpoint's settings; the role's health_monitor_<name> variables are their defaults.
ENDPOINT_OPTIONS = {
    "name": {"type": "str"}, "url": {"type": "str"}, "host_header": {"type": "str", "default": ""},
    "expected_status": {"type": "int", "default": 200}, "expected_text": {"type": "str", "default": ""},
    "timeout_seconds": {"type": "float", "default": 5}, "latency_limit_ms": {"type": "int", "default": 500},
    "validate_certs": {"type": "bool", "default": True},
}


# --------------------------------------------------------------------------- config

def _positive_number(value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise OpsError("%s must be a positive number, got %r; fix it in the health monitor "
                       "settings" % (where, value))


def validate_endpoint(raw, index):
    """Return one endpoint with defaults filled in; raise ``OpsError`` naming the bad field."""
    where = "endpoints[%d]" % index
    if not isinstance(raw, dict):
        raise OpsError("%s must be a mapping with name and url, got %r" % (where, raw))
    endpoint = check_config(ENDPOINT_OPTIONS, raw, where, "has unknown keys %s; known keys: %s")
    name = endpoint["name"]
    if name is None or not _NAME_RE.match(name):
        raise OpsError("%s.name must be a short name of letters, digits, '.', '_' or '-', "
                       "got %r" % (where, name))
    url = endpoint["url"]
    if url is None or not url.startswith(("http://", "https://")):
        raise OpsError("%s.url must start with http:// or https://, got %r" % (
            where, display_url(url) if url else url))
    if not 100 <= endpoint["expected_status"] <= 599:
        raise OpsError("%s.expected_status must be an HTTP status (100-599), got %r" % (
            where, endpoint["expected_status"]))
    _positive_number(endpoint["timeout_seconds"], where + ".timeout_seconds")
    _positive_number(endpoint["latency_limit_ms"], where + ".latency_limit_ms")
    return endpoint


def validate_project(raw, index):
    """Return one Compose project as ``{"name", "services"}``; a bare string is a name."""
    where = "compose_projects[%d]" % index
    if isinstance(raw, str):
        raw = {"name": raw}
    if not isinstance(raw, dict) or set(raw) - {"name", "services"}:
        raise OpsError("%s must be a project name or a mapping with name and optional "
                       "services, got %r" % (where, raw))
    name = raw.get("name")
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise OpsError("%s.name must be a Compose project name, got %r" % (where, name))
    services = raw.get("services") or []
    if not isinstance(services, list) or not all(isinstance(s, str) and s for s in services):
        raise OpsError("%s.services must be a list of service names" % where)
    return {"name": name, "services": list(services)}


def validate_config(data):
    """Check a parsed health monitor config; return it with every default filled in.

    Keys starting with ``_`` are comments (the role writes ``_managed``). Raises
    ``OpsError`` saying which key is wrong and what it should be.
    """
    config = check_config(OPTIONS, data, unknown="unknown keys in the health monitor config: %s; known keys: %s")
    for key in ("failures_before_alert", "docker_timeout_seconds", "restart_window_seconds",
                "restart_threshold", "cpu_window_seconds", "certificate_interval_seconds",
                "certificate_warning_days", "certificate_critical_days"):
        _positive_number(config[key], key)
    if config["cooldown_seconds"] < 0:
        raise OpsError("cooldown_seconds must be 0 or more seconds, got %r" % (config["cooldown_seconds"],))
    if not all(item.strip("/") for item in config["oneshot_services"]):
        raise OpsError("oneshot_services must be a list of service names (service or "
                       "project/service), got %r" % (config["oneshot_services"],))
    _validate_resources(config)
    config["endpoints"] = [validate_endpoint(e, i) for i, e in enumerate(config["endpoints"])]
    config["compose_projects"] = [validate_project(p, i) for i, p in enumerate(config["compose_projects"])]
    if config["commands"]:  # the command and certificate code is imported only when configured
        from . import health_commands
        config["commands"] = [health_commands.validate_command(c, i)
                              for i, c in enumerate(config["commands"])]
    if config["certificates"]:
        from . import health_certs
        config["certificates"] = [health_certs.validate_certificate(c, i)
                                  for i, c in enumerate(config["certificates"])]
    for kind, items in (("endpoint", config["endpoints"]),
                        ("compose project", config["compose_projects"]),
                        ("command", config["commands"]),
                        ("certificate", config["certificates"])):
        names = [item["name"] for item in items]
        duplicates = sorted(set(n for n in names if names.count(n) > 1))
        if duplicates:
            raise OpsError("%s names must be unique; repeated: %s" % (
                kind, ", ".join(duplicates)))
    return config


def _validate_resources(config):
    """The resource and certificate settings: percentages in range, warnings below criticals."""
    def below(low, high):
        if not config[low] < config[high]:
            raise OpsError("%s (%s) must be below %s (%s)" % (low, config[low], high, config[high]))

    for warning, critical, top in THRESHOLD_PAIRS:
        for key in (warning, critical):
            if not 0 < config[key] <= top:
                raise OpsError("%s must be a percentage above 0 and at most %d, got %r" % (
                    key, top, config[key]))
        below(warning, critical)
    if not 0 < config["cpu_warning_percent"] < 100:
        raise OpsError("cpu_warning_percent must be a percentage between 0 and 100, got %r"
                       % (config["cpu_warning_percent"],))
    below("certificate_critical_days", "certificate_warning_days")


def load_config(path):
    """Read and validate the JSON config at ``path``; ``OpsError`` when missing or bad."""
    try:
        with open(path, encoding="utf-8") as handle:
            data = json.load(handle)
    except FileNotFoundError:
        raise OpsError("health monitor config %s does not exist; apply the "
                       "runbook.ops.health_monitor role or pass --config" % path)
    except (OSError, ValueError) as exc:
        raise OpsError("cannot read health monitor config %s: %s" % (path, exc))
    return validate_config(data)


# --------------------------------------------------------------------------- endpoints

def display_url(url):
    """``url`` without credentials, query or fragment (they may carry secrets)."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        netloc = parts.hostname or ""
        if parts.port:
            netloc = "%s:%d" % (netloc, parts.port)
    except ValueError:
        return "<unparsable URL>"
    return "%s://%s%s" % (parts.scheme, netloc, parts.path or "/")


def check_endpoint(endpoint, clock=time.monotonic):
    """Request one endpoint once and judge the answer.

    ``endpoint``: a dict from ``validate_endpoint`` (name, url, host_header,
    expected_status, expected_text, timeout_seconds, latency_limit_ms, validate_certs).
    Returns ``{"key", "kind", "name", "target", "level", "problem", "status",
    "latency_ms"}``: ``critical`` when it does not answer, answers with another status
    or without the expected text; ``warning`` when it answers right but slower than the
    latency limit; ``ok`` otherwise.
    """
    result = check_result("endpoint:" + endpoint["name"], "endpoint", endpoint["name"],
                          display_url(endpoint["url"]), status=None, latency_ms=None)
    headers = {"Host": endpoint["host_header"]} if endpoint.get("host_header") else {}
    timeout = endpoint["timeout_seconds"]
    started = clock()
    failure = None
    try:
        result["status"], body = http_get(endpoint["url"], headers=headers, timeout=timeout,
                                          read_limit=BODY_READ_LIMIT,
                                          verify_tls=endpoint["validate_certs"])
    except ProbeError as exc:
        failure = exc
    latency_ms = result["latency_ms"] = round((clock() - started) * 1000.0, 1)
    expected = endpoint["expected_status"]
    if failure is not None:
        result["level"] = "critical"
        result["problem"] = ("no answer within %s s" % number_text(timeout) if failure.reason == "timeout"
                             else failure.reason)
    elif result["status"] != expected:
        result["level"] = "critical"
        result["problem"] = "HTTP %s, expected %s" % (result["status"], expected)
        if endpoint.get("host_header"):
            result["problem"] += " (Host: %s)" % endpoint["host_header"]
    elif endpoint.get("expected_text") and endpoint["expected_text"].encode(
            "utf-8") not in body:
        result["level"] = "critical"
        result["problem"] = "answer does not contain %r" % endpoint["expected_text"]
    elif latency_ms > endpoint["latency_limit_ms"]:
        result["level"] = "warning"
        result["problem"] = "slow: %d ms (limit %d ms)" % (
            round(latency_ms), endpoint["latency_limit_ms"])
    return result


# --------------------------------------------------------------------------- containers

def describe_container(attrs):
    """Plain facts about one container from its inspect data (``container.attrs``)."""
    state = attrs.get("State") or {}
    labels = (attrs.get("Config") or {}).get("Labels") or {}
    health = (state.get("Health") or {}).get("Status") or ""
    policy = ((attrs.get("HostConfig") or {}).get("RestartPolicy") or {}).get("Name") or "no"
    return {
        "id": (attrs.get("Id") or "")[:12],
        "name": (attrs.get("Name") or "").lstrip("/"),
        "project": labels.get("com.docker.compose.project", ""),
        "service": labels.get("com.docker.compose.service", ""),
        "number": labels.get("com.docker.compose.container-number", "1"),
        "state": state.get("Status") or "unknown",
        "health": health,
        "restart_count": int(attrs.get("RestartCount") or 0),
        "exit_code": int(state.get("ExitCode") or 0),
        "oom_killed": bool(state.get("OOMKilled")),
        "started_at": state.get("StartedAt") or "",
        "finished_at": state.get("FinishedAt") or "",
        "restart_policy": policy,
        "memory_limit": int((attrs.get("HostConfig") or {}).get("Memory") or 0),
    }


def finished_oneshot(info, oneshot_services=(), required=()):
    """Whether the container is a one-shot run that is done: exited with 0 (not OOM
    killed), and its service is named in ``oneshot_services`` or has Compose's default
    ``restart: "no"`` (``HostConfig.RestartPolicy.Name`` ``no`` or empty) and is not one
    of the ``required`` services (a project's ``services``, which must run).
    """
    if info["state"] != "exited" or info["exit_code"] or info["oom_killed"]:
        return False
    names = set(oneshot_services or ())
    if info["service"] and (info["service"] in names or "%s/%s" % (info["project"], info["service"]) in names):
        return True
    return info.get("restart_policy", "no") in ("", "no") and info["service"] not in required


# Exit codes a container's main process commonly ends with (128 + n: killed by signal n).
EXIT_MEANINGS = {
    1: "application error",
    126: "command not executable",
    127: "command not found",
    130: "interrupted (SIGINT)",
    134: "aborted (SIGABRT)",
    137: "killed (SIGKILL, often out of memory)",
    139: "segfault (SIGSEGV)",
    143: "stopped (SIGTERM)",
}


def explain_exit(exit_code, oom_killed):
    """Words for an exit code, calling out 137 and the OOM killer (runbook 3.7).

    A container running again after a restart reports exit code 0 and, on some engines,
    a sticky OOMKilled: then only the OOM kill is named.
    """
    if oom_killed:
        if not exit_code:
            return "killed, out of memory (OOM)"
        return "exit code %d: killed, out of memory (OOM)" % exit_code
    meaning = EXIT_MEANINGS.get(exit_code)
    if meaning is None and 128 < exit_code < 160:
        meaning = "killed by signal %d" % (exit_code - 128)
    return ("exit code %d: %s" % (exit_code, meaning)) if meaning else "exit code %d" % exit_code


def _exit_of(item):
    """``(exit_code, oom_killed)`` kept with one restart of the history, or None."""
    if len(item) >= 4 and isinstance(item[2], int) and not isinstance(item[2], bool):
        return item[2], bool(item[3])
    return None


def count_restarts(before, info, now, window_seconds, exit_seen=None):
    """The restart history of one container, carried from run to run.

    ``before``: last run's entry ``{"id", "restart_count", "restarts": [...]}`` (or
    ``{}``); each restart item is ``[epoch, n]``, or ``[epoch, n, exit_code, oom_killed,
    finished_at]`` when the exit was known. Docker's ``RestartCount`` grown since then
    adds ``[now, growth]`` with ``exit_seen`` (``observe_exit``) when given; items older
    than ``window_seconds`` drop out. A recreated container (another id) starts a new
    history. Returns the new entry.
    """
    restarts = []
    if before.get("id") == info["id"]:
        for item in before.get("restarts") or []:
            try:
                when, count = float(item[0]), int(item[1])
            except (TypeError, ValueError, IndexError):
                continue
            if when > now - window_seconds:
                known = _exit_of(item)
                detail = str(item[4]) if len(item) > 4 else ""
                restarts.append([when, count] + ([known[0], known[1], detail] if known else []))
        growth = restarts_since(before, info)
        if growth:
            restarts.append([now, growth] + (list(exit_seen) if exit_seen else []))
    return {"id": info["id"], "restart_count": info["restart_count"], "restarts": restarts}


def restarts_since(before, info):
    """How many times the container restarted since the run that left ``before``."""
    last_count = before.get("restart_count")
    if before.get("id") != info["id"] or not isinstance(last_count, int):
        return 0
    return max(0, info["restart_count"] - last_count)


def last_exit(client, container_id, since, until):
    """``(exit_code, oom_killed, epoch)`` of the container's last death in [since, until],
    from the engine's ``die`` events (``oom`` comes just before the ``die`` of an OOM
    kill). By id, not name: a container recreated under the same name is another one.
    ``None`` when the engine does not say: it keeps only its last 256 events, host-wide,
    so on a busy engine they are gone within minutes; any error.
    """
    found = None
    oom = False
    try:
        # ``until`` is whole seconds: round up, or a death in this very second is missed.
        for event in client.events(since=int(since), until=int(until) + 1, decode=True,
                                   filters={"type": "container", "container": container_id,
                                            "event": ["oom", "die"]}):
            if not str(event.get("id") or "").startswith(container_id):
                continue
            if event.get("Action") == "oom":
                oom = True
            elif event.get("Action") == "die":
                code = ((event.get("Actor") or {}).get("Attributes") or {}).get("exitCode")
                found = (int(code) if str(code).isdigit() else 0, oom,
                         float(event.get("time") or 0))
                oom = False
    except Exception:  # an engine or SDK without events: the inspect data must do
        return None
    return found


def observe_exit(client, info, window_seconds):
    """``[exit_code, oom_killed, finished_at]`` of the container's latest exit, or None.

    A container that is not running (restarting, exited, dead) still has it in its
    inspect data (``State.ExitCode``, ``OOMKilled``, ``FinishedAt``). A running one has
    lost it (it reads 0 once the restart policy started it again): it is asked from the
    engine's events around ``FinishedAt``, and a ``die`` older than that exit does not
    count. Called in the run that first sees the restart, while the event is likeliest
    to still be there; the result is kept in the restart history (``count_restarts``).
    """
    finished = info.get("finished_at") or ""
    if info["state"] in ("restarting", "exited", "dead"):
        return [info["exit_code"], info["oom_killed"], finished]
    wall = time.time()  # the engine's clock, even when the check's ``now`` is injected
    finished_epoch = epoch_seconds(finished)
    since = finished_epoch - 5 if finished_epoch else wall - window_seconds
    found = last_exit(client, info["id"], since, wall)
    if found and not (finished_epoch and found[2] and found[2] < finished_epoch - 2):
        return [found[0], found[1], finished]
    if info["exit_code"] or info["oom_killed"]:  # engines that keep them while running
        return [info["exit_code"], info["oom_killed"], finished]
    return None


def explain_restarts(restarts):
    """``last exit code 139: segfault (SIGSEGV)`` for a restart history (oldest first),
    or what is known when the latest exit was not: ``last exit code unknown; earlier
    exit code 139: ...`` or ``last exit code unknown``."""
    exits = [_exit_of(item) for item in restarts]
    if exits and exits[-1]:
        return "last %s" % explain_exit(*exits[-1])
    earlier = [known for known in exits if known]
    if earlier:
        return "last exit code unknown; earlier %s" % explain_exit(*earlier[-1])
    return "last exit code unknown"


def judge_container(info, recent_restarts=0, window_seconds=3600, threshold=2,
                    restarts=None, oneshot_services=(), required=()):
    """Level and problem for one container.

    ``ok``: running, or a one-shot run that is done (``finished_oneshot``: exit 0 of a
    service with ``restart: "no"`` or named in ``oneshot_services``). ``critical``: not
    running (with its exit code), restarting (a restart loop) or unhealthy. ``warning``: running but restarted ``threshold`` times or more within
    the last ``window_seconds`` (``recent_restarts``, from ``count_restarts``), with
    the last exit code explained from the restart history ``restarts``
    (``explain_restarts``; "unknown" when nobody saw it). Health ``starting`` is not a
    failure.
    """
    exit_words = explain_exit(info["exit_code"], info["oom_killed"])
    if info["state"] == "restarting":
        return "critical", "restart loop (%s, last %s)" % (
            plural(info["restart_count"], "restart"), exit_words)
    if finished_oneshot(info, oneshot_services, required):
        return "ok", ""
    if info["state"] != "running":
        problem = "%s" % info["state"]
        if info["state"] in ("exited", "dead"):
            problem += ", " + exit_words
        return "critical", problem
    if info["health"] == "unhealthy":
        return "critical", "unhealthy (healthcheck failing)"
    if recent_restarts >= threshold:
        problem = "restarted %s in the last %s (%s)" % (
            plural(recent_restarts, "time"), format_duration(window_seconds),
            explain_restarts(restarts or []))
        return "warning", problem
    return "ok", ""


def container_key(info):
    key = "compose:%s/%s" % (info["project"], info["service"] or info["name"])
    if info["number"] not in ("", "1"):
        key += "#" + info["number"]
    return key


def list_project_containers(client, project):
    """Inspect data of every container (running or not) of a Compose project."""
    containers = client.containers.list(
        all=True, filters={"label": "com.docker.compose.project=%s" % project})
    return [c.attrs for c in containers]


def check_compose_projects(projects, restart_baseline=None, client=None, timeout=10,
                           lister=list_project_containers, now=None,
                           window_seconds=OPTIONS["restart_window_seconds"]["default"],
                           threshold=OPTIONS["restart_threshold"]["default"],
                           oneshot_services=(), memory_levels=None,
                           stats_reader=health_resources.read_container_stats):
    """Judge every container of every project; return ``(results, new_baseline)``.

    ``projects``: ``[{"name", "services"}]``. ``restart_baseline``: ``{key: entry}``
    from the last run (``count_restarts``); restarts are judged over the sliding
    ``window_seconds`` against ``threshold``, and the exit of each restart is recorded
    by the run that first sees it (``observe_exit``). A one-shot run that is done
    (``finished_oneshot``, with ``oneshot_services``) is ok. A project without containers
    and an expected service without one are critical. When the engine does not answer, one
    critical ``compose:docker`` result says so. ``memory_levels``: ``(warning, critical)``
    percentages to judge each running container with a memory limit against it
    (``container_memory_results``); ``None`` leaves memory out.
    """
    now = time.time() if now is None else now
    restart_baseline = restart_baseline or {}
    results = []
    baseline = {}
    if not projects:
        return results, baseline
    try:
        if client is None:
            client = connect(timeout=timeout, high_level=True)[0]
        listing = [(p, [describe_container(a) for a in lister(client, p["name"])])
                   for p in projects]
    except Exception as exc:  # no engine (OpsError), or SDK/HTTP errors while listing
        problem = exc.message if isinstance(exc, OpsError) else "listing containers failed: %s" % str(exc)[:200]
        return [check_result("compose:docker", "compose", "docker engine", "docker", "critical", problem)], dict(
            restart_baseline)
    for project, infos in listing:
        name = project["name"]
        if not infos:
            results.append(check_result("compose:" + name, "compose", name, name, "critical",
                                        "no containers: project %s is not up" % name))
            continue
        seen = set()
        for info in sorted(infos, key=lambda i: (i["service"], i["number"], i["name"])):
            key = container_key(info)
            seen.add(info["service"])
            before = restart_baseline.get(key) or {}
            exit_seen = (observe_exit(client, info, window_seconds)
                         if restarts_since(before, info) else None)
            baseline[key] = count_restarts(before, info, now, window_seconds, exit_seen)
            history = baseline[key]["restarts"]
            recent = sum(item[1] for item in history)
            level, problem = judge_container(info, recent, window_seconds, threshold, history,
                                             oneshot_services, project["services"])
            result = check_result(key, "compose", "%s/%s" % (name, info["service"] or info["name"]), info["name"],
                                  level, problem, recent_restarts=recent,
                                  **{k: info[k] for k in ("state", "health", "restart_count", "exit_code", "oom_killed")})
            results.append(result)
            if memory_levels:
                results.extend(container_memory_results(client, info, key, result["name"],
                                                        memory_levels, stats_reader))
        for service in project["services"]:
            if service not in seen:
                results.append(check_result("compose:%s/%s" % (name, service), "compose",
                                            "%s/%s" % (name, service), service, "critical",
                                            "no container for service %s" % service))
    return results, baseline


def container_memory_results(client, info, key, name, memory_levels, stats_reader):
    """``[result]`` for a running container with a memory limit, judged as ``docker
    stats`` shows it (``health_resources``); ``[]`` for others, and when its stats cannot
    be read (it stopped meanwhile: its state is judged already)."""
    if info["state"] != "running" or info.get("memory_limit", 0) <= 0:
        return []
    try:
        figures = health_resources.container_memory_usage(stats_reader(client, info["id"]))
    except Exception:  # the SDK raises many types; the container's state row stands
        return []
    if figures is None:
        return []
    return [health_resources.container_memory_check("container-memory:" + key.split(":", 1)[1], name,
                                                    *figures, *memory_levels)]


# --------------------------------------------------------------------------- failures

def format_duration(seconds):
    """``45 s``, ``12 min``, ``2 h 5 min``, ``3 d 4 h``."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return "%d s" % seconds
    minutes = seconds // 60
    if minutes < 60:
        return "%d min" % minutes
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return ("%d h %d min" % (hours, minutes)) if minutes else "%d h" % hours
    days, hours = divmod(hours, 24)
    return ("%d d %d h" % (days, hours)) if hours else "%d d" % days


def alert_text(result, since, now):
    """Text for a bad check; ``alerts.format_alert`` puts the icon, host and level first.

    Delivered as ``🚨 HOST CRITICAL: health check failed (api: HTTP 404, expected 200)``.
    """
    word = "failed" if result["level"] == "critical" else "degraded"
    text = "health check %s (%s: %s)" % (word, result["name"], result["problem"])
    if now - since >= 60:
        text += ", for %s" % format_duration(now - since)
    return text


def recovery_text(name, since, now):
    """Text for a check that is good again: ``✅ HOST recovered: api is back after 12 min``."""
    return "%s is back after %s" % (name, format_duration(now - since))


def track_failures(previous, results, now, failures_before_alert):
    """Count consecutive failures per check and decide which alerts to hand to notify.

    ``previous``: ``{key: {"failures", "since", "alerted", "level", "problem"}}`` from the
    last run. Returns ``(checks, actions)``: the new per-key state (only keys that are
    failing now) and ``[{"key", "level", "text"}]`` for ``alerts.notify``. A bad check
    reaches notify from its ``failures_before_alert``-th bad run in a row on (notify
    holds repeats back for the cooldown); a check that comes back after it was alerted
    gets one ``ok`` action with the downtime, counted from its first bad run. A check
    that fails fewer times than that in a row and recovers stays silent.
    """
    checks = {}
    actions = []
    seen = set(r["key"] for r in results)
    # checks that vanished from the config or the engine recover like checks that are ok
    gone = [{"key": key, "level": "ok", "name": before.get("name", key)}
            for key, before in previous.items() if key not in seen]
    for result in list(results) + gone:
        key = result["key"]
        before = previous.get(key) or {}
        if result["level"] == "ok":
            if before.get("alerted"):
                actions.append({"key": key, "level": "ok",
                                "text": recovery_text(result["name"],
                                                      before.get("since", now), now)})
            continue
        entry = {
            "failures": int(before.get("failures", 0)) + 1,
            "since": before.get("since", now),
            "alerted": bool(before.get("alerted")),
            "level": result["level"],
            "problem": result["problem"],
            "name": result["name"],
        }
        if entry["failures"] >= failures_before_alert:
            entry["alerted"] = True
            actions.append({"key": key, "level": result["level"],
                            "text": alert_text(result, entry["since"], now)})
        checks[key] = entry
    return checks, actions


# --------------------------------------------------------------------------- the job

def run_checks(config, restart_baseline=None, docker=None, now=None):
    """The endpoint and container checks of ``config`` once (each limited container's
    memory too, with ``resource_checks``); return ``(results, restart_baseline)``."""
    results = [check_endpoint(endpoint) for endpoint in config["endpoints"]]
    memory_levels = ((config["container_memory_warning_percent"],
                      config["container_memory_critical_percent"])
                     if config.get("resource_checks", True) else None)
    compose_results, baseline = check_compose_projects(
        config["compose_projects"], restart_baseline, client=docker,
        timeout=config["docker_timeout_seconds"], now=now,
        window_seconds=config["restart_window_seconds"],
        threshold=config["restart_threshold"],
        oneshot_services=config.get("oneshot_services") or (),
        memory_levels=memory_levels)
    results.extend(compose_results)
    return results, baseline


def run_host_checks(config, cpu_history, now, meminfo_path=health_resources.MEMINFO_PATH,
                    stat_path=health_resources.STAT_PATH):
    """Memory, swap and CPU of the host; return ``(results, cpu_history)``.

    ``cpu_history``: last run's (``health_resources.update_cpu_history``). Nothing when
    ``resource_checks`` is off. A ``/proc`` file that cannot be read is a warning.
    """
    if not config.get("resource_checks", True):
        return [], {}
    results = []
    try:
        meminfo = health_resources.read_meminfo(meminfo_path)
    except (OSError, ValueError) as exc:
        results.append(check_result("memory:ram", "memory", "memory", "ram", "warning",
                                    "cannot read %s: %s" % (meminfo_path, exc)))
    else:
        results.append(health_resources.memory_check(
            meminfo, config["memory_warning_percent"], config["memory_critical_percent"]))
        results.append(health_resources.swap_check(
            meminfo, config["swap_warning_percent"], config["swap_critical_percent"]))
    try:
        reading = health_resources.read_proc_stat(stat_path)
    except (OSError, ValueError) as exc:
        results.append(check_result("cpu:busy", "cpu", "cpu", "cpu", "warning",
                                    "cannot read %s: %s" % (stat_path, exc)))
        return results, cpu_history if isinstance(cpu_history, dict) else {}
    history = health_resources.update_cpu_history(cpu_history, reading, now,
                                                  config["cpu_window_seconds"])
    results.append(health_resources.judge_cpu(history, config["cpu_warning_percent"],
                                              config["cpu_window_seconds"]))
    return results, history


def run_command_checks(config, runner=None):
    """Each of ``config["commands"]`` once, one after another (``health_commands``)."""
    if not config.get("commands"):
        return []
    from . import health_commands
    return [health_commands.run_check_command(check, runner=runner)
            for check in config["commands"]]


def run_certificate_checks(config, cached, now):
    """Each certificate that is due (``health_certs.certificate_due``: daily, or at every
    run while not ok) checked, the others from ``cached`` (``{name: result}``) with their
    days left counted again; return ``(results, cache)``."""
    cached = cached if isinstance(cached, dict) else {}
    results, cache = [], {}
    if not config.get("certificates"):
        return results, cache
    from . import health_certs
    days = (config["certificate_warning_days"], config["certificate_critical_days"])
    for entry in config["certificates"]:
        before = cached.get(entry["name"])
        fresh = health_certs.certificate_due(before, entry, now, config["certificate_interval_seconds"])
        result = (health_certs.check_certificate(entry, now, *days) if fresh
                  else health_certs.refresh_cached(before, now, *days))
        results.append(dict(result, fresh=fresh))
        cache[entry["name"]] = dict(result, fresh=False)
    return results, cache


def alert_runtime(runtime, cooldown_seconds):
    """``runtime`` with this monitor's cooldown in place of the global one."""
    copy = dict(runtime)
    copy["alert"] = dict(runtime.get("alert") or {}, cooldown_seconds=cooldown_seconds)
    return copy


# What the morning check reads back from the monitor's state: the checks it cannot
# repeat by itself (the CPU needs the history, commands run as root, certificates daily).
REMEMBERED_KINDS = ("cpu", "command")


def run_health_check(config, runtime, notify=None, now=None, docker=None,
                     meminfo_path=health_resources.MEMINFO_PATH,
                     stat_path=health_resources.STAT_PATH, runner=None):
    """The health-monitor job: check, count, alert, save state; return a summary dict.

    ``runtime``: from ``runtime.load_runtime`` (host_label, state_dir, alert{...}).
    ``notify``: ``alerts.notify``-compatible callable (tests pass their own).
    ``meminfo_path``/``stat_path``: the ``/proc`` files read (a test passes files in the
    kernel's format); ``runner``: the command gateway for the command checks.
    Returns ``{"host", "results", "alerts", "failing", "state_saved"}``; ``alerts`` lists
    each action with what notify returned. Certificate alerts repeat no more often than
    ``certificate_interval_seconds`` (daily), the others after ``cooldown_seconds``.
    """
    now = time.time() if now is None else now
    host = runtime["host_label"]
    state_path = os.path.join(runtime.get("state_dir") or "/var/lib/runbook-ops", STATE_FILE)
    saved = read_json_object(state_path)
    results, baseline = run_checks(config, saved.get("restart_baseline"),
                                   docker=docker, now=now)
    host_results, cpu_history = run_host_checks(config, saved.get("cpu"), now,
                                                meminfo_path, stat_path)
    results.extend(host_results)
    results.extend(run_command_checks(config, runner))
    certificate_results, certificates = run_certificate_checks(
        config, saved.get("certificates"), now)
    results.extend(certificate_results)
    checks, actions = track_failures(saved.get("checks") or {}, results, now,
                                     config["failures_before_alert"])
    alert_rt = alert_runtime(runtime, config["cooldown_seconds"])
    certificate_rt = alert_runtime(runtime, config["certificate_interval_seconds"])
    delivered = []
    if actions and notify is None:
        from .alerts import notify  # only when there is something to say: a cheap quiet run
    for action in actions:
        outcome = notify(certificate_rt if action["key"].startswith("certificate:") else alert_rt,
                         "health:" + action["key"], action["level"], action["text"], now=now)
        delivered.append(dict(action, outcome=outcome))
    saved_ok = write_json_atomic(state_path, {
        "updated_at": now, "checks": checks, "restart_baseline": baseline,
        "cpu": cpu_history, "certificates": certificates,
        "last": {"at": now, "results": [r for r in results
                                        if r.get("kind") in REMEMBERED_KINDS]}})
    return {
        "host": host,
        "results": results,
        "alerts": delivered,
        "failing": sorted(checks),
        "state_saved": bool(saved_ok),
    }


def result_status(result):
    """``(status, detail)`` of any check result, for the job log and the morning check."""
    kind = result.get("kind")
    if kind == "command":
        from . import health_commands
        return health_commands.describe_command_result(result)
    if kind == "certificate":
        from . import health_certs
        return health_certs.describe_certificate(result)
    if kind == "endpoint":
        status = "HTTP %s" % result["status"] if result["status"] is not None else "down"
        latency = ("%d ms" % round(result["latency_ms"])
                   if result["latency_ms"] is not None else "-")
        return status, ("%s (%s)" % (result["problem"], latency)) if result["problem"] \
            else latency
    return result.get("status", result["level"]), result.get("problem") or result.get(
        "detail", "")


def format_check_lines(summary):
    """Human lines for the job log: one per check, then one per alert handed on."""
    lines = []
    for result in summary["results"]:
        detail = result["problem"]
        if result["kind"] == "endpoint":  # no problem: it answered, with a status
            status, detail = result_status(result)
            detail = detail if result["problem"] else "%s in %s" % (status, detail)
        elif result["kind"] == "compose":
            if not detail:
                detail = result.get("state", "")
                if result.get("health"):
                    detail += " (%s)" % result["health"]
        else:
            status, detail = result_status(result)
            detail = ("%s: %s" % (status, detail)) if detail and detail != status else status
        lines.append("%-8s %-30s %s" % (result["level"], result["name"], detail))
    for action in summary["alerts"]:
        lines.append("alert    %-30s %s -> %s" % (
            action["key"], action["level"], alert_outcome(action.get("outcome"))))
    if not summary["state_saved"]:
        lines.append("warning: could not save health state (disk full?); "
                     "failure counts start over next run")
    return lines


# --------------------------------------------------------------------------- report

def worst_level(levels):
    """The most severe of ``levels`` (``ok`` for none)."""
    return LEVELS[max((LEVELS.index(level) for level in levels if level in LEVELS), default=0)]


def read_memory(meminfo_path="/proc/meminfo"):
    """Host memory from ``/proc/meminfo``: totals in bytes and the used percentage (used =
    MemTotal - MemAvailable, as ``free`` shows it)."""
    values = health_resources.read_meminfo(meminfo_path)
    memory = health_resources.memory_check(values, 101, 101)
    swap = health_resources.swap_check(values, 101, 101)
    return {
        "total_bytes": memory["total_bytes"],
        "available_bytes": memory["available_bytes"],
        "used_percent": memory["used_percent"],
        "swap_total_bytes": swap["total_bytes"],
        "swap_used_bytes": swap["used_bytes"],
    }


def count_log_errors(text, last=5, width=240):
    """Count lines matching error|exception|traceback|critical; keep the ``last`` ones."""
    matches = [line.strip()[:width] for line in text.splitlines()
               if LOG_ERROR_PATTERN.search(line)]
    return {"count": len(matches), "last": matches[-last:] if last else []}


def container_log_errors(container, since_seconds, now=None, last=5):
    """Error lines of one container's logs over the last ``since_seconds``; ``{"count":
    None, "last": [], "error"}`` when they cannot be read."""
    now = time.time() if now is None else now
    try:
        raw = container.logs(stdout=True, stderr=True, since=int(now - since_seconds),
                             timestamps=False)
        return count_log_errors(raw.decode("utf-8", "replace"), last=last)
    except Exception as exc:
        return {"count": None, "last": [], "error": str(exc)[:200]}


def read_jobs(state_dir):
    """Each installed job's last result from ``<state_dir>/jobs/*.json`` (jobs.py)."""
    jobs_dir = os.path.join(state_dir, "jobs")
    jobs = []
    try:
        names = sorted(n for n in os.listdir(jobs_dir) if n.endswith(".json"))
    except OSError:
        return jobs
    for name in names:
        try:
            with open(os.path.join(jobs_dir, name), encoding="utf-8") as handle:
                data = json.load(handle)
        except (OSError, ValueError):
            data = {}
        jobs.append(describe_job(name[:-5], data if isinstance(data, dict) else {}))
    return jobs


def describe_job(name, data):
    """A job's last run as ``{"name", "result", "rc", "finished_at", "last_error",
    "timed_out", "level"}`` from the record the wrapper writes (``jobs.JOB_RECORD_KEYS``);
    ``last_error`` is the line of a failed run's output that says why."""
    rc = data.get("rc")
    timed_out = bool(data.get("timed_out"))
    failed = rc not in (None, 0) or timed_out
    result = "unknown" if rc is None else ("failed" if failed else "ok")
    return {"name": name, "result": result, "rc": rc, "finished_at": data.get("finished"),
            "last_error": str(data.get("last_error") or "") if failed else "",
            "timed_out": timed_out,
            "level": "critical" if failed else ("ok" if rc == 0 else "warning")}


def job_detail(job):
    """``rc 2 at 2026-01-16 03:00:12 UTC: Fatal: unable to open repository`` (the reason
    of a failed run when its record has one)."""
    detail = "%src %s at %s" % (
        "timed out, " if job.get("timed_out") else "", job["rc"],
        format_timestamp(job["finished_at"]))
    if job.get("level") == "critical":
        detail += ": %s" % (job.get("last_error") or "no output recorded; see /var/log/%s.log"
                            % job["name"])[:200]
    return detail


def read_backup_freshness(cli="/usr/local/bin/runbook-ops", runner=None):
    """The newest backup's age and size from ``runbook-ops backup freshness --json``.

    Returns ``{"available": bool, "age_hours", "size_bytes", "newest", "level",
    "detail"}``; ``available`` is False (and values ``None``) when the backup role is not
    installed or the command fails, so the report says "unknown".
    """
    unknown = {"available": False, "age_hours": None, "size_bytes": None, "newest": None,
               "level": "warning", "detail": "unknown (no backup freshness check installed)"}
    if runner is None:
        from .runner import run_command as runner
    if not os.path.exists(cli):
        return unknown
    try:
        done = runner([cli, "backup", "freshness", "--json"], timeout=120)
    except OpsError:
        return unknown
    try:
        data = json.loads(done.stdout or "")
    except ValueError:
        data = None
    if not isinstance(data, dict):
        if done.rc == 2 or done.rc is None:
            return unknown
        return dict(unknown, detail="unknown (backup freshness exited %s)" % done.rc)
    # the schema of backup_cli's freshness result (backup.FRESHNESS_KEYS)
    age_hours, size = data.get("age_hours"), data.get("size_bytes")
    level = data["level"] if data.get("level") in LEVELS else "critical"
    if data.get("error"):
        detail = "cannot read the backups: %s" % str(data["error"])[:160]
    elif age_hours is None:
        detail = ("no backup yet, the first scheduled run is still due" if level == "warning"
                  else "no backup found")
    else:
        detail = "newest %s" % format_timestamp(data.get("newest") or "?")
        if data.get("max_age_hours") is not None:
            detail += " (limit %s h)" % data["max_age_hours"]
    detail += ", size %s" % (format_bytes(size) if size is not None else "unknown")
    return {"available": True,
            "age_hours": None if age_hours is None else round(float(age_hours), 1),
            "size_bytes": size, "newest": data.get("newest"), "level": level,
            "detail": detail}


def build_report(config, runtime, since_hours=24, log_lines=5, memory_warning_percent=None,
                 memory_critical_percent=None, docker=None, backup=None,
                 meminfo_path="/proc/meminfo", now=None):
    """The morning check of one host as plain data, rows with a level each.

    ``config``: a validated health monitor config (endpoints to request, Compose projects
    whose containers are judged: ``report_containers``; the resource thresholds).
    ``memory_warning_percent``/``memory_critical_percent``: other thresholds for the
    memory row than the monitor's (``None``: the monitor's). ``docker``: a Docker SDK
    client, or ``None`` to connect. ``backup``: a dict from ``read_backup_freshness``
    (``None`` runs it). The CPU, command and certificate rows are the monitor's last
    results from its state (``monitor_rows``).
    Returns ``{"host", "level", "rows", "containers", "endpoints", "memory", "logs",
    "backup", "jobs", "counts", "monitor"}``; each row is ``{"section", "name", "status",
    "detail", "level"}``.
    """
    now = time.time() if now is None else now
    rows, containers, logs = report_containers(config, docker, since_hours, log_lines, now)
    endpoints = [check_endpoint(endpoint) for endpoint in config.get("endpoints") or []]
    rows.extend(_row("endpoint", result["name"], *result_status(result), result["level"]) for result in endpoints)
    warning = (config["memory_warning_percent"] if memory_warning_percent is None
               else memory_warning_percent)
    critical = (config["memory_critical_percent"] if memory_critical_percent is None
                else memory_critical_percent)
    memory = read_memory(meminfo_path)
    values = health_resources.read_meminfo(meminfo_path)
    ram = health_resources.memory_check(values, warning, critical)
    memory["level"] = ram["level"]
    rows.append(_row("memory", "ram", ram["status"], ram["detail"], ram["level"]))
    if config.get("resource_checks", True):
        swap = health_resources.swap_check(values, config["swap_warning_percent"],
                                           config["swap_critical_percent"])
        rows.append(_row("memory", "swap", *result_status(swap), swap["level"]))
    state_dir = runtime.get("state_dir") or "/var/lib/runbook-ops"
    monitor = read_json_object(os.path.join(state_dir, STATE_FILE))  # the health monitor's state
    rows.extend(monitor_rows(config, monitor, now))
    if backup is None:
        backup = read_backup_freshness()
    rows.append(_row("backup", "newest", "age %s" % (
        format_duration(backup["age_hours"] * 3600) if backup.get("age_hours") is not None
        else "unknown"), backup["detail"], backup["level"]))
    jobs = read_jobs(state_dir)
    for job in jobs:
        rows.append(_row("job", job["name"], job["result"], job_detail(job), job["level"]))
    counts = {level: sum(1 for r in rows if r["level"] == level) for level in LEVELS}
    return {
        "host": runtime["host_label"],
        "level": worst_level(r["level"] for r in rows),
        "rows": rows,
        "counts": counts,
        "containers": containers,
        "endpoints": endpoints,
        "memory": memory,
        "logs": logs,
        "backup": backup,
        "jobs": jobs,
        "monitor": {"updated_at": monitor.get("updated_at")},
    }


# A monitor result older than this is stale in the morning check: the job stopped running.
STALE_SECONDS = 3600


def monitor_rows(config, saved, now):
    """The morning check's rows for what only the monitor measures: CPU over its window,
    each command's and each certificate's last result (days left counted as of ``now``).

    A configured command or certificate without a result, or a result older than
    ``STALE_SECONDS``, is a warning: the monitor is not running.
    """
    rows = []
    last = saved.get("last") if isinstance(saved.get("last"), dict) else {}
    at = last.get("at") if isinstance(last.get("at"), (int, float)) else None
    by_key = {r.get("key"): r for r in last.get("results") or [] if isinstance(r, dict)}
    stale = at is None or now - at > STALE_SECONDS
    age = ("no result from the health monitor yet" if at is None else
           "last monitor run %s ago" % format_duration(now - at))

    def remembered(section, name, result):
        if result is None or stale:
            rows.append(_row(section, name, "unknown", age, "warning"))
            return
        rows.append(_row(section, name, *result_status(result), result["level"]))

    if config.get("resource_checks", True):
        cpu = by_key.get("cpu:busy")
        if cpu is None and at is None:
            rows.append(_row("cpu", "busy", "unknown",
                             "not measured: the health monitor keeps the CPU history", "ok"))
        else:
            remembered("cpu", "busy", cpu)
    for check in config.get("commands") or []:
        remembered("command", check["name"], by_key.get("command:" + check["name"]))
    rows.extend(_certificate_rows(config, saved, now))
    return rows


def _certificate_rows(config, saved, now):
    """The morning check's row per certificate: its last check, days left as of ``now``."""
    if not config.get("certificates"):
        return []
    from . import health_certs

    rows = []
    cached = saved.get("certificates") if isinstance(saved.get("certificates"), dict) else {}
    for entry in config["certificates"]:
        before = cached.get(entry["name"])
        if not isinstance(before, dict) or before.get("signature") != health_certs.signature(entry):
            rows.append(_row("cert", entry["name"], "unknown",
                             "not checked yet by the health monitor", "warning"))
            continue
        result = health_certs.refresh_cached(
            before, now, config["certificate_warning_days"], config["certificate_critical_days"])
        rows.append(_row("cert", entry["name"], *health_certs.describe_certificate(result), result["level"]))
    return rows


def report_containers(config, docker, since_hours, log_lines, now):
    """The container rows of the morning check: ``(rows, containers, logs)``.

    Only containers of the configured Compose projects are judged (a one-shot run that
    is done is ok, as in the monitor); the others are named in one ``ok`` row, not
    judged. A host without a Docker engine gets one row: ``ok`` when no project is
    configured, ``warning`` when one is.
    """
    rows, containers, logs = [], [], []
    projects = dict((p["name"], p) for p in config.get("compose_projects") or [])
    try:
        client = docker if docker is not None else connect(
            high_level=True, timeout=config.get("docker_timeout_seconds", 10))[0]
    except OpsError as exc:
        if projects or docker_installed():
            return [_row("containers", "docker", "unavailable", exc.message, "warning")], [], []
        return [_row("containers", "docker", "not installed",
                     "no Docker engine on this host; no container checks", "ok")], [], []
    try:
        listed = client.containers.list(all=True)
    except Exception as exc:
        return [_row("containers", "docker", "error", str(exc)[:200], "critical")], [], []
    ignored = []
    for container in sorted(listed, key=lambda c: c.name):
        info = describe_container(container.attrs)
        project = projects.get(info["project"])
        if project is None:
            ignored.append(info["name"])
            continue
        level, problem = judge_container(
            info, oneshot_services=config.get("oneshot_services") or (),
            required=project["services"])
        if level == "ok" and info["restart_count"]:
            level, problem = "warning", "%s (last %s)" % (
                plural(info["restart_count"], "restart"),
                explain_exit(info["exit_code"], info["oom_killed"]))
        if level == "ok" and info["state"] == "exited":
            problem = "one-shot run done, exit code 0"
        info.update(level=level, problem=problem)
        containers.append(info)
        status = info["state"] + (" (%s)" % info["health"] if info["health"] else "")
        rows.append(_row("container", info["name"], status,
                         problem or plural(info["restart_count"], "restart"), level))
        if config.get("resource_checks", True):
            for memory in container_memory_results(
                    client, info, container_key(info), info["name"],
                    (config["container_memory_warning_percent"],
                     config["container_memory_critical_percent"]),
                    health_resources.read_container_stats):
                rows.append(_row("memory", info["name"], *result_status(memory), memory["level"]))
        errors = container_log_errors(container, since_hours * 3600, now, log_lines)
        errors["container"] = info["name"]
        logs.append(errors)
        if errors["count"]:
            rows.append(_row("logs", info["name"], plural(errors["count"], "error"),
                             "last: " + errors["last"][-1][:120], "warning"))
    if ignored:
        rows.append(_row("containers", "not monitored", "%d outside projects" % len(ignored),
                         "not judged (not in health_monitor_compose_projects): %s"
                         % ", ".join(ignored[:10]) + (", ..." if len(ignored) > 10 else ""),
                         "ok"))
    return rows, containers, logs


def docker_installed(socket_path="/var/run/docker.sock"):
    """Whether this host has a Docker engine: its socket, or ``DOCKER_HOST`` set."""
    return bool(os.environ.get("DOCKER_HOST")) or os.path.exists(socket_path)


def _row(section, name, status, detail, level):
    return {"section": section, "name": name, "status": status, "detail": detail,
            "level": level}


def format_report_table(report):
    """The report as a text table, one line per row, worst rows flagged with ``!!``/``!``."""
    marks = {"ok": "  ", "warning": "! ", "critical": "!!"}
    lines = ["%s  morning check: %s (%d critical, %d warning)" % (
        report["host"], report["level"].upper(), report["counts"]["critical"],
        report["counts"]["warning"]),
        "   %-10s %-28s %-22s %s" % ("SECTION", "NAME", "STATUS", "DETAIL")]
    for row in report["rows"]:
        lines.append("%s %-10s %-28s %-22s %s" % (
            marks.get(row["level"], "  "), row["section"], row["name"][:28],
            row["status"][:22], row["detail"]))
    return lines

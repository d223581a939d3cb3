# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Env-synced force-recreate for a Docker Compose project (the ".env desync" incident).

Control flow of ``sync_compose_env``::

    project dir -> compose command (+ --profile) -> `compose config --format json`, its `$$` undone
      (what compose resolves now) -> the host's fingerprint key
      -> running containers of the project (Docker API: Config.Env, labels, Created, image)
      -> analyse(): per service, drifted keys and changed secrets:/configs: files; inconsistent keys
      -> check mode / nothing to do: report
      -> `compose up -d --force-recreate --no-deps SERVICES` -> wait running (+ healthy)
      -> analyse() again: the drift must be gone -> state file (hashes only) -> result

Rules (also in the module documentation):

* Only keys compose sets count. The expected environment of a container is its image's
  ``Config.Env`` overlaid with the service's resolved ``environment`` (``env_file`` contents
  and ``${VAR}`` interpolation included). Compose 2.x prints that configuration with every
  ``$`` doubled (so the output is a valid compose file again); the container holds one, so
  ``unescape_dollars`` halves every ``$$`` of the output before anything is compared.
  A key compose sets that the container lacks is *added*; a different value is *changed*;
  a key the container holds that compose no longer sets and that the image does not
  provide with that value is *removed*. Image ENV keys never count, nor the runtime keys in
  ``RUNTIME_KEYS``.
* Compose's config hash does not cover the *content* of ``secrets:``/``configs:`` files.
  A state file per project (``<state_dir>/compose-env-sync/<project>.json``, mode 0600,
  keyed digests only, with the id of the key) records the content digests and container
  ids after each successful sync. A file counts as changed when its digest differs from
  the one recorded for the same containers under the same key; without such a record,
  when it was modified after the oldest of the service's containers was created.
* ``consistent_keys`` are compared in the resolved configuration (what a recreate gives):
  running containers that disagree are drift and a sync fixes them; a configuration that
  disagrees cannot be fixed by recreating, so it fails before anything is recreated (or
  warns, with ``on_inconsistent="warn"``).
* Only running (or restarting) containers are compared and recreated: a stopped one-shot
  service (migrations) is reported in ``not_running`` and left alone. Services of profiles
  that are not active (``profiles``) are not in the configuration: their running containers
  are named in a warning, never compared or recreated.
* No value ever leaves this module: results carry key names and fingerprints (HMAC-SHA256
  under the host's key, ``hostkey.py``) of the keys that drifted or differ between services
  only; compose output quoted in errors is redacted.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shlex
import time
from datetime import datetime, timezone

from .errors import OpsError
from .hostkey import FINGERPRINT_LENGTH, UNSET, fingerprint, host_key, key_id, keyed_hash
from .runner import run_command
from .state import read_json, write_json_atomic

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_ONEOFF = "com.docker.compose.oneoff"

#: Keys Docker or its clients put into Config.Env on their own; never "removed" drift.
RUNTIME_KEYS = frozenset(("PATH", "HOSTNAME", "HOME", "TERM"))
#: Container states whose environment is compared and that a sync may recreate.
ACTIVE_STATES = frozenset(("running", "restarting"))
DEFAULT_STATE_DIR = "/var/lib/runbook-ops"
#: 2: keyed file digests and ``key_id``; 1 (read only): plain sha256 digests.
STATE_VERSION = 2
#: Values shorter than this are not redacted from quoted compose output ("1", "yes").
REDACT_MIN_LENGTH = 4
UP_TIMEOUT_SECONDS = 900


# --------------------------------------------------------------------------- values


_DOLLAR_RUNS = re.compile(r"\$+")


def unescape_dollars(value):
    """Undo the escaping of ``compose config``: with interpolation on, Compose 2.0.0 and later
    double every ``$`` byte of the printed configuration, keys and values alike, so the exact
    inverse halves every ``$$`` in every string. Raises ValueError when a string holds an odd
    run of ``$``, which escaped output never does (a compose that did not escape)."""
    if isinstance(value, str):
        if "$" not in value:
            return value
        if any(len(run) % 2 for run in _DOLLAR_RUNS.findall(value)):
            raise ValueError("odd run of $")
        return value.replace("$$", "$")
    if isinstance(value, list):
        return [unescape_dollars(item) for item in value]
    if isinstance(value, dict):
        return {unescape_dollars(k): unescape_dollars(v) for k, v in value.items()}
    return value


def parse_env_list(entries):
    """Turn Docker's ``Config.Env`` (``["K=V", "K"]``) into ``{K: V}``; a bare ``K`` is None."""
    env = {}
    for entry in entries or ():
        key, sep, value = entry.partition("=")
        env[key] = value if sep else None
    return env


def desired_environment(service):
    """Return the environment compose resolved for a service (``config --format json``).

    Values are strings; a key declared without a value (``KEY:``) is None, which Docker
    stores as a bare ``KEY`` entry.
    """
    env = service.get("environment") or {}
    if isinstance(env, list):  # older compose versions print the list form
        env = parse_env_list(env)
    return {key: (None if value is None else str(value)) for key, value in env.items()}


def compare_environment(desired, actual, image_env):
    """Compare one container's environment with what compose sets now.

    ``desired`` is the resolved service environment, ``actual`` the container's parsed
    ``Config.Env``, ``image_env`` the parsed ``Config.Env`` of the image the container runs
    (None when the image is gone: then no key can be called *removed*).
    Returns ``{"added": [...], "removed": [...], "changed": [...]}`` with sorted key names.
    """
    added, removed, changed = [], [], []
    for key, value in desired.items():
        if key not in actual:
            added.append(key)
        elif actual[key] != value:
            changed.append(key)
    if image_env is not None:
        for key, value in actual.items():
            if key in desired or key in RUNTIME_KEYS:
                continue
            if key not in image_env or image_env[key] != value:
                removed.append(key)
    return {"added": sorted(added), "removed": sorted(removed), "changed": sorted(changed)}


def find_inconsistent(config, keys):
    """Return ``{key: [services]}`` for keys whose resolved values differ between the
    services of ``config`` that define them (a key declared without a value counts as a
    value of its own). The services listed are those that disagree with the value most
    services share; all services defining the key when no value has a majority.
    """
    result = {}
    services = config.get("services") or {}
    for key in keys or ():
        values = {}
        for name, service in services.items():
            env = desired_environment(service)
            if key in env:
                values[name] = env[key]
        if len(set(values.values())) < 2:
            continue
        counts = {}
        for value in values.values():
            counts[value] = counts.get(value, 0) + 1
        ranked = sorted(counts.values(), reverse=True)
        if ranked[0] > ranked[1]:
            majority = next(v for v, n in counts.items() if n == ranked[0])
            result[key] = sorted(n for n, v in values.items() if v != majority)
        else:
            result[key] = sorted(values)
    return result


def make_redactor(values):
    """Return a function that replaces each of ``values`` (long enough), also as compose
    quotes it with every ``$`` doubled, by ``***``."""
    values = [v for v in values if v and len(v) >= REDACT_MIN_LENGTH]
    secrets = sorted(set(values + [v.replace("$", "$$") for v in values if "$" in v]),
                     key=len, reverse=True)

    def redact(text):
        text = text or ""
        for secret in secrets:
            text = text.replace(secret, "***")
        return text

    return redact


def read_env_file_values(path):
    """Return the values of a ``KEY=VALUE`` file (for redaction only; best effort)."""
    values = []
    try:
        with open(path, encoding="utf-8", errors="replace") as handle:
            for line in handle:
                line = line.strip()
                if not line or line.startswith("#") or "=" not in line:
                    continue
                value = line.split("=", 1)[1].strip()
                values.append(value)
                if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
                    values.append(value[1:-1])
    except OSError:
        pass
    return values


# --------------------------------------------------------------------------- files


def referenced_files(config, service_name):
    """Return ``{"secret:NAME"|"config:NAME": absolute path}`` for the file-backed
    ``secrets:``/``configs:`` a service references (inline ``content:``, ``environment:``
    and external ones are covered by compose's own config hash or not by files at all).
    """
    service = (config.get("services") or {}).get(service_name) or {}
    result = {}
    for kind, section in (("secret", "secrets"), ("config", "configs")):
        top = config.get(section) or {}
        for ref in service.get(section) or ():
            source = ref if isinstance(ref, str) else (ref or {}).get("source")
            definition = top.get(source) or {}
            path = definition.get("file")
            if path and not definition.get("external"):
                result["%s:%s" % (kind, source)] = path
    return result


def file_digest(path, hmac_key=None):
    """Return the HMAC-SHA256 hex digest under ``hmac_key`` of a file's content (of a
    directory's files, by relative name and content), or ``"missing"`` when it cannot be
    read. Without a key the plain sha256, only to compare with a version 1 state file."""
    digest = keyed_hash(hmac_key) if hmac_key is not None else hashlib.sha256()
    try:
        if os.path.isdir(path):
            for root, dirs, names in os.walk(path):
                dirs.sort()
                for name in sorted(names):
                    full = os.path.join(root, name)
                    digest.update(os.path.relpath(full, path).encode("utf-8") + b"\0")
                    digest.update(file_digest(full, hmac_key).encode("ascii") + b"\0")
            return digest.hexdigest()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 16), b""):
                digest.update(chunk)
        return digest.hexdigest()
    except OSError:
        return "missing"


def file_mtime(path):
    """Return the newest modification time of a file or of the files under a directory."""
    try:
        newest = os.stat(path).st_mtime
        if os.path.isdir(path):
            for root, _dirs, names in os.walk(path):
                for name in names:
                    newest = max(newest, os.stat(os.path.join(root, name)).st_mtime)
        return newest
    except OSError:
        return None


_DOCKER_TIME = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_docker_time(text):
    """Return epoch seconds for Docker's RFC 3339 timestamps (nanoseconds allowed)."""
    match = _DOCKER_TIME.match(text or "")
    if not match:
        raise ValueError("not a Docker timestamp: %r" % (text,))
    base, fraction, zone = match.groups()
    stamp = datetime.strptime(base, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    seconds = stamp.timestamp() + (float("0." + fraction) if fraction else 0.0)
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        seconds -= sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return seconds


def changed_files(files, digests, containers, recorded):
    """Return the sorted labels of referenced files whose content changed under the
    running containers of one service.

    ``files`` maps label to path, ``digests`` label to current digest, ``containers`` are
    the service's container inspect dicts, ``recorded`` the service's state entry (or None).
    With a record for exactly these containers, digests are compared; otherwise a file
    modified after the oldest container was created counts as changed.
    """
    if not files or not containers:
        return []
    ids = sorted(c["Id"] for c in containers)
    if recorded and sorted(recorded.get("containers") or []) == ids:
        stored = recorded.get("files") or {}
        return sorted(label for label in files if stored.get(label) != digests.get(label))
    created = min(parse_docker_time(c.get("Created")) for c in containers)
    result = []
    for label, path in files.items():
        mtime = file_mtime(path)
        if mtime is None or mtime > created:
            result.append(label)
    return sorted(result)


# --------------------------------------------------------------------------- state


def state_path(state_dir, project):
    """Return the state file of a project: ``<state_dir>/compose-env-sync/<project>.json``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", project) or "_"
    return os.path.join(state_dir, "compose-env-sync", safe + ".json")


def load_state(path):
    """Return a project's state (``{"services": {...}}``), empty when absent or unreadable."""
    data = read_json(path, default={})
    if not isinstance(data, dict) or data.get("version") not in (1, STATE_VERSION):
        return {}
    return data


def comparable_records(state, hmac_key):
    """Return ``(services, legacy)``: the per-service records of ``state`` whose file digests
    can be compared now. Version 1 records hold plain sha256 digests (``legacy``); records
    made under another key (the key file was replaced) cannot be compared at all."""
    state = state or {}
    if state.get("version") == 1:
        return state.get("services") or {}, True
    if state.get("key_id") == key_id(hmac_key):
        return state.get("services") or {}, False
    return {}, False


def save_state(path, data):
    """Write ``data`` atomically, mode 0600 in a 0700 directory; False when the disk is full.
    Raises OSError for other failures (permissions)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    return write_json_atomic(path, data, mode=0o600)


def build_state(project, project_src, analysis, previous=None):
    """Return the state document for an analysis: container ids and keyed file digests only.
    Services the analysis did not cover keep their entries from ``previous`` when those
    were made under the same key."""
    services = {}
    if (previous or {}).get("key_id") == analysis["key_id"]:
        services = dict(previous.get("services") or {})
    for name, ids in analysis["container_ids"].items():
        services[name] = {"containers": ids, "files": analysis["file_digests"].get(name, {})}
    return {"version": STATE_VERSION, "project": project, "project_src": project_src,
            "key_id": analysis["key_id"], "services": services}


# --------------------------------------------------------------------------- analysis


def group_containers(containers, project):
    """Return ``{service: [inspect, ...]}`` of a project's active, non one-off containers,
    and the sorted names of services whose containers are all inactive."""
    active, inactive = {}, set()
    for info in containers:
        labels = (info.get("Config") or {}).get("Labels") or {}
        if labels.get(LABEL_PROJECT) != project or labels.get(LABEL_ONEOFF) == "True":
            continue
        service = labels.get(LABEL_SERVICE)
        if not service:
            continue
        if ((info.get("State") or {}).get("Status")) in ACTIVE_STATES:
            active.setdefault(service, []).append(info)
        else:
            inactive.add(service)
    return active, sorted(inactive - set(active))


def analyse(config, containers, image_envs, selected, state=None, consistent_keys=(), force=False,
            show=None, *, hmac_key):
    """Compare a project's resolved config with its running containers.

    ``config`` is the parsed, unescaped ``config --format json``; ``containers`` the inspect
    dicts of the project's containers; ``image_envs`` maps image id to its parsed
    ``Config.Env`` (or None when unknown); ``selected`` the service names to consider;
    ``state`` the loaded state document; ``hmac_key`` the host's fingerprint key.
    Fingerprints cover, per service, the keys that drifted, the keys of ``inconsistent``
    it defines and the keys ``show`` (``{svc: [keys]}``) names, nothing else.
    Returns a plan (plain data, no values)::

        {"drifted": {svc: {"added", "removed", "changed", "files"}}, "inconsistent": {key: [svc]},
         "fingerprints": {svc: {key: fp}}, "desired_fingerprints": ..., "not_running": [...],
         "to_recreate": [...], "container_ids": {svc: [ids]}, "file_digests": {svc: {label: hmac}},
         "key_id": ..., "warnings": [...]}
    """
    project = config.get("name")
    services = config.get("services") or {}
    active, _inactive = group_containers(containers, project)
    records, legacy = comparable_records(state, hmac_key)
    plan = {"drifted": {}, "fingerprints": {}, "desired_fingerprints": {}, "not_running": [],
            "container_ids": {}, "file_digests": {}, "warnings": [], "key_id": key_id(hmac_key),
            "inconsistent": find_inconsistent(config, consistent_keys)}
    unknown = sorted(set(active) - set(services))
    if unknown:
        plan["warnings"].append(
            "running service%s %s of compose project %s not in the configuration compose resolves "
            "(a profile not listed in profiles, or removed from the compose file): not compared"
            % ("s" if len(unknown) > 1 else "", ", ".join(unknown), project))
    for name in selected:
        group = active.get(name)
        if not group:
            plan["not_running"].append(name)
            continue
        desired = desired_environment(services[name])
        drift = {"added": set(), "removed": set(), "changed": set()}
        current = {}
        for info in group:
            actual = parse_env_list((info.get("Config") or {}).get("Env"))
            image_env = image_envs.get(info.get("Image"))
            if image_env is None:
                plan["warnings"].append(
                    "image of %s is gone; keys no longer set by compose cannot be checked"
                    % info.get("Name", "").lstrip("/"))
            for kind, keys in compare_environment(desired, actual, image_env).items():
                drift[kind].update(keys)
            for key in actual:
                current.setdefault(key, actual[key])
        files = referenced_files(config, name)
        digests = {label: file_digest(path, hmac_key) for label, path in files.items()}
        compared = digests
        if legacy:  # a version 1 record holds plain digests: compare like with like, once
            compared = {label: file_digest(path) for label, path in files.items()}
        stale_files = changed_files(files, compared, group, records.get(name))
        plan["container_ids"][name] = sorted(c["Id"] for c in group)
        plan["file_digests"][name] = digests
        shown = set().union(*drift.values(), (show or {}).get(name) or ())
        shown.update(key for key in plan["inconsistent"] if key in desired)
        if shown:
            plan["fingerprints"][name] = {
                k: fingerprint(hmac_key, current.get(k)) for k in sorted(shown)}
            plan["desired_fingerprints"][name] = {
                k: fingerprint(hmac_key, desired.get(k)) for k in sorted(shown)}
        if any(drift.values()) or stale_files:
            entry = {kind: sorted(keys) for kind, keys in drift.items()}
            entry["files"] = stale_files
            plan["drifted"][name] = entry
    running = [name for name in selected if name in plan["container_ids"]]
    plan["to_recreate"] = running if force else sorted(plan["drifted"])
    plan["not_running"] = sorted(plan["not_running"])
    return plan


def build_diff(plan, state):
    """Return an Ansible diff (before/after) with key names and fingerprints only; a file's
    recorded digest is shown only when it was made under the same key."""
    before, after = {}, {}
    recorded = {}
    if (state or {}).get("key_id") == plan["key_id"]:
        recorded = state.get("services") or {}
    for name, entry in sorted(plan["drifted"].items()):
        keys = entry["added"] + entry["removed"] + entry["changed"]
        before[name] = {k: plan["fingerprints"][name].get(k, UNSET) for k in sorted(keys)}
        after[name] = {k: plan["desired_fingerprints"][name].get(k, UNSET) for k in sorted(keys)}
        for label in entry["files"]:
            old = ((recorded.get(name) or {}).get("files") or {}).get(label)
            before[name][label] = old[:FINGERPRINT_LENGTH] if old else "changed since container start"
            after[name][label] = plan["file_digests"][name].get(label, "missing")[:FINGERPRINT_LENGTH]
    return {"before": before, "after": after}


# --------------------------------------------------------------------------- compose & docker


def resolve_compose_command(compose_command=None, env=None):
    """Return the compose argv prefix: the given command (list or string), else
    ``docker compose`` when it answers ``version``, else ``docker-compose``."""
    if compose_command:
        if isinstance(compose_command, str):
            return shlex.split(compose_command)
        return list(compose_command)
    for candidate in (["docker", "compose"], ["docker-compose"]):
        try:
            result = run_command(candidate + ["version"], env=env, timeout=60)
        except OpsError:
            continue
        if result.ok:
            return candidate
    raise OpsError("neither `docker compose` nor `docker-compose` works on this host; install the "
                   "Docker Compose v2 plugin or set compose_command")


def compose_base(compose, project_src, files=None, env_files=None, project_name=None,
                 profiles=None):
    """Return the argv prefix selecting the project: directory, name, files, env files,
    profiles (``--profile`` replaces ``COMPOSE_PROFILES``, as on the command line)."""
    argv = list(compose) + ["--project-directory", project_src]
    if project_name:
        argv += ["--project-name", project_name]
    for name in files or ():
        argv += ["-f", name]
    for name in env_files or ():
        argv += ["--env-file", name]
    for name in profiles or ():
        argv += ["--profile", name]
    return argv


#: How compose names an env file it cannot parse; its message may quote a value from it.
_ENV_FILE_ERROR = re.compile(r"failed to (?:read|parse env_file) (/[^:\n]+):")


def load_config(base, project_src, env=None, redact=lambda text: text):
    """Run ``config --format json`` and return the parsed project with compose's ``$$``
    escaping undone; OpsError when compose cannot resolve the project (message redacted,
    also of the values of an env file compose names as broken)."""
    result = run_command(base + ["config", "--format", "json"], env=env, cwd=project_src,
                         timeout=120)
    if not result.ok:
        text = (result.stderr or "") + (result.stdout or "")
        broken = _ENV_FILE_ERROR.search(text)
        redact_file = make_redactor(read_env_file_values(broken.group(1)) if broken else [])
        lines = (result.stderr or result.stdout or "").strip().splitlines()[-3:]
        tail = redact_file(" | ".join(lines))
        if "unknown flag: --format" in text or "Usage:" in text or "no such option" in text.lower():
            raise OpsError("`%s config --format json` is not supported in %s (exit %s): %s; use "
                           "Docker Compose v2 or set compose_command" % (
                               " ".join(base[:2]), project_src, result.rc, redact(tail)))
        raise OpsError("docker compose could not resolve the project in %s (exit %s): %s; fix "
                       "the compose file or .env and check with `docker compose config`"
                       % (project_src, result.rc, redact(tail) or "no output"))
    try:
        config = json.loads(result.stdout)
    except ValueError:
        raise OpsError("`%s config --format json` printed no JSON in %s; use Docker Compose v2 "
                       "(2.x) or set compose_command" % (" ".join(base[:2]), project_src))
    if not isinstance(config, dict) or not config.get("name") or not isinstance(
            config.get("services"), dict):
        raise OpsError("the compose project in %s has no name or no services" % project_src)
    try:
        return unescape_dollars(config)
    except ValueError:
        raise OpsError("`%s config --format json` printed a single `$` in %s, so it does not escape "
                       "`$` as Docker Compose 2.0.0 and later do; values with `$` cannot be "
                       "compared; use Docker Compose v2 or set compose_command"
                       % (" ".join(base[:2]), project_src))


def connect_docker(docker_host=None):
    """Return a low-level Docker API client (python3-docker 5.x or later) that answered."""
    import docker  # pylint: disable=import-outside-toplevel
    from docker.utils import kwargs_from_env  # pylint: disable=import-outside-toplevel

    environment = dict(os.environ)
    if docker_host:
        environment["DOCKER_HOST"] = docker_host
    where = environment.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
    try:
        kwargs = kwargs_from_env(environment=environment)
        client = docker.APIClient(version="auto", timeout=60, **kwargs)
        client.ping()
    except Exception as exc:  # the SDK raises DockerException, requests errors, OSError
        reason = " ".join(str(exc).split())[:300] or type(exc).__name__
        raise OpsError("the Docker daemon at %s does not answer (%s); start it or set docker_host"
                       % (where, reason))
    return client


def inspect_project(client, project):
    """Return the inspect dicts of all containers labelled with the compose project."""
    try:
        listed = client.containers(all=True, filters={"label": ["%s=%s" % (LABEL_PROJECT, project)]})
        result = []
        for item in listed:
            try:
                result.append(client.inspect_container(item["Id"]))
            except Exception as exc:  # removed between list and inspect
                if type(exc).__name__ != "NotFound":
                    raise
        return result
    except OpsError:
        raise
    except Exception as exc:
        raise OpsError("listing the containers of compose project %s failed (%s); check the "
                       "Docker daemon" % (project, type(exc).__name__))


def image_environments(client, containers):
    """Return ``{image id: parsed Config.Env}`` for the containers' images (None if gone)."""
    result = {}
    for info in containers:
        image = info.get("Image")
        if image in result:
            continue
        try:
            result[image] = parse_env_list((client.inspect_image(image).get("Config") or {}).get("Env"))
        except Exception:
            result[image] = None
    return result


def describe_container(info):
    """Return ``(state, health, exit_code)`` of an inspect dict."""
    state = info.get("State") or {}
    health = (state.get("Health") or {}).get("Status")
    return state.get("Status", "unknown"), health, state.get("ExitCode")


def wait_for_services(client, project, services, timeout, poll_interval=1.0):
    """Wait until every container of ``services`` runs and, with a healthcheck, is healthy.

    Raises OpsError naming each service that exited, died, turned unhealthy or did not get
    there within ``timeout`` seconds, with its state and exit code.
    """
    deadline = time.monotonic() + timeout
    pending = set(services)
    while True:
        failed, waiting = {}, {}
        containers = inspect_project(client, project)
        for name in sorted(pending):
            group = [c for c in containers
                     if ((c.get("Config") or {}).get("Labels") or {}).get(LABEL_SERVICE) == name
                     and ((c.get("Config") or {}).get("Labels") or {}).get(LABEL_ONEOFF) != "True"]
            if not group:
                waiting[name] = ("missing", None, None)
                continue
            states = [describe_container(c) for c in group]
            bad = [s for s in states if s[0] in ("exited", "dead", "removing") or s[1] == "unhealthy"]
            if bad:
                failed[name] = bad[0]
            elif all(s[0] == "running" and s[1] in (None, "healthy") for s in states):
                pending.discard(name)
            else:
                waiting[name] = next(s for s in states
                                     if not (s[0] == "running" and s[1] in (None, "healthy")))
        if failed or (waiting and time.monotonic() >= deadline):
            problems = dict(failed) if failed else dict(waiting)
            raise OpsError(
                "recreated service%s did not come back: %s; see `docker compose logs %s`" % (
                    "s" if len(problems) > 1 else "",
                    "; ".join("%s is %s%s, exit code %s" % (
                        name, state, (" (health: %s)" % health) if health else "", code)
                        for name, (state, health, code) in sorted(problems.items())),
                    " ".join(sorted(problems))),
                failed_services={name: {"state": s, "health": h, "exit_code": c}
                                 for name, (s, h, c) in problems.items()})
        if not pending:
            return
        time.sleep(poll_interval)


# --------------------------------------------------------------------------- entry point


def select_services(config, services):
    """Return the selected service names (all, sorted, by default); OpsError on unknown ones."""
    known = sorted(config.get("services") or {})
    if not services:
        return known
    unknown = sorted(set(services) - set(known))
    if unknown:
        raise OpsError("unknown service%s %s in compose project %s; known: %s (services of a "
                       "profile are known when profiles lists it)" % (
                           "s" if len(unknown) > 1 else "", ", ".join(unknown), config.get("name"),
                           ", ".join(known)))
    return sorted(set(services))


def _public(plan, recreated, diff=None):
    result = {
        "drifted": plan["drifted"],
        "inconsistent": plan["inconsistent"],
        "recreated": recreated,
        "fingerprints": plan["fingerprints"],
        "not_running": plan["not_running"],
    }
    if diff is not None:
        result["diff"] = diff
    return result


def _inconsistency_message(plan, config, hmac_key):
    parts = []
    services = config.get("services") or {}
    for key in sorted(plan["inconsistent"]):
        defining = sorted(n for n, s in services.items() if key in desired_environment(s))
        parts.append("%s differs in %s; fingerprints: %s" % (
            key, ", ".join(plan["inconsistent"][key]), ", ".join(
                "%s %s" % (n, fingerprint(hmac_key, desired_environment(services[n]).get(key)))
                for n in defining)))
    return "; ".join(parts)


def sync_compose_env(project_src, files=None, env_files=None, services=None, consistent_keys=None,
                     on_inconsistent="fail", force=False, wait_timeout=120, compose_command=None,
                     docker_host=None, project_name=None, state_dir=DEFAULT_STATE_DIR,
                     check_mode=False, poll_interval=1.0, profiles=None):
    """Find services whose running containers hold a stale environment and recreate them.

    Returns ``{"changed", "drifted", "inconsistent", "recreated", "fingerprints",
    "not_running", "project", "state_file", "diff", "warnings"}`` (names and keyed
    fingerprints of drifted or inconsistent keys only). ``profiles`` activates compose
    profiles for the comparison and the recreate. Raises OpsError for a missing directory,
    an unresolvable project, an unreachable daemon, an unusable fingerprint key,
    inconsistent keys (unless ``on_inconsistent="warn"``), a failed ``up`` or a recreated
    service that does not come back.
    """
    if on_inconsistent not in ("fail", "warn"):
        raise OpsError("on_inconsistent must be fail or warn, not %r" % (on_inconsistent,))
    project_src = os.path.abspath(project_src)
    if not os.path.isdir(project_src):
        raise OpsError("project directory %s does not exist; set project_src to the directory "
                       "holding the compose file" % project_src)
    env = {"DOCKER_HOST": docker_host} if docker_host else None
    compose = resolve_compose_command(compose_command, env)
    base = compose_base(compose, project_src, files, env_files, project_name, profiles)

    env_paths = [os.path.join(project_src, p) for p in (env_files or [".env"])]
    redact = make_redactor([v for p in env_paths for v in read_env_file_values(p)])
    config = load_config(base, project_src, env, redact)
    redact = make_redactor(
        [v for p in env_paths for v in read_env_file_values(p)]
        + [v for s in config["services"].values() for v in desired_environment(s).values() if v])
    project = config["name"]
    selected = select_services(config, services)

    client = connect_docker(docker_host)
    hmac_key, warnings = host_key(state_dir, create=not check_mode)
    path = state_path(state_dir, project)
    state = load_state(path)
    containers = inspect_project(client, project)
    plan = analyse(config, containers, image_environments(client, containers), selected, state,
                   consistent_keys or (), force, hmac_key=hmac_key)
    warnings += plan["warnings"]
    diff = build_diff(plan, state)

    if plan["inconsistent"]:
        message = "inconsistent keys in compose project %s: %s; make them equal in .env / the " \
                  "compose file" % (project, _inconsistency_message(plan, config, hmac_key))
        if on_inconsistent == "fail":
            raise OpsError(message + " (nothing was recreated)", changed=False, project=project,
                           **_public(plan, []))
        warnings.append(message)

    to_recreate = plan["to_recreate"]
    result = dict(_public(plan, list(to_recreate), diff), project=project, state_file=path,
                  changed=bool(to_recreate), warnings=warnings)
    if check_mode:
        return result
    if not to_recreate:
        _write_state(path, project, project_src, plan, state, warnings)
        return result

    up = run_command(base + ["up", "-d", "--force-recreate", "--no-deps"] + list(to_recreate),
                     env=env, cwd=project_src, timeout=UP_TIMEOUT_SECONDS)
    if not up.ok:
        tail = " | ".join((up.stderr or up.stdout or "").strip().splitlines()[-3:])
        raise OpsError("`docker compose up -d --force-recreate` of %s failed (exit %s): %s" % (
            ", ".join(to_recreate), up.rc, redact(tail) or "no output"),
            changed=True, project=project, **_public(plan, list(to_recreate)))
    try:
        wait_for_services(client, project, to_recreate, wait_timeout, poll_interval)
    except OpsError as exc:
        details = dict(exc.details, changed=True, project=project, **_public(plan, list(to_recreate)))
        raise OpsError(exc.message, **details)

    containers = inspect_project(client, project)
    after = analyse(config, containers, image_environments(client, containers), selected, state=None,
                    consistent_keys=consistent_keys or (), show=plan["fingerprints"],
                    hmac_key=hmac_key)
    # Files were just re-read by the new containers; only the environment must match now.
    remaining = {name: entry for name, entry in after["drifted"].items()
                 if name in to_recreate and (entry["added"] or entry["removed"] or entry["changed"])}
    if remaining:
        raise OpsError("drift remains after recreating %s: %s; check that compose_command is "
                       "Docker Compose v2 and that the containers are not recreated by others" % (
                           ", ".join(to_recreate), "; ".join(
                               "%s: %s" % (n, ", ".join(e["added"] + e["removed"] + e["changed"]))
                               for n, e in sorted(remaining.items()))),
                       changed=True, project=project, **_public(plan, list(to_recreate)))
    _write_state(path, project, project_src, after, state, warnings)
    result["fingerprints"] = after["fingerprints"]
    result["not_running"] = after["not_running"]
    return result


def _write_state(path, project, project_src, plan, previous, warnings):
    document = build_state(project, project_src, plan, previous)
    if previous == document:
        return
    try:
        written = save_state(path, document)
        reason = "the filesystem is full or read-only"
    except OSError as exc:
        written, reason = False, exc.strerror or str(exc)
    if not written:
        warnings.append("could not write state file %s (%s); changed secrets/configs files are "
                        "then judged by modification time" % (path, reason))

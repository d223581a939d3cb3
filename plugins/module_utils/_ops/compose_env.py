# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Env-synced force-recreate for a Docker Compose project (the ".env desync" incident).

Control flow of ``sync_compose_env``::

    project dir -> compose command (+ --profile) -> `compose config --format json` (its name)
      -> running containers of the project (Docker API: Config.Env, labels, Created, image)
      -> open_project(): refuse containers started from another directory; the compose and env
         files they were started with (labels), refused when they differ from those given;
         `config` again with them -> its `$$` undone when a probe says this compose escapes
      -> the host's fingerprint key
      -> analyse(): per service, drifted keys and changed secrets:/configs: files; inconsistent keys
      -> replicas_to_keep(): N running containers per service to recreate (stopped ones refused)
      -> check mode / nothing to do: report
      -> `compose up -d --force-recreate --no-deps --scale S=N SERVICES` -> wait running (+ healthy)
      -> analyse() again: the drift must be gone, N unchanged -> state file (no values) -> result

Rules (also in the module documentation):

* Only keys compose sets count. The expected environment of a container is its image's
  ``Config.Env`` overlaid with the service's resolved ``environment`` (``env_file`` contents
  and ``${VAR}`` interpolation included). Compose 2.x prints that configuration with every
  ``$`` doubled (so the output is a valid compose file again); the container holds one, so
  ``unescape_dollars`` halves every ``$$`` of the output before anything is compared, when
  ``compose_escapes_dollars`` finds that the compose in use escapes (an early v2 did not).
  A key compose sets that the container lacks is *added*; a different value is *changed*;
  a key the container holds that compose no longer sets and that the image does not
  provide with that value is *removed*. Image ENV keys never count, nor the runtime keys in
  ``RUNTIME_KEYS``.
* Compose's config hash does not cover the *content* of ``secrets:``/``configs:`` files.
  A state file per project (``<state_dir>/compose-env-sync/<project>.json``, mode 0600,
  keyed digests and file signatures only, with the id of the key) records the content
  digests, inode and change time of each file and the container ids after each successful
  sync. A file counts as changed when its digest differs from the one recorded for the same
  containers under the same key; under another key (replaced), when its signature differs,
  with a warning; without such a record, when it was modified after the oldest of the
  service's containers was created.
* A recreate changes only the environment: the project is resolved with the files its
  running containers were started with, from the directory they were started from, and each
  recreated service keeps its number of running containers (``--scale``).
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

import collections
import functools
import hashlib
import json
import os
import re
import shlex
import shutil
import tempfile
import time

from . import docker_api
from .env_file import read_env_file
from .errors import OpsError
from .hostkey import FINGERPRINT_LENGTH, UNSET, fingerprint, host_key, key_id, keyed_hash
from .runner import run_command
from .state import read_json_object, write_json_atomic
from .timestamps import epoch_seconds

LABEL_PROJECT = "com.docker.compose.project"
LABEL_SERVICE = "com.docker.compose.service"
LABEL_ONEOFF = "com.docker.compose.oneoff"
LABEL_WORKING_DIR = "com.docker.compose.project.working_dir"
LABEL_CONFIG_FILES = "com.docker.compose.project.config_files"
LABEL_ENV_FILES = "com.docker.compose.project.environment_file"
#: The files compose reads by default in a project directory (scanned for redaction only).
DEFAULT_COMPOSE_FILES = ("compose.yaml", "compose.yml", "docker-compose.yaml", "docker-compose.yml",
                         "compose.override.yaml", "compose.override.yml",
                         "docker-compose.override.yaml", "docker-compose.override.yml")

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
#: The options, declared once (argument-spec style): the compose_env_sync module's
#: argument_spec is built from this table, and sync_compose_env takes its defaults from it.
OPTIONS = {
    "project_src": {"type": "path", "required": True},
    "files": {"type": "list", "elements": "path"},
    "env_files": {"type": "list", "elements": "path"},
    "project_name": {"type": "str"},
    "services": {"type": "list", "elements": "str"},
    "profiles": {"type": "list", "elements": "str"},
    "consistent_keys": {"type": "list", "elements": "str", "default": [], "no_log": False},
    "on_inconsistent": {"type": "str", "choices": ["fail", "warn"], "default": "fail"},
    "force": {"type": "bool", "default": False},
    "wait_timeout": {"type": "int", "default": 120},
    "compose_command": {"type": "list", "elements": "str"},
    "docker_host": {"type": "str"},
    "state_dir": {"type": "path", "default": DEFAULT_STATE_DIR},
}


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


def environments(config):
    """Return ``{service: desired_environment(service)}`` for every service of ``config``."""
    return {name: desired_environment(service) for name, service in (config.get("services") or {}).items()}


def find_inconsistent(config, keys):
    """Return ``{key: [services]}`` for keys whose resolved values differ between the
    services of ``config`` that define them (a key declared without a value counts as a
    value of its own). The services listed are those that disagree with the value most
    services share; all services defining the key when no value has a majority.
    """
    result = {}
    envs = environments(config) if keys else {}
    for key in keys or ():
        values = {name: env[key] for name, env in envs.items() if key in env}
        ranked = collections.Counter(values.values()).most_common(2)
        if len(ranked) < 2:
            continue
        if ranked[0][1] > ranked[1][1]:
            result[key] = sorted(n for n, v in values.items() if v != ranked[0][0])
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
    """Return the values of a ``KEY=VALUE`` file (for redaction only; best effort): as compose
    reads them (``env_file.read_env_file``: quotes, escapes, multi-line values) and, line by
    line, as written (compose quotes a line of a file it cannot read)."""
    try:
        values = [v for v in read_env_file(path).values() if v]
    except OpsError:
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


_YAML_ESCAPE = re.compile(r"\\(.)")
_YAML_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "0": "\0"}
_ENVIRONMENT_KEY = re.compile(r"^(\s*)environment\s*:\s*(.*)$")


def _yaml_scalar(text):
    """Return a one-line YAML scalar as YAML reads it (quotes removed and unescaped, a
    trailing comment of a plain scalar dropped); good enough for redaction."""
    text = text.strip()
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return _YAML_ESCAPE.sub(lambda m: _YAML_ESCAPES.get(m.group(1), m.group(1)), text[1:-1])
    if len(text) >= 2 and text[0] == text[-1] == "'":
        return text[1:-1].replace("''", "'")
    return text.split(" #", 1)[0].rstrip()


def _environment_entry_values(text):
    """Return the candidate values of one ``environment:`` entry: ``KEY: value``,
    ``- KEY=value`` (quoted or not), or a line of a multi-line value."""
    if text.startswith("- ") or text == "-":
        text = text[1:].strip()
    whole = _yaml_scalar(text)
    found = [whole]
    if "=" in whole:
        found.append(whole.split("=", 1)[1])
    _key, sep, value = text.partition(": ")
    if sep and value.strip():
        found.append(_yaml_scalar(value))
    return found


def compose_environment_values(paths):
    """Return the values written under ``environment:`` in compose files, as YAML reads them
    and before interpolation: compose quotes them in some errors ("invalid interpolation
    format"). For redaction only; standard library, so a line scanner: block maps and lists
    (also a list at the key's own indentation), quoted or plain scalars, one-line flow
    ``{...}``/``[...]``, and the lines of multi-line values."""
    values = []
    for path in paths:
        try:
            with open(path, encoding="utf-8", errors="replace") as handle:
                lines = handle.read().splitlines()
        except OSError:
            continue
        indent = None
        for line in lines:
            stripped = line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            depth = len(line) - len(line.lstrip())
            if indent is not None and (depth > indent or (depth == indent and stripped[0] == "-")):
                values.extend(_environment_entry_values(stripped))
                continue
            indent = None
            match = _ENVIRONMENT_KEY.match(line)
            if match:
                indent = len(match.group(1))
                flow = match.group(2).strip()
                if flow[:1] in ("{", "[") and flow[-1:] in ("}", "]"):
                    for item in flow[1:-1].split(","):
                        values.extend(_environment_entry_values(item.strip()))
    return values


def compose_files_to_scan(project_src, files):
    """Return the compose files a run reads: ``files`` (relative to ``project_src``) or the
    default names that exist there."""
    names = files or [n for n in DEFAULT_COMPOSE_FILES if os.path.isfile(os.path.join(project_src, n))]
    return [os.path.join(project_src, name) for name in names]


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


def file_signature(path):
    """Return ``inode:change time`` of a file (of a directory, a sha256 of those of every
    entry under it, by relative name), or ``"missing"``. Any write, rename over it, copy
    with its old modification time or restore changes it; its content never enters it, so it
    compares across fingerprint keys."""
    try:
        info = os.stat(path)
        if not os.path.isdir(path):
            return "%d:%d" % (info.st_ino, info.st_ctime_ns)
        digest = hashlib.sha256()
        for root, dirs, names in os.walk(path):
            dirs.sort()
            for name in [""] + sorted(names):
                full = os.path.join(root, name) if name else root
                entry = os.stat(full)
                line = "%s\0%d:%d\0" % (os.path.relpath(full, path), entry.st_ino, entry.st_ctime_ns)
                digest.update(line.encode("utf-8", "replace"))
        return "dir:" + digest.hexdigest()[:32]
    except OSError:
        return "missing"


def parse_docker_time(text):
    """Epoch seconds of a Docker time (``timestamps.epoch_seconds``); ``ValueError`` for
    anything else, so an unreadable creation time never reads as "long ago"."""
    seconds = epoch_seconds(text)
    if seconds is None or isinstance(text, (int, float)):
        raise ValueError("not a Docker timestamp: %r" % (text,))
    return seconds


def changed_files(files, digests, containers, recorded, signatures=None, keyed=True):
    """Return the sorted labels of referenced files whose content changed under the
    running containers of one service.

    ``files`` maps label to path, ``digests`` label to current digest, ``containers`` are
    the service's container inspect dicts, ``recorded`` the service's state entry (or None),
    ``signatures`` label to current ``file_signature``. With a record for exactly these
    containers, digests are compared; when the record was made under another key
    (``keyed`` false), its signatures instead (a file touched since counts as changed).
    Otherwise a file modified after the oldest container was created counts as changed.
    """
    if not files or not containers:
        return []
    ids = sorted(c["Id"] for c in containers)
    if recorded and sorted(recorded.get("containers") or []) == ids:
        if keyed:
            stored = recorded.get("files") or {}
            return sorted(label for label in files if stored.get(label) != digests.get(label))
        if recorded.get("stats"):
            stored = recorded["stats"]
            return sorted(label for label in files
                          if stored.get(label) != (signatures or {}).get(label))
    created = min(parse_docker_time(c.get("Created")) for c in containers)
    mtimes = {label: file_mtime(path) for label, path in files.items()}
    return sorted(label for label, mtime in mtimes.items() if mtime is None or mtime > created)


# --------------------------------------------------------------------------- state


def state_path(state_dir, project):
    """Return the state file of a project: ``<state_dir>/compose-env-sync/<project>.json``."""
    safe = re.sub(r"[^A-Za-z0-9_.-]", "_", project) or "_"
    return os.path.join(state_dir, "compose-env-sync", safe + ".json")


def load_state(path):
    """Return a project's state (``{"services": {...}}``), empty when absent or unreadable."""
    data = read_json_object(path)
    return data if data.get("version") in (1, STATE_VERSION) else {}


def comparable_records(state, hmac_key):
    """Return ``(services, how)``: the per-service records of ``state`` and how their file
    digests compare now: ``"keyed"`` (made under this key), ``"legacy"`` (version 1, plain
    sha256 digests) or ``"foreign"`` (made under another key: the key file was replaced, or
    this run uses a throw-away key; only their file signatures compare)."""
    state = state or {}
    services = state.get("services") or {}
    if state.get("version") == 1:
        return services, "legacy"
    return services, "keyed" if state.get("key_id") == key_id(hmac_key) else "foreign"


def save_state(path, data):
    """Write ``data`` atomically, mode 0600 in a 0700 directory; False when the disk is full.
    Raises OSError for other failures (permissions)."""
    os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
    return write_json_atomic(path, data, mode=0o600)


def build_state(project, project_src, analysis, previous=None):
    """Return the state document for an analysis: container ids, keyed file digests and file
    signatures (inode and change time) only.
    Services the analysis did not cover keep their entries from ``previous`` when those
    were made under the same key."""
    services = {}
    if (previous or {}).get("key_id") == analysis["key_id"]:
        services = dict(previous.get("services") or {})
    for name, ids in analysis["container_ids"].items():
        services[name] = {"containers": ids, "files": analysis["file_digests"].get(name, {})}
        stats = (analysis.get("file_stats") or {}).get(name)
        if stats:
            services[name]["stats"] = stats
    return {"version": STATE_VERSION, "project": project, "project_src": project_src,
            "key_id": analysis["key_id"], "services": services}


# --------------------------------------------------------------------------- analysis


def _labels(info):
    return (info.get("Config") or {}).get("Labels") or {}


def _service_of(info, project):
    """The compose service of a container of ``project``; None for a one-off container
    (``docker compose run``) or a container of another project."""
    labels = _labels(info)
    if labels.get(LABEL_PROJECT) != project or labels.get(LABEL_ONEOFF) == "True":
        return None
    return labels.get(LABEL_SERVICE)


def group_containers(containers, project):
    """Return ``{service: [inspect, ...]}`` of a project's active, non one-off containers,
    and the sorted names of services whose containers are all inactive."""
    active, inactive = {}, set()
    for info in containers:
        service = _service_of(info, project)
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
         "file_stats": {svc: {label: signature}}, "key_id": ..., "warnings": [...]}
    """
    project = config.get("name")
    services = config.get("services") or {}
    active, _inactive = group_containers(containers, project)
    records, how = comparable_records(state, hmac_key)
    foreign = {}
    plan = {"drifted": {}, "fingerprints": {}, "desired_fingerprints": {}, "not_running": [],
            "container_ids": {}, "file_digests": {}, "file_stats": {}, "warnings": [],
            "key_id": key_id(hmac_key), "inconsistent": find_inconsistent(config, consistent_keys)}
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
        stale_files, judged = _service_files(config, name, group, records.get(name), how,
                                             hmac_key, plan)
        if judged:
            foreign.setdefault(judged, []).append(name)
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
    plan["warnings"] += foreign_key_warnings(foreign)
    running = [name for name in selected if name in plan["container_ids"]]
    plan["to_recreate"] = running if force else sorted(plan["drifted"])
    plan["not_running"] = sorted(plan["not_running"])
    return plan


def _service_files(config, name, group, record, how, hmac_key, plan):
    """Return ``(changed labels, judged)`` for the secrets/configs files of one service and
    put their digests and signatures into ``plan``. ``judged`` is how a record of these
    containers made under another key was used (``"signatures"``, or ``"mtime"`` for a
    record without them), None otherwise."""
    files = referenced_files(config, name)
    digests = {label: file_digest(path, hmac_key) for label, path in files.items()}
    signatures = {label: file_signature(path) for label, path in files.items()}
    compared = digests
    if how == "legacy":  # a version 1 record holds plain digests: compare like with like, once
        compared = {label: file_digest(path) for label, path in files.items()}
    ids = sorted(c["Id"] for c in group)
    plan["container_ids"][name] = ids
    plan["file_digests"][name] = digests
    plan["file_stats"][name] = signatures
    judged = None
    if files and how == "foreign" and record and sorted(record.get("containers") or []) == ids:
        judged = "signatures" if record.get("stats") else "mtime"
    return changed_files(files, compared, group, record, signatures, keyed=how != "foreign"), judged


def foreign_key_warnings(foreign):
    """Say which services' secrets/configs files could not be compared by content because
    their record was made under another fingerprint key (``{judged: [services]}``)."""
    how = {"signatures": "a file whose inode or change time differs from the record counts as "
                         "changed",
           "mtime": "judged by modification time only (a file copied in with its old "
                    "modification time goes unnoticed)"}
    return ["the secrets/configs files of %s were recorded under another fingerprint key (the key "
            "was replaced, or this run used a throw-away key), so their content cannot be "
            "compared: %s" % (", ".join(sorted(names)), how[judged])
            for judged, names in sorted(foreign.items())]


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
#: Compose's interpolation error names the key path, then quotes the whole raw value.
_INTERPOLATION_ERROR = re.compile(r"invalid interpolation format for \S+?(?=\.?(?:\s|$))")


def compose_error_text(output, redact):
    """Return what may be shown of compose's error output: its last three lines, redacted.
    For an interpolation error, only up to the key path it names: the value it quotes next
    may be a password written into the compose file with a ``$`` in it."""
    text = (output or "").strip()
    match = _INTERPOLATION_ERROR.search(text)
    if match:
        start = text.rfind("\n", 0, match.start()) + 1
        return redact(text[start:match.end()] + " (write a literal $ as $$)")
    return redact(" | ".join(text.splitlines()[-3:]))


#: A literal ``$`` written as ``$$``: compose that escapes its output prints ``a$$b``.
_PROBE_COMPOSE = 'services:\n  probe:\n    image: scratch\n    environment:\n      PROBE: "a$$b"\n'


def compose_escapes_dollars(compose, env=None):
    """Return True when this compose prints the literal ``$`` of a value doubled in
    ``config --format json`` (2.20.1, 2.21.0 and 2.40.3 do), False when it prints it once
    (an early Compose v2 did, docker/compose#8518), None when the probe does not tell.
    Probed once per process and command."""
    return _probe_escaping(tuple(compose), tuple(sorted((env or {}).items())))


@functools.lru_cache(maxsize=8)
def _probe_escaping(compose, env):
    directory = tempfile.mkdtemp(prefix="runbook-ops-probe-")
    try:
        path = os.path.join(directory, "compose.yaml")
        with open(path, "w") as handle:
            handle.write(_PROBE_COMPOSE)
        result = run_command(compose_base(compose, directory, [path], project_name="runbook-ops-probe")
                             + ["config", "--format", "json"], env=dict(env), cwd=directory, timeout=60)
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    try:
        printed = json.loads(result.stdout)["services"]["probe"]["environment"]["PROBE"]
    except (ValueError, KeyError, TypeError):
        return None
    return {"a$$b": True, "a$b": False}.get(printed)


def _compose_of(base):
    """The compose command of an argv prefix made by ``compose_base``."""
    return base[:base.index("--project-directory")] if "--project-directory" in base else base


def load_config(base, project_src, env=None, redact=lambda text: text):
    """Run ``config --format json`` and return the parsed project as compose puts it into
    containers: when the output holds a ``$``, a probe tells whether this compose doubles
    it, and only then is every ``$$`` halved. OpsError when compose cannot resolve the
    project (message redacted, also of the values of an env file compose names as broken),
    or prints a single ``$`` while it is known (or assumed) to escape."""
    result = run_command(base + ["config", "--format", "json"], env=env, cwd=project_src,
                         timeout=120)
    if not result.ok:
        text = (result.stderr or "") + (result.stdout or "")
        broken = _ENV_FILE_ERROR.search(text)
        redact_file = make_redactor(read_env_file_values(broken.group(1)) if broken else [])
        tail = redact_file(compose_error_text(result.stderr or result.stdout, redact))
        if "unknown flag: --format" in text or "Usage:" in text or "no such option" in text.lower():
            raise OpsError("`%s config --format json` is not supported in %s (exit %s): %s; use "
                           "Docker Compose v2 or set compose_command" % (
                               " ".join(base[:2]), project_src, result.rc, tail))
        raise OpsError("docker compose could not resolve the project in %s (exit %s): %s; fix "
                       "the compose file or .env and check with `docker compose config`"
                       % (project_src, result.rc, tail or "no output"))
    try:
        config = json.loads(result.stdout)
    except ValueError:
        raise OpsError("`%s config --format json` printed no JSON in %s; use Docker Compose v2 "
                       "(2.x) or set compose_command" % (" ".join(base[:2]), project_src))
    if not isinstance(config, dict) or not config.get("name") or not isinstance(
            config.get("services"), dict):
        raise OpsError("the compose project in %s has no name or no services" % project_src)
    if "$" not in result.stdout or compose_escapes_dollars(_compose_of(base), env) is False:
        return config
    try:
        return unescape_dollars(config)
    except ValueError:
        raise OpsError("`%s config --format json` printed a single `$` in %s, which output that "
                       "escapes `$` as `$$` never holds; values with `$` cannot be compared; use "
                       "Docker Compose v2 (2.20.1 and later are verified) or set compose_command"
                       % (" ".join(base[:2]), project_src))


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
            group = [c for c in containers if _service_of(c, project) == name]
            if not group:
                waiting[name] = ("missing", None, None)
                continue
            states = [describe_container(c) for c in group]
            bad = [s for s in states if s[0] in ("exited", "dead", "removing") or s[1] == "unhealthy"]
            not_ready = [s for s in states if not (s[0] == "running" and s[1] in (None, "healthy"))]
            if bad:
                failed[name] = bad[0]
            elif not_ready:
                waiting[name] = not_ready[0]
            else:
                pending.discard(name)
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


# --------------------------------------------------------------------------- what was started


def _same_path(first, second):
    return (os.path.abspath(first) == os.path.abspath(second)
            or os.path.realpath(first) == os.path.realpath(second))


def _shown(paths, project_src):
    """Paths for a message: relative to the project directory when inside it."""
    if not paths:
        return "compose's default"
    inside = project_src.rstrip("/") + "/"
    return ", ".join(p[len(inside):] if p.startswith(inside) else p for p in paths)


def check_project_directory(containers, project_src, project):
    """Refuse when containers of the project were started from another directory: a project
    of the same name elsewhere (``/srv/app`` and ``/opt/app`` are both ``app``), which a
    recreate would give this directory's configuration, dropping its volumes."""
    started = (_labels(c).get(LABEL_WORKING_DIR) for c in containers)
    others = sorted({path for path in started if path and not _same_path(path, project_src)})
    if others:
        raise OpsError("compose project %s has containers started from %s, not from project_src %s: "
                       "a project of the same name in another directory; set project_name to the "
                       "name this project runs under, or project_src to %s (nothing was recreated)"
                       % (project, ", ".join(others), project_src, others[0]))


def started_with(containers, project, label, project_src, services=None):
    """Return ``{paths: [services]}``: the files (the comma-separated absolute paths of label
    ``config_files`` or ``environment_file``) the running containers of ``services`` (all by
    default) were started with; ``()`` for containers without the label."""
    active, _inactive = group_containers(containers, project)
    found = {}
    for name, group in active.items():
        if services and name not in services:
            continue
        for info in group:
            value = _labels(info).get(label) or ""
            paths = tuple(os.path.join(project_src, p) for p in value.split(",") if p)
            found.setdefault(paths, set()).add(name)
    return {paths: sorted(names) for paths, names in found.items()}


def files_to_use(option, given, started, project_src, project):
    """Return the files a run passes for ``option`` (``files`` or ``env_files``): ``given``,
    or those the running containers were started with when not given (None: compose's
    default). A recreate with other files than the containers were started with changes more
    than their environment (an override's volumes are dropped), so OpsError when the
    containers disagree among themselves or with ``given``; containers without the label
    (compose's default env file, or an old compose) are not checked against ``given``."""
    what = "compose files" if option == "files" else "env files"
    if given:
        wanted = [os.path.join(project_src, p) for p in given]
        differ = {paths: names for paths, names in started.items() if paths and (
            len(paths) != len(wanted) or not all(map(_same_path, paths, wanted)))}
        if differ:
            paths, names = sorted(differ.items())[0]
            raise OpsError("%s (%s) are not the %s the running containers of %s in compose "
                           "project %s were started with (%s); recreating them from other files "
                           "changes more than their environment; set %s to those, or leave it "
                           "unset to use them (nothing was recreated)" % (
                               option, _shown(wanted, project_src), what, ", ".join(names),
                               project, _shown(paths, project_src), option))
        return list(given)
    if len(started) > 1:
        raise OpsError("the running containers of compose project %s were started with different "
                       "%s (%s); set %s to the ones to compare with, and services to the services "
                       "started with them (nothing was recreated)" % (
                           project, what, "; ".join(
                               "%s: %s" % (", ".join(names), _shown(paths, project_src))
                               for paths, names in sorted(started.items())), option))
    paths = list(next(iter(started), ()))
    missing = [p for p in paths if not os.path.isfile(p)]
    if missing:
        raise OpsError("the running containers of compose project %s were started with %s %s, "
                       "which no longer exist%s; restore it or set %s (nothing was recreated)" % (
                           project, what, ", ".join(missing), "s" if len(missing) == 1 else "",
                           option))
    return paths or None


def declared_replicas(service):
    """Return how many containers the compose file asks for (``scale`` or
    ``deploy.replicas``; 1 when neither is set)."""
    for value in (service.get("scale"), (service.get("deploy") or {}).get("replicas")):
        if value is not None:
            try:
                return int(value)
            except (TypeError, ValueError):
                return 1
    return 1


def count_containers(config, containers, services):
    """Return ``({service: running containers}, [(service, name, state, exit code)] of the
    stopped ones)`` for ``services`` (one-off containers left out)."""
    project = config.get("name")
    running, stopped = {}, []
    for info in containers:
        name = _service_of(info, project)
        if name not in services:
            continue
        status, _health, code = describe_container(info)
        if status in ACTIVE_STATES:
            running[name] = running.get(name, 0) + 1
        else:
            stopped.append((name, info.get("Name", "").lstrip("/"), status, code))
    return running, stopped


def replicas_to_keep(config, containers, services):
    """Return ``({service: running containers}, warnings)`` for the services to recreate:
    ``up --scale SERVICE=N`` keeps a service scaled by hand at its size (without it compose
    goes back to the file's count and removes the rest). Raises OpsError when one of them
    also has stopped containers, which compose would remove or restart to reach N."""
    running, stopped = count_containers(config, containers, services)
    blocked = [item for item in stopped if item[0] in running]
    if blocked:
        raise OpsError("cannot recreate %s without removing or restarting a stopped container "
                       "(compose keeps the running count): %s; start or remove it first (`docker "
                       "start NAME` or `docker rm NAME`), or leave the service out of services "
                       "(nothing was recreated)" % (
                           ", ".join(sorted({item[0] for item in blocked})), "; ".join(
                               "%s is %s (exit code %s), %d of %s running" % (
                                   container, status, code, running[name], name)
                               for name, container, status, code in sorted(blocked))))
    warnings = ["%s runs %d containers, its compose file asks for %d: the recreate keeps %d "
                "(--scale %s=%d)" % (name, count, declared_replicas(config["services"][name]),
                                     count, name, count)
                for name, count in sorted(running.items())
                if count != declared_replicas(config["services"][name])]
    return running, warnings


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


def _public(plan, recreated):
    return {
        "drifted": plan["drifted"],
        "inconsistent": plan["inconsistent"],
        "recreated": recreated,
        "fingerprints": plan["fingerprints"],
        "not_running": plan["not_running"],
    }


def _inconsistency_message(plan, config, hmac_key):
    envs = environments(config)
    return "; ".join("%s differs in %s; fingerprints: %s" % (
        key, ", ".join(plan["inconsistent"][key]), ", ".join(
            "%s %s" % (n, fingerprint(hmac_key, envs[n].get(key))) for n in sorted(envs) if key in envs[n]))
        for key in sorted(plan["inconsistent"]))


def project_redactor(project_src, files, env_files, config=None):
    """Return a redactor for compose output about a project: the values of its env files and
    of the ``environment:`` entries of its compose files as written, and, once resolved, of
    every service's environment."""
    values = [v for p in (env_files or [".env"]) for v in read_env_file_values(
        os.path.join(project_src, p))]
    values += compose_environment_values(compose_files_to_scan(project_src, files))
    values += [v for env in environments(config or {}).values() for v in env.values() if v]
    return make_redactor(values)


def open_project(compose, project_src, files, env_files, project_name, profiles, services,
                 docker_host):
    """Resolve the project as its running containers were started and return ``(config,
    base argv, Docker client, containers, redact)``. Refuses (OpsError, before anything changes) a project
    of the same name started from another directory, and containers started with other
    compose or env files than this run would use; without ``files``/``env_files``, the
    files the containers were started with are used (labels ``config_files`` and
    ``environment_file``)."""
    base = compose_base(compose, project_src, files, env_files, project_name, profiles)
    env = {"DOCKER_HOST": docker_host} if docker_host else None
    config = load_config(base, project_src, env, project_redactor(project_src, files, env_files))
    project = config["name"]
    client = docker_api.connect(docker_host, timeout=60)[0]
    containers = inspect_project(client, project)
    check_project_directory(containers, project_src, project)
    use_files = files_to_use("files", files, started_with(
        containers, project, LABEL_CONFIG_FILES, project_src, services), project_src, project)
    use_env_files = files_to_use("env_files", env_files, started_with(
        containers, project, LABEL_ENV_FILES, project_src, services), project_src, project)
    if (use_files, use_env_files) != (files, env_files):
        base = compose_base(compose, project_src, use_files, use_env_files, project_name, profiles)
        config = load_config(base, project_src, env,
                             project_redactor(project_src, use_files, use_env_files))
        if config["name"] != project:
            raise OpsError("the compose files the containers of %s were started with name the "
                           "project %s; set files and project_name (nothing was recreated)"
                           % (project, config["name"]))
    return (config, base, client, containers,
            project_redactor(project_src, use_files, use_env_files, config))


def sync_compose_env(project_src, files=None, env_files=None, services=None, consistent_keys=None,
                     on_inconsistent="fail", force=False, wait_timeout=OPTIONS["wait_timeout"]["default"],
                     compose_command=None,
                     docker_host=None, project_name=None, state_dir=DEFAULT_STATE_DIR,
                     check_mode=False, poll_interval=1.0, profiles=None):
    """Find services whose running containers hold a stale environment and recreate them.

    Returns ``{"changed", "drifted", "inconsistent", "recreated", "fingerprints",
    "not_running", "project", "state_file", "diff", "warnings"}`` (names and keyed
    fingerprints of drifted or inconsistent keys only). ``profiles`` activates compose
    profiles for the comparison and the recreate. Raises OpsError for a missing directory,
    an unresolvable project, an unreachable daemon, an unusable fingerprint key, a project
    of the same name in another directory, containers started with other compose or env
    files, inconsistent keys (unless ``on_inconsistent="warn"``), a scaled service with
    stopped containers, a failed ``up`` or a recreated service that does not come back.
    """
    if on_inconsistent not in OPTIONS["on_inconsistent"]["choices"]:
        raise OpsError("on_inconsistent must be fail or warn, not %r" % (on_inconsistent,))
    project_src = os.path.abspath(project_src)
    if not os.path.isdir(project_src):
        raise OpsError("project directory %s does not exist; set project_src to the directory "
                       "holding the compose file" % project_src)
    env = {"DOCKER_HOST": docker_host} if docker_host else None
    compose = resolve_compose_command(compose_command, env)
    config, base, client, containers, redact = open_project(
        compose, project_src, files, env_files, project_name, profiles, services, docker_host)
    project = config["name"]
    selected = select_services(config, services)

    hmac_key, warnings = host_key(state_dir, create=not check_mode)
    path = state_path(state_dir, project)
    state = load_state(path)
    plan = analyse(config, containers, image_environments(client, containers), selected, state,
                   consistent_keys or (), force, hmac_key=hmac_key)
    warnings += plan["warnings"]
    diff = build_diff(plan, state)

    refused = dict(changed=False, project=project, **_public(plan, []))
    if plan["inconsistent"]:
        message = "inconsistent keys in compose project %s: %s; make them equal in .env / the " \
                  "compose file" % (project, _inconsistency_message(plan, config, hmac_key))
        if on_inconsistent == "fail":
            raise OpsError(message + " (nothing was recreated)", **refused)
        warnings.append(message)

    to_recreate = plan["to_recreate"]
    try:
        replicas, scale_warnings = replicas_to_keep(config, containers, to_recreate)
    except OpsError as exc:
        raise OpsError(exc.message, **refused)
    warnings += scale_warnings
    result = dict(_public(plan, list(to_recreate)), diff=diff, project=project, state_file=path,
                  changed=bool(to_recreate), warnings=warnings)
    if check_mode:
        return result

    after = plan
    if to_recreate:
        after = recreate(client, base, env, project_src, config, plan, replicas, redact,
                         wait_timeout, poll_interval, selected, consistent_keys, hmac_key)
        result.update(fingerprints=after["fingerprints"], not_running=after["not_running"])
    _write_state(path, project, project_src, after, state, warnings)
    return result


def recreate(client, base, env, project_src, config, plan, replicas, redact, wait_timeout,
             poll_interval, selected, consistent_keys, hmac_key):
    """Recreate ``plan["to_recreate"]`` at their sizes (``replicas``), wait for them, and return
    the analysis afterwards; OpsError (changed) when ``up`` fails, a service does not come
    back, runs another number of containers, or still drifts."""
    project, to_recreate = config["name"], plan["to_recreate"]
    details = dict(changed=True, project=project, **_public(plan, list(to_recreate)))
    scale = [arg for name in to_recreate for arg in ("--scale", "%s=%d" % (name, replicas[name]))]
    up = run_command(base + ["up", "-d", "--force-recreate", "--no-deps"] + scale
                     + list(to_recreate), env=env, cwd=project_src, timeout=UP_TIMEOUT_SECONDS)
    if not up.ok:
        raise OpsError("`docker compose up -d --force-recreate` of %s failed (exit %s): %s" % (
            ", ".join(to_recreate), up.rc,
            compose_error_text(up.stderr or up.stdout, redact) or "no output"), **details)
    try:
        wait_for_services(client, project, to_recreate, wait_timeout, poll_interval)
    except OpsError as exc:
        raise OpsError(exc.message, **dict(exc.details, **details))

    containers = inspect_project(client, project)
    after = analyse(config, containers, image_environments(client, containers), selected, state=None,
                    consistent_keys=consistent_keys or (), show=plan["fingerprints"],
                    hmac_key=hmac_key)
    counts = count_containers(config, containers, to_recreate)[0]
    resized = {n: counts.get(n, 0) for n in to_recreate if counts.get(n, 0) != replicas[n]}
    if resized:
        raise OpsError("after the recreate %s; check `docker compose ps`" % "; ".join(
            "%s runs %d containers, %d before" % (n, c, replicas[n])
            for n, c in sorted(resized.items())), **details)
    # Files were just re-read by the new containers; only the environment must match now.
    remaining = {name: entry for name, entry in after["drifted"].items()
                 if name in to_recreate and (entry["added"] or entry["removed"] or entry["changed"])}
    if remaining:
        raise OpsError("drift remains after recreating %s: %s; check that compose_command is "
                       "Docker Compose v2 and that the containers are not recreated by others" % (
                           ", ".join(to_recreate), "; ".join(
                               "%s: %s" % (n, ", ".join(e["added"] + e["removed"] + e["changed"]))
                               for n, e in sorted(remaining.items()))), **details)
    return after


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

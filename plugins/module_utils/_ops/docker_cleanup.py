# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker cleanup that never removes what something still uses.

Control flow: ``run_docker_cleanup(options)`` ->
``normalize_options`` -> ``connect`` -> ``collect_state`` (one inventory, of what the
enabled steps need: ``/info``, ``/containers/json?all=1``, the type-filtered
``/system/df`` on API 1.42+ or ``/images/json`` and ``/volumes`` on 1.41, an inspect of
each stopped container the containers step may remove, ``/networks`` when that step is
on) -> ``plan_cleanup_steps`` (pure: decides every removal from that data) ->
``size_planned_volumes`` (check mode: ``du`` of the planned volumes only) ->
``execute_plan`` (skipped in check mode; measures the data root's file system after
each step) -> a plain result dict.

Steps run in this order, each only when enabled:

``builder_cache``  BuildKit cache records not used for ``until`` (POST /build/prune,
                   ``all=true``, filter ``until``; the engine picks, we predict; on
                   API 1.41 a real run does not list them: only the full ``/system/df``
                   does, which sizes every volume).
``containers``     stopped (created/exited/dead) containers that *stopped* before
                   ``until`` (``State.FinishedAt``; ``Created`` for one that never ran).
``images``         ``unused``: images no container uses (running or stopped, counting
                   parent chains); ``dangling``: of those, the ones without tag or digest.
                   Removed by ID, never by tag (see ``_remove_image``).
``volumes``        volumes no container references, counting containers removed in this
                   run; ``anonymous``: only volumes that were never named; ``all``: also
                   unused named volumes.
``networks``       user-defined networks no container (running or stopped) is attached to.

Rules the engine's own prune does not give on every version, decided here:

* anything carrying ``keep_label`` (any value) is never removed (build cache records
  carry no labels: the label does not apply to them);
* ``until`` applies to every step (build cache: last use; stopped containers: when they
  stopped; others: creation time), also to volumes and networks; ``0s`` switches the
  age filter off;
* a container removed in a run never takes its volumes with it in that run;
* a volume is *anonymous* when the engine says so (label ``com.docker.volume.anonymous``,
  Docker 23+), or when its name is 64 hex digits and it carries no
  ``com.docker.compose.volume`` label (Docker 20.10 labels none; Docker 26 labels those
  ``docker run -v /path`` makes, not those made from a bind without a source). API 1.41
  (Docker 20.10) ``volume prune`` removes unused *named* volumes too;
  ``volumes: anonymous`` never does, on any engine;
* networks used by stopped containers are kept (``network prune`` removes them, after
  which ``docker start`` of that container fails).

Usage figures come from ``os.statvfs`` of the engine's ``DockerRootDir`` when the engine
is local (a ``unix://`` socket and the directory exists here): before the run and after
each step, which is what a step reports as reclaimed. For a remote engine they are
``None``, ``target_percent`` is ignored with a warning and reclaimed bytes are the
engine's and the plan's figures.
"""

from __future__ import annotations

import math
import os
import re
import time

from . import docker_api
from .disk import ceil_percent, filesystem_usage
from .errors import OpsError
from .options import check_config
from .state import read_json_object, write_json_atomic
from .timestamps import epoch_seconds

STEP_ORDER = ("builder_cache", "containers", "images", "volumes", "networks")
# The options, declared once (argument-spec style): the module's argument_spec is built
# from this table, normalize_options checks against it, and a unit test holds the role's
# docker_cleanup_<name> variables in meta/argument_specs.yml to it (name, type, default,
# choices).
OPTIONS = {
    "builder_cache": {"type": "bool", "default": True},
    "images": {"type": "str", "default": "unused", "choices": ["none", "dangling", "unused"]},
    "until": {"type": "str", "default": "168h"},
    "containers": {"type": "bool", "default": False},
    "containers_until": {"type": "str", "default": "168h"},
    "volumes": {"type": "str", "default": "none", "choices": ["none", "anonymous", "all"]},
    "networks": {"type": "bool", "default": False},
    "keep_label": {"type": "str", "default": "runbook.ops.keep"},
    "target_percent": {"type": "float"},
    "docker_host": {"type": "str"},
    "state_dir": {"type": "path"},
}
# Stopped containers stay at least this long after they stopped, whatever
# ``containers_until`` says: one that exited 0 (or never started) for an hour, one that
# crashed (exit code not 0, killed for memory, or dead) for a day, so a database that
# died in the night is still there in the morning, with its volumes.
CONTAINER_MIN_AGE = 3600
CRASHED_CONTAINER_MIN_AGE = 86400
# Ages are measured by the engine's clock when it differs from this host's by more.
CLOCK_TOLERANCE = 5.0
ANONYMOUS_VOLUME_LABEL = "com.docker.volume.anonymous"
COMPOSE_VOLUME_LABEL = "com.docker.compose.volume"
STOPPED_STATES = ("created", "exited", "dead")
BUILTIN_NETWORKS = ("bridge", "host", "none")

_DURATION_NS = {"ns": 1, "us": 10 ** 3, "\u00b5s": 10 ** 3, "ms": 10 ** 6, "s": 10 ** 9,
                "m": 60 * 10 ** 9, "h": 3600 * 10 ** 9}
GO_DURATION_MAX_NS = 2 ** 63 - 1
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# --- options -----------------------------------------------------------------------

def parse_duration(text, name="until") -> float:
    """Seconds in a Go duration string (``168h``, ``1h30m``, ``90s``, ``0``).

    ``name`` is the option the value came from (for the message). Raises ``OpsError`` for
    anything Go's ``time.ParseDuration`` (the engine's ``until`` filter) would refuse
    here: other syntax, a sign, or more than Go's range (2562047h47m16.854775807s, the
    int64 nanoseconds the engine parses into).
    """
    from fractions import Fraction

    value = str(text).strip()
    if value == "0":
        return 0.0
    pos, nanoseconds = 0, Fraction(0)
    while pos < len(value):
        match = _DURATION_PART.match(value, pos)
        if not match:
            break
        nanoseconds += Fraction(match.group(1)) * _DURATION_NS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        days = re.match(r"^(\d+)d$", value)
        hint = "; no days in Go: %sd is %dh" % (days.group(1), 24 * int(days.group(1))) if days else ""
        raise OpsError("%s: %r is not a duration; use a Go duration, numbers with a unit h, "
                       "m, s, ms, us or ns (168h, 24h, 1h30m, 90m, 0s)%s" % (name, text, hint))
    if int(nanoseconds) > GO_DURATION_MAX_NS:
        raise OpsError("%s: %r is longer than Docker accepts (Go durations end at "
                       "2562047h47m16s, about 292 years); use a shorter one such as 168h"
                       % (name, text))
    return float(nanoseconds / 10 ** 9)


def normalize_options(options) -> dict:
    """Defaults filled in, values checked; returns a new dict or raises ``OpsError``."""
    opts = check_config(OPTIONS, options or {}, unknown="unknown option(s): %s; known: %s")
    opts["until_seconds"] = parse_duration(opts["until"])
    opts["containers_until_seconds"] = parse_duration(opts["containers_until"],
                                                      "containers_until")
    if not opts["keep_label"].strip():
        raise OpsError("keep_label: must be a non-empty label key such as runbook.ops.keep")
    if opts["target_percent"] is not None:
        if not 0 < opts["target_percent"] < 100:
            raise OpsError("target_percent: %r is not a percentage between 0 and 100 "
                           "(exclusive)" % (opts["target_percent"],))
        opts["target_percent"] = float(opts["target_percent"])
    if opts["state_dir"] is not None and not opts["state_dir"].startswith("/"):
        raise OpsError("state_dir: %r is not an absolute path; use the runtime's state "
                       "directory such as /var/lib/runbook-ops" % (opts["state_dir"],))
    return opts


# --- talking to the engine -----------------------------------------------------------

def connect(docker_host=None, timeout=120):
    """``(api, host)``: a low-level ``docker.APIClient`` that answered, and the host it
    talks to (``docker_api.connect``); ``api``'s ``clone()`` opens another connection to
    the same engine, for removals in parallel."""
    api, where = docker_api.connect(docker_host, timeout=timeout)
    api.clone = lambda: docker_api.connect(where, timeout=timeout, version=api.api_version,
                                           check=False)[0]
    return api, where


TYPED_DF_API = (1, 42)  # /system/df?type=... (Docker 23+); 1.41 computes everything


def api_at_least(api_version, wanted) -> bool:
    """Whether an API version string (``"1.41"``) is at least ``wanted`` (``(1, 42)``)."""
    try:
        return tuple(int(part) for part in str(api_version).split(".")[:2]) >= wanted
    except ValueError:
        return False


def collect_state(api, options, docker_host=None, check_mode=False) -> dict:
    """Everything the planner needs, as plain JSON-able data, in one inventory (the
    requests: see the module docstring).

    ``options`` as returned by ``normalize_options``: only what an enabled step needs is
    asked for. Sizes are asked for only where the run reports them (check mode, or an
    engine whose data root cannot be measured from here: a real run on a local engine
    measures what each step frees instead). Keys: ``info``; ``clock_offset`` (the engine's
    clock minus this host's, in seconds, at ``/info``); ``data_root_local`` (``None`` when
    not measurable here); ``sized``; ``df`` shaped like ``/system/df``, ``None`` for what
    is not listed; ``images_all``; ``image_layers`` (``{image_id: [[diff_id, size], ...]}``
    when sized, where the shared part matters); ``container_details``
    (``inspect_stopped``: the list carries no ``FinishedAt``); ``volumes_from``;
    ``networks``.
    """
    info = api.info()
    engine_time = epoch_seconds(info.get("SystemTime"))
    clock_offset = engine_time - time.time() if engine_time is not None else 0.0
    root = local_data_root(docker_host, info.get("DockerRootDir"))
    sized = bool(check_mode) or root is None
    typed = api_at_least(api.api_version, TYPED_DF_API)
    full = not typed and options["builder_cache"] and check_mode  # 1.41: one full /system/df, every list from it
    source = {}
    if typed:
        types = [kind for kind, on in (("image", options["images"] != "none"),
                                       ("build-cache", options["builder_cache"])) if on]
        if types:  # the answer carries the other keys too, as null
            source = docker_api.request_json(api, "GET", "/system/df", params={"type": types})
    elif full:
        source = api.df()
    df = {"Containers": api.containers(all=True), "Images": None, "LayersSize": None,
          "Volumes": None, "BuildCache": None}
    if options["images"] != "none":
        if "Images" in source:
            df["Images"], df["LayersSize"] = source.get("Images") or [], source.get("LayersSize")
        else:
            df["Images"] = api.images()
    if options["builder_cache"] and "BuildCache" in source:
        df["BuildCache"] = source.get("BuildCache") or []
    if options["volumes"] != "none":
        df["Volumes"] = (source.get("Volumes") if full else api.volumes().get("Volumes")) or []
    state = {
        "info": {"DockerRootDir": info.get("DockerRootDir"), "ServerVersion": info.get("ServerVersion"),
                 "ApiVersion": api.api_version, "ID": info.get("ID"), "SystemTime": info.get("SystemTime")},
        "clock_offset": clock_offset, "data_root_local": root, "sized": sized, "df": df,
        "images_all": None, "image_layers": {}, "container_details": {}, "networks": None,
    }
    images = df["Images"] or []
    if any(img.get("ParentId") for img in images):
        state["images_all"] = api.images(all=True)
    if sized:
        for img in images:
            if (img.get("SharedSize") or 0) != 0:  # shared (> 0) or not computed (-1)
                state["image_layers"][img["Id"]] = image_layer_sizes(api, img["Id"])
        share_among_listed(images, state["image_layers"])
    if options["containers"]:
        state["container_details"] = inspect_stopped(api, df["Containers"], options["keep_label"], sized)
        state["volumes_from"] = volumes_from_references(api, df["Containers"], state["container_details"])
    if options["networks"]:
        state["networks"] = api.networks()
    return state


def inspect_stopped(api, containers, keep_label, sized):
    """``{id: {"Created", "State", "SizeRw", "VolumesFrom"}}`` of the stopped containers
    without ``keep_label`` (``size=1`` only when ``sized``); a container gone meanwhile is
    left out."""
    import docker

    details = {}
    for ctr in containers:
        if ctr.get("State") not in STOPPED_STATES or _has_label(ctr.get("Labels"), keep_label):
            continue
        try:
            data = docker_api.request_json(api, "GET", "/containers/%s/json" % ctr["Id"],
                                           params={"size": 1 if sized else 0})
        except docker.errors.NotFound:
            continue
        state = data.get("State") or {}
        details[ctr["Id"]] = {
            "Created": data.get("Created"), "SizeRw": data.get("SizeRw"),
            "VolumesFrom": (data.get("HostConfig") or {}).get("VolumesFrom") or [],
            "State": dict((key, state.get(key)) for key in (
                "Status", "ExitCode", "OOMKilled", "StartedAt", "FinishedAt"))}
    return details


def volumes_from_references(api, containers, details=None) -> dict:
    """``{container id: [reference, ...]}``: every container's ``HostConfig.VolumesFrom``
    (``name[:ro|rw]`` or an ID, as given to ``--volumes-from``), from ``details`` where
    ``inspect_stopped`` read it, else from an inspect; a container gone meanwhile has none.
    The list endpoint does not carry it, so running containers are inspected too."""
    import docker

    refs = {}
    for ctr in containers:
        known = (details or {}).get(ctr["Id"])
        if known is not None and "VolumesFrom" in known:
            refs[ctr["Id"]] = list(known["VolumesFrom"])
            continue
        try:
            data = api.inspect_container(ctr["Id"])
        except docker.errors.NotFound:
            continue
        refs[ctr["Id"]] = list((data.get("HostConfig") or {}).get("VolumesFrom") or [])
    return refs


def share_among_listed(images, image_layers):
    """Set each image's ``SharedSize`` to the bytes of its layers that another *listed*
    image holds too, wherever its layers are known.

    Engines differ: API 1.41's ``/images/json`` does not compute it (-1), 1.41's
    ``/system/df`` counts listed images only, Docker 23+ counts intermediate images too,
    so an image built with the classic builder shares everything with its own parents,
    which go with it. Without paired layers an unknown value counts as all shared, so
    estimates err low.
    """
    holders = {}
    chains = {}
    for img in images:
        layers = image_layers.get(img["Id"])
        if layers:
            chains[img["Id"]] = _layer_chains(layers)
            for chain, _size in chains[img["Id"]]:
                holders[chain] = holders.get(chain, 0) + 1
    for img in images:
        if img["Id"] in chains:
            img["SharedSize"] = sum(size for chain, size in chains[img["Id"]]
                                    if holders[chain] > 1)
        elif img.get("SharedSize") is None or img["SharedSize"] < 0:
            img["SharedSize"] = img.get("Size") or 0


def image_layer_sizes(api, image_id):
    """``[[diff_id, size], ...]`` bottom-up, or ``None`` when history and layers don't pair."""
    layers = (api.inspect_image(image_id).get("RootFS") or {}).get("Layers") or []
    history = list(reversed(api.history(image_id)))  # the API lists newest first
    sized = [h.get("Size") or 0 for h in history if (h.get("Size") or 0) > 0]
    if len(sized) == len(layers):
        sizes = sized
    elif len(history) == len(layers):
        sizes = [h.get("Size") or 0 for h in history]
    else:
        return None
    return [[diff, size] for diff, size in zip(layers, sizes)]


# --- planning (pure) -------------------------------------------------------------------

def _latest_time(value):
    """The latest instant a timestamp may stand for: an int (``/images/json``'s
    ``Created``) or an RFC 3339 time without a fraction (a volume's ``CreatedAt``) is
    truncated to the second, so the thing may be up to a second younger."""
    stamp = epoch_seconds(value)
    if stamp is None:
        return None
    whole = isinstance(value, (int, float)) or "." not in str(value).rsplit("T", 1)[-1]
    return stamp + 1.0 if whole else stamp


def _old_enough(created, cutoff):
    """True when ``created`` is at or before ``cutoff`` (no cutoff: always; unknown age:
    never), as the engine's ``until`` filter reads it (it keeps what is *after* the
    cutoff); a time truncated to the second counts as the latest it may be, so the plan
    never takes what the engine would keep."""
    if cutoff is None:
        return True
    stamp = _latest_time(created)
    return stamp is not None and stamp <= cutoff


def _has_label(labels, key):
    return bool(labels) and key in labels


def _image_refs(img):
    """``(tags, digests)`` of an image, without the engine's ``<none>`` placeholders."""
    return ([t for t in (img.get("RepoTags") or []) if t and t != "<none>:<none>"],
            [d for d in (img.get("RepoDigests") or []) if d and not d.startswith("<none>")])


def is_anonymous_volume(volume) -> bool:
    """The engine's anonymous label (Docker 23+), or a 64-hex name without a compose label."""
    labels = volume.get("Labels") or {}
    if ANONYMOUS_VOLUME_LABEL in labels:
        return True
    return bool(_HEX64.match(volume.get("Name") or "")) and COMPOSE_VOLUME_LABEL not in labels


def _layer_chains(layers):
    """``[(chain id, size), ...]`` of a bottom-up ``[[diff_id, size], ...]`` list (a layer's
    identity includes its parents)."""
    import hashlib

    chain, out = None, []
    for diff, size in layers:
        chain = diff if chain is None else "sha256:" + hashlib.sha256(
            (chain + " " + diff).encode()).hexdigest()
        out.append((chain, size))
    return out


def estimate_image_bytes(images, removed_ids, image_layers):
    """Bytes freed by removing ``removed_ids`` out of ``images`` (the df image list).

    Each removed image frees ``Size - SharedSize``; its shared layers are freed too when
    every image holding them is removed (known from ``image_layers``; images whose layers
    could not be paired keep their shared part, so the estimate errs low).
    """
    removed = set(removed_ids)
    total = 0
    holders = {}
    sizes = {}
    for img in images:
        shared = max(img.get("SharedSize") or 0, 0)
        if img["Id"] in removed:
            total += max((img.get("Size") or 0) - shared, 0)
        if shared <= 0:
            continue
        for chain, size in _layer_chains(image_layers.get(img["Id"]) or []):
            holders.setdefault(chain, set()).add(img["Id"])
            sizes[chain] = size
    for chain, ids in holders.items():
        if len(ids) > 1 and ids <= removed:
            total += sizes[chain]
    return total


def engine_clock_offset(state) -> float:
    """Seconds to add to this host's clock to read the engine's: its ``clock_offset`` at
    the inventory when the two differ by more than ``CLOCK_TOLERANCE``, else 0."""
    offset = float((state or {}).get("clock_offset") or 0.0)
    return offset if abs(offset) > CLOCK_TOLERANCE else 0.0


def plan_cleanup_steps(state, options, now=None) -> dict:
    """Decide every removal from ``collect_state`` data; touches nothing.

    ``options`` as returned by ``normalize_options``; ``now`` in unix seconds (default:
    the current time by the engine's clock, see ``engine_clock_offset``). Returns
    ``{"steps": [...], "estimated_bytes": N, "clock_offset": S}``; each step is
    ``{"name", "enabled", "planned": [{"id", "name", "size_bytes", ...}], "kept":
    [{"kind", "id", "name", "reason"}], "estimated_bytes"}`` in execution order
    (``size_bytes`` is ``None`` where the inventory did not size the item). Later steps
    see earlier ones done: an image used only by a container the containers step removes
    is unused by then. Volumes are the exception (``_plan_volumes``): a container and its
    data never go together.
    """
    offset = engine_clock_offset(state)
    now = time.time() + offset if now is None else now
    until = options["until_seconds"]
    cutoff = now - until if until > 0 else None
    df = state["df"]
    containers = df.get("Containers") or []

    def planned(name, planner, *args):  # a disabled step plans nothing
        return planner(*args) if options[name] and options[name] != "none" else _step(name, [], enabled=False)

    steps = [planned("builder_cache", _plan_build_cache, df.get("BuildCache"), cutoff),
             planned("containers", _plan_containers, containers, state.get("container_details"), options, now,
                     state.get("volumes_from") or {})]
    gone = set(item["id"] for item in steps[-1]["planned"])
    remaining = [c for c in containers if c["Id"] not in gone]
    steps += [planned("images", _plan_images, state, remaining, options, cutoff),
              planned("volumes", _plan_volumes, df.get("Volumes") or [], containers, gone, options, cutoff,
                      state.get("removed_volumes") or {}, now),
              planned("networks", _plan_networks, state.get("networks"), remaining, options, cutoff)]
    return {"steps": steps, "estimated_bytes": sum(s["estimated_bytes"] for s in steps),
            "clock_offset": offset}


def _plan_build_cache(records, cutoff):
    """What ``POST /build/prune?all=1&filters={"until":[...]}`` removes; with no listing
    (``records`` is ``None``) the step has no items and the engine decides."""
    if records is None:
        return _step("builder_cache", [], engine_decides=True, cutoff=cutoff)
    chosen, younger = {}, 0
    for rec in records:
        if rec.get("InUse"):
            continue
        # BuildKit keeps a record last used after the cutoff (one never used goes)
        last_used = _latest_time(rec.get("LastUsedAt"))
        if cutoff is not None and last_used is not None and last_used > cutoff:
            younger += 1
            continue
        chosen[rec["ID"]] = rec
    # a record stays while a record built on it stays
    staying = [rec for rec in records if rec["ID"] not in chosen]
    while staying:
        rec = staying.pop()
        for parent in list(rec.get("Parents") or []) + [rec.get("Parent")]:
            if parent in chosen:
                staying.append(chosen.pop(parent))
    items = [{"id": rec["ID"], "name": rec.get("Description") or rec.get("Type") or "",
              "type": rec.get("Type"), "shared": bool(rec.get("Shared")),
              "record_bytes": int(rec.get("Size") or 0),
              "size_bytes": 0 if rec.get("Shared") else int(rec.get("Size") or 0)}
             for rec in records if rec["ID"] in chosen]
    return _step("builder_cache", items, younger=younger, cutoff=cutoff)


def stopped_since(container, details):
    """When a stopped container last stopped: the latest of ``State.FinishedAt``,
    ``State.StartedAt`` and ``Created`` that the inspect data knows (``Created`` alone
    for one that never ran); ``None`` without inspect data."""
    if not details:
        return None
    state = details.get("State") or {}
    finished = state.get("FinishedAt")
    if finished and not str(finished).startswith("0001-") and epoch_seconds(finished) is None:
        return None  # a stop time there but unreadable: unknown, so the container stays
    stamps = [epoch_seconds(finished), epoch_seconds(state.get("StartedAt")),
              epoch_seconds(details.get("Created") or container.get("Created"))]
    return max((stamp for stamp in stamps if stamp is not None), default=None)


def crashed(status, state) -> bool:
    """Whether a stopped container ended badly: dead, killed for memory, or exit code not 0."""
    return status == "dead" or bool(state.get("OOMKilled")) or (state.get("ExitCode") or 0) != 0


def containers_until(options, floor=CONTAINER_MIN_AGE):
    """``(seconds, text, floored)``: ``containers_until`` raised to ``floor`` (``0s`` cannot
    switch it off), as seconds and as text (``24h``), and whether the floor decides: how long
    a stopped container must have been stopped to go, and its volumes stay after it went."""
    wanted = options["containers_until_seconds"]
    if wanted >= floor:
        return wanted, options["containers_until"], False
    return floor, _ago(floor).replace(" ", ""), True


def stopped_container_verdict(status, details, options, now, container=None):
    """``None`` when a stopped container (``status``: created, exited or dead; ``details``
    from its inspect) may go at ``now``, else why it stays, e.g. ``exited 5 min ago
    (exit 137), younger than 24h (the minimum after a crash)``."""
    state = (details or {}).get("State") or {}
    stopped = stopped_since(container or {}, details)
    if stopped is None:
        return "not removed: its stop time is unknown (inspect failed)"
    floor = CRASHED_CONTAINER_MIN_AGE if crashed(status, state) else CONTAINER_MIN_AGE
    need, need_text, floored = containers_until(options, floor)
    if stopped < now - need:
        return None
    if epoch_seconds(state.get("StartedAt")) is None:
        what = "created %s ago, never started" % _ago(now - stopped)
    else:
        what = "%s %s ago (exit %s%s)" % (
            "died" if status == "dead" else "exited", _ago(now - stopped),
            state.get("ExitCode"), ", out of memory" if state.get("OOMKilled") else "")
    if not floored:
        return "%s, younger than %s" % (what, need_text)
    return "%s, younger than %s (the minimum %s)" % (
        what, need_text, "after a crash" if floor == CRASHED_CONTAINER_MIN_AGE else "for a stopped container")


def _plan_containers(containers, details, options, now, refs):
    """Stopped containers that stopped long enough ago (``stopped_container_verdict``),
    carry no keep label, are named by no container's ``--volumes-from`` (``refs``, see
    ``volumes_from_references``) and hold no volume a staying container mounts; the
    others are ``kept`` with what happened to them and when."""
    items, kept = [], []
    details = details or {}
    for ctr in containers:
        if ctr.get("State") not in STOPPED_STATES or _has_label(ctr.get("Labels"), options["keep_label"]):
            continue
        name = _container_name(ctr)
        info = details.get(ctr["Id"])
        reason = (stopped_container_verdict(ctr.get("State"), info, options, now, ctr)
                  or volumes_from_reason(ctr, containers, refs))
        if reason is None:
            size = (info or {}).get("SizeRw", ctr.get("SizeRw"))
            items.append({"id": ctr["Id"], "name": name, "image": ctr.get("Image"),
                          "volumes": _volume_names(ctr), "size_bytes": _size_or_none(size)})
            continue
        kept.append(_kept_container(ctr["Id"], name, ctr, info, reason))
    items, shared = _keep_volume_holders(items, containers, details)
    return _step("containers", items, kept=kept + shared)


def volumes_from_reason(ctr, containers, refs):
    """Why a data container stays: the other containers whose ``--volumes-from`` (``refs``)
    names ``ctr``, by its name (with or without the leading ``/``) or by its ID or an ID
    prefix, as the engine resolves them (erring towards a match: a kept container costs
    only disk); ``None`` when none does."""
    names = set(n.lstrip("/") for n in ctr.get("Names") or [])
    users = []
    for other in containers:
        if other["Id"] == ctr["Id"]:
            continue
        for ref in refs.get(other["Id"]) or []:
            target = str(ref).split(":", 1)[0].strip()
            if target and (target.lstrip("/") in names or ctr["Id"].startswith(target)):
                users.append(_container_name(other))
                break
    if not users:
        return None
    return "a data container: %s %s its volumes (--volumes-from)" % (
        ", ".join(sorted(users)), "takes" if len(users) == 1 else "take")


def _kept_container(cid, name, ctr, details, reason):
    state = (details or {}).get("State") or {}
    return {"kind": "container", "id": cid, "name": name,
            "stopped_at": stopped_since(ctr, details), "exit_code": state.get("ExitCode"),
            "reason": reason}


def _volume_names(ctr):
    return [m["Name"] for m in ctr.get("Mounts") or [] if m.get("Type") == "volume" and m.get("Name")]


def _keep_volume_holders(items, containers, details):
    """Planned containers holding an anonymous volume that a staying container mounts too
    (``--volumes-from``: a data-only container, whose volume the list shows on both)
    stay, until no more do: ``(items, kept)``."""
    anonymous = dict((c["Id"], set(v for v in _volume_names(c) if _HEX64.match(v))) for c in containers)
    going = dict((item["id"], item) for item in items)
    kept, changed = [], True
    while changed:
        changed = False
        for item in list(going.values()):
            for other in containers:
                shared = anonymous[item["id"]] & anonymous[other["Id"]]
                if other["Id"] in going or not shared:
                    continue
                ctr = next(c for c in containers if c["Id"] == item["id"])
                kept.append(_kept_container(item["id"], item["name"], ctr, details.get(item["id"]), (
                    "holds volume %s…, which %s mounts too (--volumes-from)"
                    % (sorted(shared)[0][:12], _container_name(other)))))
                del going[item["id"]]
                changed = True
                break
    return [item for item in items if item["id"] in going], kept


def _ago(seconds):
    """``45 s``, ``5 min``, ``3 h``, ``2 days`` (rounded down)."""
    seconds = max(int(seconds), 0)
    for unit, size in (("days", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size * (2 if unit == "days" else 1):
            return "%d %s" % (seconds // size, unit)
    return "%d s" % seconds


def _container_name(ctr):
    return ((ctr.get("Names") or ["?"])[0]).lstrip("/")


def _size_or_none(value):
    """An item size from an engine figure; ``None`` when not computed (missing or -1)."""
    if value is None or isinstance(value, bool) or value < 0:
        return None
    return int(value)


def _plan_images(state, remaining, options, cutoff):
    """Images no remaining container uses (nor ``state["held_images"]`` holds), old
    enough, not kept; parents of anything that stays stay too; deeper images first (a
    parent goes after its children)."""
    images = state["df"].get("Images") or []
    by_id = dict((img["Id"], img) for img in state.get("images_all") or [])
    for img in images:
        by_id.setdefault(img["Id"], img)
    used = set(c.get("ImageID") for c in remaining if c.get("ImageID"))
    used.update(state.get("held_images") or ())
    chosen, younger = _unused_images(images, used, options, cutoff)
    chosen -= _held_parents(by_id, chosen, used)
    depth = _depths(by_id, chosen)
    items = [_image_item(img, depth[img["Id"]], state.get("sized", True))
             for img in sorted((i for i in images if i["Id"] in chosen),
                               key=lambda i: (-depth[i["Id"]], i.get("Created") or 0, i["Id"]))]
    estimate = None
    if all(item["size_bytes"] is not None for item in items):
        estimate = estimate_image_bytes(images, chosen, state.get("image_layers") or {})
    return _step("images", items, estimate, younger=younger)


def _unused_images(images, used, options, cutoff):
    """``(ids, younger)``: the listed images the mode takes that no remaining container uses,
    without the keep label and old enough; how many only their age kept."""
    dangling = options["images"] == "dangling"
    old, younger = _by_age(images, options, cutoff, "Created",
                           lambda img: img["Id"] not in used and not (dangling and any(_image_refs(img))))
    return set(img["Id"] for img in old), younger


def _depths(by_id, ids):
    """``{id: how many ancestors}`` (the ``ParentId`` chain of locally built images), with
    each chain walked once (legacy builds nest thousands of intermediate images); a cycle
    ends a chain."""
    depth = {}
    for img_id in ids:
        path, on_path, node = [], set(), img_id
        while node and node not in depth and node not in on_path:
            on_path.add(node)
            path.append(node)
            node = (by_id.get(node) or {}).get("ParentId")
        below = depth[node] if node in depth else -1
        for member in reversed(path):
            below += 1
            depth[member] = below
    return dict((img_id, depth[img_id]) for img_id in ids)


def _held_parents(by_id, chosen, used):
    """Every ancestor of an image that stays (known, or in use): it stays too. A walk stops
    at a parent already held, so each chain is walked once."""
    held = set()
    for img_id in list(by_id) + list(used):
        if img_id in chosen:
            continue
        parent = (by_id.get(img_id) or {}).get("ParentId")
        while parent and parent not in held:
            held.add(parent)
            parent = (by_id.get(parent) or {}).get("ParentId")
    return held


def _image_item(img, depth, sized):
    """One planned image; ``size_bytes`` is what only it holds (its size less the part
    shared with other images), ``None`` when the inventory did not size it."""
    shared = img.get("SharedSize")
    alone = (None if not sized or shared is None or shared < 0
             else max((img.get("Size") or 0) - shared, 0))
    tags, digests = _image_refs(img)
    return {"id": img["Id"], "name": ", ".join(tags) or "<none>", "tags": tags,
            "digests": digests, "depth": depth, "size_bytes": alone}


def _plan_volumes(volumes, containers, gone, options, cutoff, removed_volumes, now):
    """Volumes no container references, counting the containers this run removes: their
    volumes are ``kept`` until a later run, and (``removed_volumes``, from the state file)
    for ``containers_until`` after the run that removed their container (a crashed
    database and its data never go together)."""
    users = {}
    for ctr in containers:
        for name in _volume_names(ctr):
            users.setdefault(name, []).append(ctr)
    items, kept, younger = [], [], 0
    recent = recent_removals(removed_volumes, options, now)
    for vol in volumes:
        if not vol.get("Name") or _has_label(vol.get("Labels"), options["keep_label"]):
            continue
        if options["volumes"] == "anonymous" and not is_anonymous_volume(vol):
            continue
        holders = users.get(vol.get("Name")) or []
        if not _old_enough(vol.get("CreatedAt"), cutoff):
            younger += 0 if holders else 1
            continue
        reason = _kept_volume_reason(vol.get("Name"), holders, gone, recent, options, now)
        if reason:
            kept.append({"kind": "volume", "id": vol["Name"], "name": vol["Name"], "reason": reason})
        if not holders and not reason:
            items.append({"id": vol["Name"], "name": vol["Name"], "anonymous": is_anonymous_volume(vol),
                          "mountpoint": vol.get("Mountpoint"),
                          "size_bytes": _size_or_none((vol.get("UsageData") or {}).get("Size"))})
    return _step("volumes", items, kept=kept, younger=younger)


def _kept_volume_reason(name, holders, gone, recent, options, now):
    """Why an old, unlabelled volume stays although it looks unused, or ``""``: its only
    containers go in this run, or a cleanup removed its container within the grace time
    (``recent``, see ``recent_removals``)."""
    if holders:
        if all(ctr["Id"] in gone for ctr in holders):
            return ("data of %s, which this run removes; a later run may remove it"
                    % ", ".join(sorted(_container_name(c) for c in holders)))
        return ""
    record = recent.get(name)
    if record:
        return ("data of %s, which a cleanup removed %s ago; kept for %s after that"
                % (record.get("container") or "a container", _ago(now - record["removed_at"]),
                   containers_until(options)[1]))
    return ""


def recent_removals(records, options, now):
    """The records (``load_removed_volumes``) of volumes whose container a cleanup removed
    less than ``containers_until`` (at least ``CONTAINER_MIN_AGE``) before ``now``."""
    grace = containers_until(options)[0]
    return dict((name, entry) for name, entry in records.items()
                if isinstance((entry or {}).get("removed_at"), (int, float)) and entry["removed_at"] > now - grace)


def _plan_networks(networks, remaining, options, cutoff):
    """User-defined networks no remaining container (running or stopped) is attached to."""
    attached = set()
    for ctr in remaining:
        nets = ((ctr.get("NetworkSettings") or {}).get("Networks") or {})
        for net_name, net in nets.items():
            attached.add(net_name)
            if net and net.get("NetworkID"):
                attached.add(net["NetworkID"])

    def unused(net):  # user-defined, not swarm's, attached to no remaining container
        name = net.get("Name")
        return not (name in BUILTIN_NETWORKS or net.get("Ingress") or net.get("Scope") == "swarm"
                    or name in attached or net.get("Id") in attached or net.get("Containers"))
    old, younger = _by_age(networks or [], options, cutoff, "Created", unused)
    items = [{"id": net["Id"], "name": net.get("Name"), "size_bytes": 0} for net in old]
    return _step("networks", items, younger=younger)


def _by_age(objects, options, cutoff, created, wanted):
    """``(old, younger)``: the ``objects`` that ``wanted`` takes and that carry no keep label,
    created (``created`` key) at or before ``cutoff`` (``_old_enough``); how many of them
    only their age kept."""
    candidates = [obj for obj in objects if wanted(obj) and not _has_label(obj.get("Labels"), options["keep_label"])]
    old = [obj for obj in candidates if _old_enough(obj.get(created), cutoff)]
    return old, len(candidates) - len(old)


def _step(name, items, estimate=None, **extra):
    """An enabled planned step; ``estimated_bytes`` sums the sized items unless given;
    ``extra`` keys (``enabled``, ``kept``, ``younger``, ...) replace or add to the defaults."""
    if estimate is None:
        estimate = sum(i["size_bytes"] for i in items if i["size_bytes"] is not None)
    step = {"name": name, "enabled": True, "planned": items, "kept": [],
            "younger": 0, "estimated_bytes": int(estimate)}
    step.update(extra)
    return step


# --- disk usage ---------------------------------------------------------------------------

VOLUME_SIZE_TIMEOUT = 60  # seconds per planned volume; a partial walk is a lower bound


def local_data_root(docker_host, docker_root_dir):
    """The engine's data root when it can be measured here (a local socket), else ``None``."""
    if not docker_root_dir or not str(docker_host or "").startswith("unix://"):
        return None
    return docker_root_dir if os.path.isdir(docker_root_dir) else None


def size_planned_volumes(plan, data_root) -> list:
    """Size the planned volumes the inventory did not (``du -x`` of their mount point,
    which is under ``data_root`` for the local driver) and update the estimates.

    Only the planned ones: an in-use photo volume is never walked. Returns warnings:
    volumes that cannot be sized from here (remote engine, other drivers) stay ``None``.
    """
    from .disk import measure_tree

    step = next(s for s in plan["steps"] if s["name"] == "volumes")
    unknown = []
    for item in step["planned"]:
        if item["size_bytes"] is not None:
            continue
        path = item.get("mountpoint") or ""
        try:
            if not data_root or not os.path.isdir(path):
                raise OSError("not visible here")
            tree = measure_tree(path, timeout=VOLUME_SIZE_TIMEOUT)
        except (OSError, OpsError):  # remote, another driver, or removed meanwhile
            unknown.append(item["name"])
            continue
        item["size_bytes"] = tree["bytes"]
        item["size_partial"] = tree["partial"]
    step["estimated_bytes"] = sum(i["size_bytes"] or 0 for i in step["planned"])
    plan["estimated_bytes"] = sum(s["estimated_bytes"] for s in plan["steps"])
    if not unknown:
        return []
    return ["size of %d planned volume(s) unknown (their data is not visible here): %s"
            % (len(unknown), ", ".join(unknown[:5]))]


# --- execution --------------------------------------------------------------------------

def _api_error_text(exc):
    explanation = getattr(exc, "explanation", None)
    return docker_api.short_error(explanation or exc)


def _outcome(removed=(), freed=0, errors=(), kept=(), moved_tags=(), planned=None):
    """What a step runner returns (and each item's removal, merged by ``_merged``):
    ids/names removed, bytes freed by the engine's or the plan's figures, per-item errors,
    items kept at run time, tags that moved."""
    return {"removed": list(removed), "freed": int(freed), "errors": list(errors),
            "kept": list(kept), "moved_tags": list(moved_tags), "planned": planned}


def _merged(outcomes):
    """One ``_outcome`` of the items' outcomes, in their order."""
    total = _outcome()
    for outcome in outcomes:
        for key in ("removed", "freed", "errors", "kept", "moved_tags"):
            total[key] += outcome[key]
    return total


def _item_failed(kind, item, exc, moved_tags=()):
    """The outcome of an item whose removal failed: one error line, ``<kind> <name>: <why>``."""
    return _outcome(errors=["%s %s: %s" % (kind, item["name"], _api_error_text(exc))],
                    moved_tags=moved_tags)


def _each(step, kind, remove):
    """``remove(item)``'s outcomes for the planned items, merged; an item whose removal
    raises is ``_item_failed`` and the rest go on."""
    outcomes = []
    for item in step["planned"]:
        try:
            outcomes.append(remove(item))
        except Exception as exc:  # noqa: BLE001 - reported per item, the rest goes on
            outcomes.append(_item_failed(kind, item, exc))
    return _merged(outcomes)


def engine_until(step, options, clock):
    """The ``until`` for ``/build/prune`` now: the plan's cutoff (``step["cutoff"]``, the
    engine's clock) as a duration from now, in whole seconds rounded up plus one (the
    request's way to the engine), so the engine removes no record the plan kept, however
    long the earlier steps took; ``until`` itself without a cutoff."""
    cutoff = step.get("cutoff")
    if cutoff is None:
        return options["until"]
    seconds = int(math.ceil(clock() - cutoff)) + 1
    return "%ds" % min(max(seconds, 1), GO_DURATION_MAX_NS // 10 ** 9)


def _run_builder_cache(api, step, options, clock):
    """``POST /build/prune``: the engine removes what the filter selects (the plan's
    prediction, or, without a listing, whatever it decides) and says what it removed."""
    if not step["planned"] and not step.get("engine_decides"):
        return _outcome()
    params = {"all": "1"}
    if options["until_seconds"] > 0:
        import json

        params["filters"] = json.dumps({"until": [engine_until(step, options, clock)]})
    result = docker_api.request_json(api, "POST", "/build/prune", params=params)
    deleted = list(result.get("CachesDeleted") or [])
    # The engine counts records shared with image layers too; their data stays with the
    # image (it is freed, and counted, when the image goes), so take them out again.
    shared = dict((i["id"], i["record_bytes"]) for i in step["planned"] if i["shared"])
    freed = int(result.get("SpaceReclaimed") or 0) - sum(shared.get(d, 0) for d in deleted)
    items = None
    if step.get("engine_decides"):
        items = [{"id": d, "name": "", "size_bytes": None} for d in deleted]
    return _outcome(deleted, max(freed, 0), planned=items)


def _run_containers(api, step, options, clock):
    """Remove the planned containers; each is inspected right before and judged again by
    its state now: one started since the plan, or stopped more recently than its age
    rule allows (started, then crashed), or named by the ``--volumes-from`` of a container
    (one created since the plan too), is ``kept``. One gone meanwhile is skipped."""
    import docker

    if not step["planned"]:
        return _outcome()
    current = api.containers(all=True)  # those created since the plan may name one in --volumes-from
    refs = volumes_from_references(api, current)

    def remove(item):
        try:
            data = api.inspect_container(item["id"])
            reason = (_changed_since_plan(data, options, clock())
                      or volumes_from_reason({"Id": item["id"], "Names": [data.get("Name") or ""]},
                                             current, refs))
            if reason is None:
                api.remove_container(item["id"], v=False, force=False)
        except docker.errors.NotFound:
            return _outcome()
        if reason is not None:
            return _outcome(kept=[_kept_container(item["id"], item["name"], {}, data, reason)])
        return _outcome([item["id"]], item["size_bytes"] or 0)
    return _each(step, "container", remove)


def _changed_since_plan(data, options, now):
    """Why a container planned for removal must stay after all (``None``: it may go),
    from its inspect data now: running (or paused, restarting), or a stop too recent."""
    state = data.get("State") or {}
    status = state.get("Status")
    if status not in STOPPED_STATES or state.get("Running") or state.get("Restarting"):
        reason = "%s now" % (status or "running")
    else:
        reason = stopped_container_verdict(status, data, options, now)
    return None if reason is None else "started or stopped since the plan: " + reason


def single_reference(tags, digests) -> bool:
    """Whether the engine deletes an image by ID without ``force``: at most one tag, and
    every name in one repository (moby ``isSingleReference``); no names at all too."""
    refs = list(tags) + list(digests)
    if len(refs) <= 1:
        return True
    repos = set(_repository(ref) for ref in refs)
    return len(tags) <= 1 and len(repos) == 1


def _repository(ref):
    """``registry:5000/app`` of ``registry:5000/app:1`` or ``registry:5000/app@sha256:...``."""
    name = ref.split("@", 1)[0]
    head, _sep, tail = name.rpartition(":")
    return head if head and "/" not in tail else name


def _remove_image(api, item):
    """Remove one planned image by its ID, never by a tag: a tag can move to another image
    between the plan and now, an ID cannot. Right before, the image's names are read
    again: a planned tag it lost is reported in ``moved`` and left where it is; a name it
    gained since the plan keeps the image. With one name (or one repository and one
    tag) the engine's own check refuses an image any container uses; with several it
    only deletes with ``force``, which skips that check for stopped containers, so that
    is done here first (the engine still refuses running containers and child images).

    Returns the image's ``_outcome``.
    """
    import docker

    size = item["size_bytes"] or 0
    try:
        now = api.inspect_image(item["id"])
        tags, digests = _image_refs(now)
        gained = [ref for ref in tags + digests
                  if ref not in item["tags"] + item.get("digests", [])]
        force = not single_reference(tags, digests)
        users = []
        if force and not gained:  # the check the engine skips with force
            users = api.containers(all=True, filters={"ancestor": item["id"]})
    except docker.errors.NotFound:
        return _outcome([item["id"]], size)  # gone already: a parent pruned with its child
    except Exception as exc:  # noqa: BLE001 - not checked, not removed; the rest goes on
        return _item_failed("image", item, exc)
    moved = [_moved_tag(api, tag, item["id"]) for tag in item["tags"] if tag not in tags]
    if gained or users:
        reason = ("named %s since the plan" % ", ".join(gained) if gained else
                  "used by container %s since the plan" % _container_name(users[0]))
        return _outcome(kept=[{"kind": "image", "id": item["id"], "name": item["name"], "reason": reason}],
                        moved_tags=moved)
    try:
        api.remove_image(item["id"], force=force, noprune=False)
    except Exception as exc:  # noqa: BLE001 - decided below
        try:
            api.inspect_image(item["id"])
        except docker.errors.NotFound:  # gone after all (a parent prune raced us)
            return _outcome([item["id"]], size, moved_tags=moved)
        except Exception:  # noqa: BLE001 - report the removal's error
            pass
        return _item_failed("image", item, exc, moved)
    error = _users_after_forced_removal(api, item) if force else None
    return _outcome([item["id"]], size, [error] if error else [], moved_tags=moved)


def _users_after_forced_removal(api, item):
    """After a forced removal: an error naming the containers that use the removed image
    (created between the check and the removal, which ``force`` let through), else ``None``."""
    removed = "image %s: removed (several names need force), but " % item["name"]
    try:
        users = [c for c in api.containers(all=True) if c.get("ImageID") == item["id"]]
    except Exception as exc:  # noqa: BLE001 - say that it could not be checked
        return removed + "the containers created meanwhile could not be listed: %s" % _api_error_text(exc)
    if not users:
        return None
    return removed + ("container %s, created since the check, uses it: it cannot be recreated from that image"
                      % ", ".join(sorted(_container_name(c) for c in users)))


def _moved_tag(api, tag, planned_id):
    """``{"tag", "planned_image", "image"}``: where a planned tag points now (``None``: nowhere)."""
    try:
        now = api.inspect_image(tag).get("Id")
    except Exception:  # noqa: BLE001 - removed, or not readable: it points nowhere we know
        now = None
    return {"tag": tag, "planned_image": planned_id, "image": now}


IMAGE_WORKERS = 4


def _run_images(api, step, _options, _clock):
    """Remove deeper images first; images at one depth in parallel (``IMAGE_WORKERS``).

    The engine does the heavy part (layer directories); a few connections keep both it
    and this process busy, which is what keeps the module close to ``image prune``.
    """
    levels, outcomes = {}, []
    for item in step["planned"]:
        levels.setdefault(item.get("depth", 0), []).append(item)
    clone = getattr(api, "clone", None)
    for depth in sorted(levels, reverse=True):
        items = levels[depth]
        if clone is None or len(items) < 2:
            outcomes += [_remove_image(api, item) for item in items]
        else:
            outcomes += _parallel(clone, _remove_image, items, IMAGE_WORKERS, "image")
    outcome = _merged(outcomes)
    if len(outcome["removed"]) == len(step["planned"]):
        outcome["freed"] = step["estimated_bytes"]  # shared layers too (see estimate_image_bytes)
    return outcome


def _parallel(clone, func, items, workers, kind):
    """``[func(client, item) for item in items]`` on ``workers`` threads, one client each;
    an item whose call raises (its thread's client could not be made, say) gets
    ``_item_failed(kind, item, exc)``, so the others' outcomes are never lost to it."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()
    clients = []
    lock = threading.Lock()

    def call(item):
        try:
            client = getattr(local, "client", None)
            if client is None:
                client = local.client = clone()
                with lock:
                    clients.append(client)
            return func(client, item)
        except Exception as exc:  # noqa: BLE001 - one item's failure, reported as its outcome
            return _item_failed(kind, item, exc)

    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            return list(pool.map(call, items))
    finally:
        for client in clients:
            client.close()


def _run_volumes(api, step, _options, _clock):
    def remove(item):
        api.remove_volume(item["name"], force=False)
        return _outcome([item["name"]], item["size_bytes"] or 0)
    return _each(step, "volume", remove)


def _run_networks(api, step, _options, _clock):
    def remove(item):
        api.remove_network(item["id"])
        return _outcome([item["name"]])
    return _each(step, "network", remove)


_RUNNERS = {"builder_cache": _run_builder_cache, "containers": _run_containers,
            "images": _run_images, "volumes": _run_volumes, "networks": _run_networks}


def _removed_names(step):
    key = "name" if step["name"] in ("volumes", "networks") else "id"
    return [item[key] for item in step["planned"]]


def execute_plan(plan, options, *, api=None, usage=None, check_mode=False):
    """Run (or, in check mode, report) the planned steps in order; returns the result dict.

    ``usage`` returns the data root's file system usage (``disk.filesystem_usage``), read
    before the run and after each step, or is ``None`` when it cannot be measured. A step's
    ``reclaimed_bytes`` is the drop in used bytes it measures (other writers on that file
    system count too), else the engine's or the plan's figures; in check mode, the estimate.
    With ``target_percent`` the steps stop after the one that brings usage (df's Use%) below
    it (check mode: by the estimates).
    """
    offset = plan.get("clock_offset") or 0.0

    def clock():
        return time.time() + offset

    def reached():  # usage below target_percent: the remaining steps are skipped
        return target is not None and current is not None and current < target

    def measure():
        """``usage()``, or ``None`` (said once in ``warnings``) when the data root cannot be
        measured any more, so a failed reading never ends a run mid-way (the removed
        volumes' record is written after it)."""
        if usage is None:
            return None
        try:
            return usage()
        except (OSError, OpsError) as exc:
            note = "the data root's usage could not be measured (%s); steps run on without the target" % exc
            if note not in warnings:
                warnings.append(note)
            return None

    target, warnings = options.get("target_percent"), []
    fs = measure()
    before = current = fs["used_percent"] if fs else None
    used, total = (fs["used_bytes"], fs["used_bytes"] + fs["free_bytes"]) if fs else (0, 0)
    if target is not None and before is None:
        warnings.append("target_percent ignored: the engine's data root cannot be measured "
                        "from here (remote engine); every enabled step runs")
        target = None
    steps = []
    for planned in plan["steps"]:
        result = {"name": planned["name"], "enabled": planned["enabled"], "removed": [],
                  "planned": planned["planned"], "estimated_bytes": planned["estimated_bytes"],
                  "reclaimed_bytes": 0, "skipped": None, "younger": planned.get("younger", 0),
                  "errors": [], "kept": [], "moved_tags": []}
        steps.append(result)
        if not planned["enabled"] or reached():
            result["skipped"] = "target reached" if planned["enabled"] else "disabled"
            continue
        fs_now = None
        if check_mode:  # the plan's items and estimate; nothing is called
            outcome = _outcome(_removed_names(planned), planned["estimated_bytes"])
            used -= planned["estimated_bytes"]
            if current is not None and total:
                current = ceil_percent(max(used, 0), total)
        else:
            try:
                outcome = _RUNNERS[planned["name"]](api, planned, options, clock)
            except Exception as exc:  # noqa: BLE001 - the engine stopped answering, a /build/prune timed out: one line, the rest goes on
                outcome = _outcome(errors=["%s: the step failed: %s" % (planned["name"], _api_error_text(exc))])
            fs_now = measure() if fs else None
        if not outcome["removed"] and not check_mode:
            outcome["freed"] = 0  # another writer's noise is not ours
        elif fs_now:
            outcome["freed"] = max(fs["used_bytes"] - fs_now["used_bytes"], 0)
        result.update(removed=outcome["removed"], reclaimed_bytes=outcome["freed"], errors=outcome["errors"],
                      kept=list(planned.get("kept") or []) + outcome["kept"], moved_tags=outcome["moved_tags"],
                      planned=planned["planned"] if outcome["planned"] is None else outcome["planned"])
        if fs_now:
            fs, current = fs_now, fs_now["used_percent"]
    return {
        "changed": any(s["removed"] for s in steps),
        "check_mode": bool(check_mode),
        "steps": steps,
        "reclaimed_bytes": sum(s["reclaimed_bytes"] for s in steps),
        "estimated_bytes": plan["estimated_bytes"],
        "usage_before_percent": before,
        "usage_after_percent": current,
        "target_percent": options.get("target_percent"),
        "target_reached": reached() if target is not None else None,
        "until": options.get("until"),
        "kept": [entry for s in steps for entry in s["kept"]],
        "moved_tags": [entry for s in steps for entry in s["moved_tags"]],
        "errors": [error for s in steps for error in s["errors"]],
        "warnings": warnings,
    }


# --- what earlier runs removed (state file) ------------------------------------------------

def removed_volumes_path(state_dir, engine_id):
    """``<state_dir>/docker-cleanup/removed-volumes-<engine>.json``: one file per engine."""
    key = re.sub(r"[^A-Za-z0-9_.-]", "-", str(engine_id or "unknown"))[:100]
    return os.path.join(state_dir, "docker-cleanup", "removed-volumes-%s.json" % key)


def load_removed_volumes(path) -> dict:
    """``{volume: {"container", "removed_at"}}`` from the file (``{}`` when missing or torn)."""
    volumes = read_json_object(path).get("volumes") if path else None
    return dict((name, entry) for name, entry in (volumes or {}).items()
                if isinstance(entry, dict)) if isinstance(volumes, dict) else {}


def remember_removed_volumes(path, known, plan, result, options, now) -> list:
    """Record the volumes of the containers this run removed (with when), dropping
    records older than ``recent_removals`` keeps; returns warnings (a state directory that
    cannot be written costs the protection after this run, never the run)."""
    step = next(s for s in plan["steps"] if s["name"] == "containers")
    removed = set(next(s for s in result["steps"] if s["name"] == "containers")["removed"])
    fresh = recent_removals(known, options, now)
    added = dict((volume, {"container": item["name"], "removed_at": round(now, 3)})
                 for item in step["planned"] if item["id"] in removed
                 for volume in item.get("volumes") or [])
    if not added and fresh == known:
        return []
    fresh.update(added)
    problem = None
    try:
        if not write_json_atomic(path, {"volumes": fresh}, mode=0o600):
            problem = "the file system is full or read-only"
    except OSError as exc:
        problem = exc.strerror or str(exc)
    if problem is None:
        return []
    return ["could not record in %s which volumes belonged to removed containers (%s): "
            "%s" % (path, problem, "they are kept in this run only" if added else
                    "old records stay")]


def _clock_warning(offset):
    if not offset:
        return []
    return ["the engine's clock is %s %s this host's: ages are measured by the engine's "
            "clock" % (_ago(abs(offset)), "ahead of" if offset > 0 else "behind")]


def run_docker_cleanup(options, check_mode=False, held_images=()) -> dict:
    """Plan and (unless ``check_mode``) run the cleanup; returns plain data: the keys the
    module's ``RETURN`` documents (plugins/modules/docker_cleanup.py), with ``changed``,
    ``check_mode``, ``target_percent`` and ``warnings``. ``held_images``: image ids kept
    as if a container used them (and so their parents), for a caller about to create
    containers from them (service_down).
    Raises ``OpsError`` for bad options or an unreachable daemon (nothing removed then).
    """
    opts = normalize_options(options)
    api, host = connect(opts["docker_host"])
    try:
        try:
            state = collect_state(api, opts, docker_host=host, check_mode=check_mode)
        except Exception as exc:  # noqa: BLE001 - a daemon that fails mid-way
            raise OpsError("the Docker daemon at %s did not answer the inventory (%s); "
                           "nothing was removed" % (host, _api_error_text(exc)))
        record = (removed_volumes_path(opts["state_dir"], state["info"].get("ID"))
                  if opts["state_dir"] else None)
        state["removed_volumes"] = load_removed_volumes(record)
        state["held_images"] = list(held_images)
        plan = plan_cleanup_steps(state, opts)
        root = state["data_root_local"]
        notes = _clock_warning(plan["clock_offset"])
        notes += size_planned_volumes(plan, root) if state["sized"] else []
        usage = (lambda: filesystem_usage(root)) if root else None  # df's figures (disk.py)
        result = execute_plan(plan, opts, api=api, usage=usage, check_mode=check_mode)
    finally:
        api.close()
    if record and not check_mode:
        notes += remember_removed_volumes(record, state["removed_volumes"], plan, result, opts,
                                          time.time() + plan["clock_offset"])
    info = state["info"]
    result.update(warnings=notes + result["warnings"], data_root=info.get("DockerRootDir"),
                  data_root_measured=root is not None, docker_host=host,
                  server_version=info.get("ServerVersion"), api_version=info.get("ApiVersion"))
    return result

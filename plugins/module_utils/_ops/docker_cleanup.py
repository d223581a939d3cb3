# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Docker cleanup that never removes what something still uses.

Control flow: ``run_docker_cleanup(options)`` ->
``normalize_options`` -> ``connect`` -> ``collect_state`` (one ``/info``, one
``/system/df``, plus ``/images/json?all=1`` when parent chains exist, layer details
for images sharing layers, ``/networks`` when that step is on) ->
``plan_cleanup_steps`` (pure: decides every removal from that data) ->
``execute_plan`` (skipped in check mode) -> a plain result dict.

Steps run in this order, each only when enabled:

``builder_cache``  BuildKit cache records not used for ``until`` (POST /build/prune,
                   ``all=true``, filter ``until``; the engine picks, we predict).
``containers``     stopped (created/exited/dead) containers created before ``until``.
``images``         ``unused``: images no container uses (running or stopped, counting
                   parent chains); ``dangling``: of those, the ones without tag or digest.
``volumes``        volumes no container references; ``anonymous``: only volumes that were
                   never named; ``all``: also unused named volumes.
``networks``       user-defined networks no container (running or stopped) is attached to.

Rules the engine's own prune does not give on every version, decided here:

* anything carrying ``keep_label`` (any value) is never removed (build cache records
  carry no labels: the label does not apply to them);
* ``until`` applies to every step (build cache: last use; others: creation time), also
  to volumes and networks; ``0s`` switches the age filter off;
* a volume is *anonymous* when the engine says so (label ``com.docker.volume.anonymous``,
  Docker 23+), or, on older engines, when its name is 64 hex digits and it carries no
  ``com.docker.compose.volume`` label. API 1.41 (Docker 20.10) ``volume prune`` removes
  unused *named* volumes too; ``volumes: anonymous`` never does, on any engine;
* networks used by stopped containers are kept (``network prune`` removes them, after
  which ``docker start`` of that container fails).

Usage figures come from ``os.statvfs`` of the engine's ``DockerRootDir`` when the engine
is local (a ``unix://`` socket and the directory exists here). For a remote engine they
are ``None`` and ``target_percent`` is ignored with a warning.
"""

from __future__ import annotations

import os
import re
import time
from datetime import datetime, timezone

from .errors import OpsError

STEP_ORDER = ("builder_cache", "containers", "images", "volumes", "networks")
IMAGE_MODES = ("none", "dangling", "unused")
VOLUME_MODES = ("none", "anonymous", "all")
DEFAULT_OPTIONS = {
    "builder_cache": True,
    "images": "unused",
    "until": "168h",
    "containers": False,
    "volumes": "none",
    "networks": False,
    "keep_label": "runbook.ops.keep",
    "target_percent": None,
    "docker_host": None,
}
ANONYMOUS_VOLUME_LABEL = "com.docker.volume.anonymous"
COMPOSE_VOLUME_LABEL = "com.docker.compose.volume"
STOPPED_STATES = ("created", "exited", "dead")
BUILTIN_NETWORKS = ("bridge", "host", "none")
DEFAULT_SOCKET = "unix:///var/run/docker.sock"

_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0,
                   "h": 3600.0}
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


# --- options -----------------------------------------------------------------------

def parse_duration(text) -> float:
    """Seconds in a Go duration string (``168h``, ``1h30m``, ``90s``, ``0``).

    Raises ``OpsError`` for anything else (Docker's ``until`` takes the same syntax).
    """
    value = str(text).strip()
    if value == "0":
        return 0.0
    pos, total = 0, 0.0
    while pos < len(value):
        match = _DURATION_PART.match(value, pos)
        if not match:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if not value or pos != len(value):
        raise OpsError("until: %r is not a duration; use a Go duration such as 168h, 24h, "
                       "90m or 0s" % (text,))
    return total


def normalize_options(options) -> dict:
    """Defaults filled in, values checked; returns a new dict or raises ``OpsError``."""
    opts = dict(DEFAULT_OPTIONS)
    unknown = sorted(set(options or {}) - set(DEFAULT_OPTIONS))
    if unknown:
        raise OpsError("unknown option(s): %s; known: %s"
                       % (", ".join(unknown), ", ".join(sorted(DEFAULT_OPTIONS))))
    for key, value in (options or {}).items():
        if value is not None:
            opts[key] = value
    for key in ("builder_cache", "containers", "networks"):
        if not isinstance(opts[key], bool):
            raise OpsError("%s: %r is not a boolean; use true or false" % (key, opts[key]))
    if opts["images"] not in IMAGE_MODES:
        raise OpsError("images: %r is not one of %s" % (opts["images"], ", ".join(IMAGE_MODES)))
    if opts["volumes"] not in VOLUME_MODES:
        raise OpsError("volumes: %r is not one of %s"
                       % (opts["volumes"], ", ".join(VOLUME_MODES)))
    opts["until_seconds"] = parse_duration(opts["until"])
    if not isinstance(opts["keep_label"], str) or not opts["keep_label"].strip():
        raise OpsError("keep_label: must be a non-empty label key such as runbook.ops.keep")
    if opts["target_percent"] is not None:
        try:
            target = float(opts["target_percent"])
        except (TypeError, ValueError):
            target = -1.0
        if not 0 < target < 100 or isinstance(opts["target_percent"], bool):
            raise OpsError("target_percent: %r is not a percentage between 0 and 100 "
                           "(exclusive)" % (opts["target_percent"],))
        opts["target_percent"] = target
    return opts


# --- talking to the engine -----------------------------------------------------------

def connect(docker_host=None, timeout=120):
    """``(api, host)``: a low-level ``docker.APIClient`` (docker SDK >= 5.0) that answered
    with its API version, and the host it talks to (``unix:///var/run/docker.sock``,
    ``tcp://...``). On a unix socket the client keeps one connection for every path.

    ``docker_host`` overrides ``DOCKER_HOST``; TLS settings come from the usual
    ``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``. Raises ``OpsError`` if nothing answers.
    """
    import docker
    from docker.utils import kwargs_from_env

    kwargs = kwargs_from_env()
    if docker_host:
        kwargs["base_url"] = docker_host
    kwargs.setdefault("base_url", DEFAULT_SOCKET)
    where = kwargs["base_url"]
    if where.startswith("/"):
        where = kwargs["base_url"] = "unix://" + where
    local = where.startswith("unix://")

    def client(version):
        api = docker.APIClient(version=version, timeout=timeout, **kwargs)
        # A unix socket takes no proxy, netrc or CA bundle from the environment; not
        # looking them up spares requests' scan of os.environ on every call.
        api.trust_env = not local
        if local:
            _reuse_socket_connections(api)
        return api

    try:
        api = client("auto")  # asks the engine for its API version: it answers or raises
        # more connections to the same engine, for removals in parallel
        api.rbo_clone = lambda: client(api.api_version)
    except Exception as exc:  # noqa: BLE001 - connection errors come in many types
        raise OpsError("cannot reach the Docker daemon at %s (%s); start it, or set "
                       "docker_host / DOCKER_HOST to where it listens"
                       % (where, _short_error(exc)), docker_host=where)
    return api, where


def _reuse_socket_connections(api):
    """Make one unix-socket client keep its connections across request paths.

    docker-py's ``UnixHTTPAdapter`` keys its connection pools by the whole request URL,
    so every distinct path (``DELETE /images/<each tag>``) opens a new connection and a
    new pool, which costs this process and the engine more than the removal itself.
    The pool ignores the URL (requests go to the socket by path), so one key serves all.
    """
    adapter = api.get_adapter(api.base_url)
    get_connection = getattr(adapter, "get_connection", None)
    if get_connection is None or not hasattr(adapter, "socket_path"):
        return
    pool_key = api.base_url

    def shared_pool(_url, proxies=None):
        return get_connection(pool_key, proxies)

    adapter.pools.clear()  # the one the API version lookup opened
    adapter.get_connection = shared_pool


def _short_error(exc) -> str:
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]


def collect_state(api, networks=False, layer_details=True) -> dict:
    """Everything the planner needs, as plain JSON-able data.

    Keys: ``info`` (``DockerRootDir``, ``ServerVersion``, ``ApiVersion``), ``df``
    (``/system/df``), ``images_all`` (``/images/json?all=1``, only when an image has a
    parent), ``image_layers`` (``{image_id: [[diff_id, size], ...]}`` for images that
    share layers; two calls per such image, so only with ``layer_details``: check mode
    wants the exact estimate, a real run measures instead), ``networks`` (``/networks``,
    when requested).
    """
    info = api.info()
    df = api.df()
    state = {
        "info": {"DockerRootDir": info.get("DockerRootDir"),
                 "ServerVersion": info.get("ServerVersion"),
                 "ApiVersion": api.api_version},
        "df": df,
        "images_all": None,
        "image_layers": {},
        "networks": None,
    }
    images = df.get("Images") or []
    if any(img.get("ParentId") for img in images):
        state["images_all"] = api.images(all=True)
    for img in images if layer_details else ():
        if (img.get("SharedSize") or 0) > 0:
            state["image_layers"][img["Id"]] = image_layer_sizes(api, img["Id"])
    if networks:
        state["networks"] = api.networks()
    return state


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

def _timestamp(value):
    """Unix seconds from an int or an RFC 3339 string (nanoseconds allowed); None if unknown."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value).strip()
    if text.startswith("0001-01-01"):
        return None
    match = re.match(r"^(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$",
                     text)
    if not match:
        return None
    base = datetime.strptime(match.group(1) + "T" + match.group(2), "%Y-%m-%dT%H:%M:%S")
    zone = match.group(4) or "Z"
    offset = 0
    if zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    seconds = base.replace(tzinfo=timezone.utc).timestamp() - offset
    if match.group(3):
        seconds += float("0" + match.group(3))
    return seconds


def _old_enough(created, cutoff):
    """True when ``created`` is before ``cutoff`` (no cutoff: always; unknown age: never)."""
    if cutoff is None:
        return True
    stamp = _timestamp(created)
    return stamp is not None and stamp < cutoff


def _has_label(labels, key):
    return bool(labels) and key in labels


def _image_names(img):
    tags = [t for t in (img.get("RepoTags") or []) if t and t != "<none>:<none>"]
    return tags


def _image_digests(img):
    return [d for d in (img.get("RepoDigests") or []) if d and not d.startswith("<none>")]


def is_anonymous_volume(volume) -> bool:
    """The engine's anonymous label (Docker 23+), or a 64-hex name without a compose label."""
    labels = volume.get("Labels") or {}
    if ANONYMOUS_VOLUME_LABEL in labels:
        return True
    return bool(_HEX64.match(volume.get("Name") or "")) and COMPOSE_VOLUME_LABEL not in labels


def _chain_ids(layers):
    """Chain ids of a bottom-up diff-id list (a layer's identity includes its parents)."""
    import hashlib

    chain, out = None, []
    for diff, _size in layers:
        chain = diff if chain is None else "sha256:" + hashlib.sha256(
            (chain + " " + diff).encode()).hexdigest()
        out.append(chain)
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
    unknown_shared = set()
    for img in images:
        shared = max(img.get("SharedSize") or 0, 0)
        if img["Id"] in removed:
            total += max((img.get("Size") or 0) - shared, 0)
        if shared <= 0:
            continue
        layers = image_layers.get(img["Id"])
        if not layers:
            unknown_shared.add(img["Id"])
            continue
        for chain, (_diff, size) in zip(_chain_ids(layers), layers):
            holders.setdefault(chain, set()).add(img["Id"])
            sizes[chain] = size
    for chain, ids in holders.items():
        if len(ids) > 1 and ids <= removed:
            total += sizes[chain]
    return total


def plan_cleanup_steps(state, options, now=None) -> dict:
    """Decide every removal from ``collect_state`` data; touches nothing.

    ``options`` as returned by ``normalize_options``; ``now`` in unix seconds (default:
    the current time). Returns ``{"steps": [...], "estimated_bytes": N}``; each step is
    ``{"name", "enabled", "items": [{"id", "name", "size_bytes", ...}],
    "estimated_bytes"}`` in execution order. Later steps see earlier ones done: an image
    used only by a container the containers step removes is unused by then.
    """
    now = time.time() if now is None else now
    until = options["until_seconds"]
    cutoff = now - until if until > 0 else None
    keep = options["keep_label"]
    df = state["df"]
    containers = df.get("Containers") or []
    images = df.get("Images") or []
    volumes = df.get("Volumes") or []
    steps = []

    # builder cache: what POST /build/prune?all=1&filters={"until":[...]} removes.
    records = df.get("BuildCache") or []
    build_items = []
    if options["builder_cache"] and records:
        chosen = {}
        for rec in records:
            last_used = _timestamp(rec.get("LastUsedAt"))
            if rec.get("InUse"):
                continue
            if cutoff is not None and last_used is not None and last_used >= cutoff:
                continue
            chosen[rec["ID"]] = rec
        # a record stays while a record built on it stays
        changed = True
        while changed:
            changed = False
            for rec in records:
                if rec["ID"] in chosen:
                    continue
                for parent in _record_parents(rec):
                    if parent in chosen:
                        del chosen[parent]
                        changed = True
        for rec in records:
            if rec["ID"] in chosen:
                build_items.append({
                    "id": rec["ID"], "name": rec.get("Description") or rec.get("Type") or "",
                    "type": rec.get("Type"), "shared": bool(rec.get("Shared")),
                    "record_bytes": int(rec.get("Size") or 0),
                    "size_bytes": 0 if rec.get("Shared") else int(rec.get("Size") or 0)})
    steps.append(_step("builder_cache", options["builder_cache"], build_items))

    # containers: stopped ones, old enough, not kept.
    container_items = []
    if options["containers"]:
        for ctr in containers:
            if (ctr.get("State") in STOPPED_STATES and not _has_label(ctr.get("Labels"), keep)
                    and _old_enough(ctr.get("Created"), cutoff)):
                container_items.append({
                    "id": ctr["Id"], "name": ((ctr.get("Names") or ["?"])[0]).lstrip("/"),
                    "image": ctr.get("Image"), "size_bytes": int(ctr.get("SizeRw") or 0)})
    steps.append(_step("containers", options["containers"], container_items))
    gone = set(item["id"] for item in container_items)
    remaining = [c for c in containers if c["Id"] not in gone]

    # images
    image_items = []
    if options["images"] != "none":
        by_id = {}
        for img in state.get("images_all") or []:
            by_id[img["Id"]] = img
        for img in images:
            by_id.setdefault(img["Id"], img)
        used = set(c.get("ImageID") for c in remaining if c.get("ImageID"))
        candidates = []
        for img in images:
            if img["Id"] in used or _has_label(img.get("Labels"), keep):
                continue
            if options["images"] == "dangling" and (_image_names(img) or _image_digests(img)):
                continue
            if not _old_enough(img.get("Created"), cutoff):
                continue
            candidates.append(img["Id"])
        chosen = set(candidates)
        # what stays keeps its whole parent chain
        held = set()
        for img_id in list(by_id) + list(used):
            if img_id in chosen:
                continue
            parent = (by_id.get(img_id) or {}).get("ParentId")
            while parent and parent not in held:
                held.add(parent)
                parent = (by_id.get(parent) or {}).get("ParentId")
        chosen -= held
        depth = {}
        for img_id in chosen:
            n, parent = 0, by_id[img_id].get("ParentId")
            while parent:
                n += 1
                parent = (by_id.get(parent) or {}).get("ParentId")
            depth[img_id] = n
        # alone, an image frees only its own layers (a shared one has other holders)
        single = dict((img["Id"], max((img.get("Size") or 0)
                                      - max(img.get("SharedSize") or 0, 0), 0))
                      for img in images if img["Id"] in chosen)
        for img in sorted((i for i in images if i["Id"] in chosen),
                          key=lambda i: (-depth[i["Id"]], i.get("Created") or 0, i["Id"])):
            image_items.append({
                "id": img["Id"], "name": ", ".join(_image_names(img)) or "<none>",
                "tags": _image_names(img), "depth": depth[img["Id"]],
                "size_bytes": single[img["Id"]]})
        estimate = estimate_image_bytes(images, chosen, state.get("image_layers") or {})
    else:
        estimate = 0
    steps.append(_step("images", options["images"] != "none", image_items, estimate))
    steps[-1]["layers_size_before"] = df.get("LayersSize")

    # volumes
    volume_items = []
    if options["volumes"] != "none":
        referenced = set()
        for ctr in remaining:
            for mount in ctr.get("Mounts") or []:
                if mount.get("Type") == "volume" and mount.get("Name"):
                    referenced.add(mount["Name"])
        for vol in volumes:
            name = vol.get("Name")
            if name in referenced or _has_label(vol.get("Labels"), keep):
                continue
            if options["volumes"] == "anonymous" and not is_anonymous_volume(vol):
                continue
            if not _old_enough(vol.get("CreatedAt"), cutoff):
                continue
            size = ((vol.get("UsageData") or {}).get("Size"))
            volume_items.append({"id": name, "name": name,
                                 "anonymous": is_anonymous_volume(vol),
                                 "size_bytes": max(int(size if size is not None else 0), 0)})
    steps.append(_step("volumes", options["volumes"] != "none", volume_items))

    # networks
    network_items = []
    if options["networks"]:
        attached = set()
        for ctr in remaining:
            nets = ((ctr.get("NetworkSettings") or {}).get("Networks") or {})
            for net_name, net in nets.items():
                attached.add(net_name)
                if net and net.get("NetworkID"):
                    attached.add(net["NetworkID"])
        for net in state.get("networks") or []:
            name = net.get("Name")
            if name in BUILTIN_NETWORKS or net.get("Ingress") or net.get("Scope") == "swarm":
                continue
            if name in attached or net.get("Id") in attached or net.get("Containers"):
                continue
            if _has_label(net.get("Labels"), keep) or not _old_enough(net.get("Created"), cutoff):
                continue
            network_items.append({"id": net["Id"], "name": name, "size_bytes": 0})
    steps.append(_step("networks", options["networks"], network_items))

    return {"steps": steps, "estimated_bytes": sum(s["estimated_bytes"] for s in steps)}


def _record_parents(rec):
    parents = list(rec.get("Parents") or [])
    if rec.get("Parent"):
        parents.append(rec["Parent"])
    return parents


def _step(name, enabled, items, estimate=None):
    return {"name": name, "enabled": bool(enabled), "items": items,
            "estimated_bytes": int(sum(i["size_bytes"] for i in items)
                                   if estimate is None else estimate)}


# --- disk usage ---------------------------------------------------------------------------

def local_data_root(docker_host, docker_root_dir):
    """The engine's data root when it can be measured here (a local socket), else ``None``."""
    if not docker_root_dir or not str(docker_host or "").startswith("unix://"):
        return None
    return docker_root_dir if os.path.isdir(docker_root_dir) else None


def filesystem_usage(path) -> dict:
    """``{"size_bytes", "used_bytes", "avail_bytes", "percent"}`` like ``df`` for ``path``."""
    st = os.statvfs(path)
    used = (st.f_blocks - st.f_bfree) * st.f_frsize
    avail = st.f_bavail * st.f_frsize
    size = used + avail
    return {"size_bytes": st.f_blocks * st.f_frsize, "used_bytes": used, "avail_bytes": avail,
            "percent": round(100.0 * used / size, 2) if size else 0.0}


# --- execution --------------------------------------------------------------------------

def _api_error_text(exc):
    explanation = getattr(exc, "explanation", None)
    return _short_error(explanation or exc)


def _run_builder_cache(api, step, options):
    if not step["items"]:
        return [], 0, []
    params = {"all": "1"}
    if options["until_seconds"] > 0:
        import json

        params["filters"] = json.dumps({"until": [options["until"]]})
    result = api._result(api._post(api._url("/build/prune"), params=params), True)
    deleted = list(result.get("CachesDeleted") or [])
    # The engine counts records shared with image layers too; their data stays with the
    # image (it is freed, and counted, when the image goes), so take them out again.
    shared = dict((i["id"], i["record_bytes"]) for i in step["items"] if i["shared"])
    freed = int(result.get("SpaceReclaimed") or 0) - sum(shared.get(d, 0) for d in deleted)
    return deleted, max(freed, 0), []


def _run_containers(api, step, _options):
    removed, freed, errors = [], 0, []
    for item in step["items"]:
        try:
            api.remove_container(item["id"], v=False, force=False)
        except Exception as exc:  # noqa: BLE001 - reported per item, the rest goes on
            errors.append("container %s: %s" % (item["name"], _api_error_text(exc)))
            continue
        removed.append(item["id"])
        freed += item["size_bytes"]
    return removed, freed, errors


def _remove_image(api, item):
    """Remove one planned image (by tag, never forced); ``(deleted, error or None)``."""
    deleted = set()
    try:
        for ref in item["tags"] or [item["id"]]:
            for entry in api.remove_image(ref, force=False, noprune=False) or []:
                if entry.get("Deleted"):
                    deleted.add(entry["Deleted"])
        if item["id"] in deleted:
            return True, None
        api.remove_image(item["id"], force=False, noprune=False)  # digest refs outlive tags
        return True, None
    except Exception as exc:  # noqa: BLE001 - decided below
        error = exc
    try:
        api.inspect_image(item["id"])
    except Exception:  # noqa: BLE001 - gone after all (a parent prune raced us)
        return True, None
    return False, "image %s: %s" % (item["name"], _api_error_text(error))


IMAGE_WORKERS = 4


def _run_images(api, step, _options):
    """Remove deeper images first; images at one depth in parallel (``IMAGE_WORKERS``).

    The engine does the heavy part (layer directories); a few connections keep both it
    and this process busy, which is what keeps the module close to ``image prune``.
    """
    removed, freed, errors = [], 0, []
    levels = {}
    for item in step["items"]:
        levels.setdefault(item.get("depth", 0), []).append(item)
    clone = getattr(api, "rbo_clone", None)
    for depth in sorted(levels, reverse=True):
        items = levels[depth]
        if clone is None or len(items) < 2:
            outcomes = [_remove_image(api, item) for item in items]
        else:
            outcomes = _parallel(clone, _remove_image, items, IMAGE_WORKERS)
        for item, (ok, error) in zip(items, outcomes):
            if ok:
                removed.append(item["id"])
                freed += item["size_bytes"]
            elif error:
                errors.append(error)
    if removed and step.get("layers_size_before") is not None:
        # Measured: the engine's image layer total before and after (shared layers too).
        try:
            freed = max(step["layers_size_before"] - (api.df().get("LayersSize") or 0), 0)
        except Exception:  # noqa: BLE001 - keep the per-image sum
            pass
    return removed, freed, errors


def _parallel(clone, func, items, workers):
    """``[func(client, item) for item in items]`` on ``workers`` threads, one client each."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    local = threading.local()
    clients = []
    lock = threading.Lock()

    def call(item):
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = clone()
            with lock:
                clients.append(client)
        return func(client, item)

    try:
        with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
            return list(pool.map(call, items))
    finally:
        for client in clients:
            client.close()


def _run_volumes(api, step, _options):
    removed, freed, errors = [], 0, []
    for item in step["items"]:
        try:
            api.remove_volume(item["name"], force=False)
        except Exception as exc:  # noqa: BLE001
            errors.append("volume %s: %s" % (item["name"], _api_error_text(exc)))
            continue
        removed.append(item["name"])
        freed += item["size_bytes"]
    return removed, freed, errors


def _run_networks(api, step, _options):
    removed, errors = [], []
    for item in step["items"]:
        try:
            api.remove_network(item["id"])
        except Exception as exc:  # noqa: BLE001
            errors.append("network %s: %s" % (item["name"], _api_error_text(exc)))
            continue
        removed.append(item["name"])
    return removed, 0, errors


_RUNNERS = {"builder_cache": _run_builder_cache, "containers": _run_containers,
            "images": _run_images, "volumes": _run_volumes, "networks": _run_networks}


def _removed_names(step):
    if step["name"] in ("volumes", "networks"):
        return [item["name"] for item in step["items"]]
    return [item["id"] for item in step["items"]]


def execute_plan(plan, options, *, api=None, usage=None, check_mode=False):
    """Run (or, in check mode, report) the planned steps in order.

    ``usage`` is a callable returning the data root's usage percent, or ``None`` when it
    cannot be measured; ``usage_before`` is taken here. With ``target_percent`` the steps
    stop after the one that brings usage below it (check mode: by the estimates).
    Returns the result dict (see ``run_docker_cleanup``).
    """
    target = options.get("target_percent")
    measure = usage or (lambda: None)
    fs = measure()
    before = fs["percent"] if fs else None
    used, total = (fs["used_bytes"], fs["used_bytes"] + fs["avail_bytes"]) if fs else (0, 0)
    warnings = []
    if target is not None and before is None:
        warnings.append("target_percent ignored: the engine's data root cannot be measured "
                        "from here (remote engine); every enabled step runs")
        target = None
    current = before
    reached = target is not None and current is not None and current < target
    steps, total_freed, errors = [], 0, []
    for planned in plan["steps"]:
        result = {"name": planned["name"], "enabled": planned["enabled"], "removed": [],
                  "items": planned["items"], "estimated_bytes": planned["estimated_bytes"],
                  "reclaimed_bytes": 0, "skipped": None, "errors": []}
        steps.append(result)
        if not planned["enabled"]:
            result["skipped"] = "disabled"
            continue
        if reached:
            result["skipped"] = "target reached"
            continue
        if check_mode:
            result["removed"] = _removed_names(planned)
            result["reclaimed_bytes"] = planned["estimated_bytes"]
            used -= planned["estimated_bytes"]
            if current is not None and total:
                current = round(100.0 * max(used, 0) / total, 2)
        else:
            removed, freed, step_errors = _RUNNERS[planned["name"]](api, planned, options)
            result["removed"], result["reclaimed_bytes"], result["errors"] = (
                removed, freed, step_errors)
            errors.extend(step_errors)
            fs_now = measure() if current is not None else None
            if fs_now:
                current = fs_now["percent"]
        total_freed += result["reclaimed_bytes"]
        if target is not None and current is not None and current < target:
            reached = True
    return {
        "changed": any(s["removed"] for s in steps),
        "check_mode": bool(check_mode),
        "steps": steps,
        "reclaimed_bytes": total_freed,
        "estimated_bytes": plan["estimated_bytes"],
        "usage_before_percent": before,
        "usage_after_percent": current,
        "target_percent": options.get("target_percent"),
        "target_reached": bool(reached) if target is not None else None,
        "errors": errors,
        "warnings": warnings,
    }


def run_docker_cleanup(options, check_mode=False) -> dict:
    """Plan and (unless ``check_mode``) run the cleanup; returns plain data.

    Result keys: ``changed``, ``check_mode``, ``steps`` (per step ``name``, ``enabled``,
    ``removed`` (ids; names for volumes and networks), ``items`` (what was planned, with
    ``size_bytes``), ``estimated_bytes``, ``reclaimed_bytes``, ``skipped`` (``None``,
    ``"disabled"`` or ``"target reached"``), ``errors``), ``reclaimed_bytes``,
    ``estimated_bytes``, ``usage_before_percent``, ``usage_after_percent`` (``None`` for
    a remote engine), ``target_percent``, ``target_reached``, ``data_root``,
    ``docker_host``, ``server_version``, ``errors``, ``warnings``.
    Raises ``OpsError`` for bad options or an unreachable daemon (nothing removed then).
    """
    opts = normalize_options(options)
    api, host = connect(opts["docker_host"])
    try:
        try:
            state = collect_state(api, networks=opts["networks"], layer_details=check_mode)
        except Exception as exc:  # noqa: BLE001 - a daemon that fails mid-way
            raise OpsError("the Docker daemon at %s did not answer the inventory (%s); "
                           "nothing was removed" % (host, _api_error_text(exc)))
        plan = plan_cleanup_steps(state, opts)
        root = local_data_root(host, state["info"].get("DockerRootDir"))
        usage = (lambda: filesystem_usage(root)) if root else None
        result = execute_plan(plan, opts, api=api, usage=usage, check_mode=check_mode)
    finally:
        api.close()
    result["data_root"] = state["info"].get("DockerRootDir")
    result["data_root_measured"] = root is not None
    result["docker_host"] = host
    result["server_version"] = state["info"].get("ServerVersion")
    return result

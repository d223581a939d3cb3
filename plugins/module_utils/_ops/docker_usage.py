# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Where Docker's disk space goes: the ``docker system df`` breakdown plus container logs.

Flow of ``docker_usage``: connect with the Docker SDK (imported here, from the host's
``python3-docker``) -> ``client.df()`` and ``client.info()["DockerRootDir"]`` ->
``summarize_df`` (pure: images, containers, volumes, build cache, each with its size,
what a prune could reclaim and counts, computed as the ``docker system df`` CLI does) ->
``container_log_usage`` (the json-file logs ``<root>/containers/<id>/<id>-json.log*``,
which ``docker system df`` does not show) -> ``format_docker_usage`` for the alert.

No SDK, no daemon, no permission: ``docker_usage`` returns ``None`` and the alert simply
has no Docker section. Nothing here changes anything.
"""

from __future__ import annotations

import glob
import os

from .disk import human_size

DF_TIMEOUT_SECONDS = 60


def _number(value):
    """``value`` as an int; ``None``, -1 (not computed) and non-numbers count as 0."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        return 0
    return int(value)


def _name(container):
    names = container.get("Names") or []
    return names[0].lstrip("/") if names else (container.get("Id") or "")[:12]


def summarize_df(df):
    """Sum a ``docker system df`` answer (the API's ``/system/df``) like the CLI does.

    Returns ``{"images", "containers", "volumes", "build_cache"}``, each ``{"bytes",
    "reclaimable_bytes", "count", "active"}``:

    - images: ``bytes`` is ``LayersSize`` (shared layers once); reclaimable is that minus
      the unshared size of the images containers use; active = images with containers;
    - containers: writable layers (``SizeRw``); reclaimable = those of stopped containers;
    - volumes: ``UsageData.Size`` (-1 = not measured, counted 0); reclaimable = volumes
      no container references; active = referenced ones;
    - build cache: records not shared with images; reclaimable = those not in use.
    """
    df = df or {}
    images = df.get("Images") or []
    layers = _number(df.get("LayersSize"))
    used_by_containers = sum(
        _number(image.get("Size")) - _number(image.get("SharedSize"))
        for image in images
        if _number(image.get("Containers")) > 0 and image.get("SharedSize") != -1)
    containers = df.get("Containers") or []
    volumes = df.get("Volumes") or []
    cache = [record for record in (df.get("BuildCache") or []) if not record.get("Shared")]

    def volume_size(volume):
        return _number((volume.get("UsageData") or {}).get("Size"))

    def volume_refs(volume):
        return _number((volume.get("UsageData") or {}).get("RefCount"))

    return {
        "images": {
            "bytes": layers,
            "reclaimable_bytes": max(0, layers - used_by_containers),
            "count": len(images),
            "active": sum(1 for image in images if _number(image.get("Containers")) > 0),
        },
        "containers": {
            "bytes": sum(_number(c.get("SizeRw")) for c in containers),
            "reclaimable_bytes": sum(_number(c.get("SizeRw")) for c in containers
                                     if c.get("State") != "running"),
            "count": len(containers),
            "active": sum(1 for c in containers if c.get("State") == "running"),
        },
        "volumes": {
            "bytes": sum(volume_size(v) for v in volumes),
            "reclaimable_bytes": sum(volume_size(v) for v in volumes if volume_refs(v) == 0),
            "count": len(volumes),
            "active": sum(1 for v in volumes if volume_refs(v) > 0),
        },
        "build_cache": {
            "bytes": sum(_number(record.get("Size")) for record in cache),
            "reclaimable_bytes": sum(_number(record.get("Size")) for record in cache
                                     if not record.get("InUse")),
            "count": len(cache),
            "active": sum(1 for record in cache if record.get("InUse")),
        },
    }


def container_log_usage(data_root, containers=(), top=3):
    """Size the json-file logs under ``<data_root>/containers`` (rotated ones included).

    ``containers`` (the ``Containers`` of ``df``) names the directories. Returns
    ``{"bytes", "files", "largest": [{"container", "bytes"}]}`` (apparent sizes, biggest
    ``top`` containers first); ``None`` when the directory cannot be read.
    """
    base = os.path.join(data_root, "containers")
    if not os.path.isdir(base) or not os.access(base, os.R_OK | os.X_OK):
        return None
    names = {c.get("Id"): _name(c) for c in containers or () if c.get("Id")}
    per_container = {}
    files = 0
    for path in glob.glob(os.path.join(glob.escape(base), "*", "*-json.log*")):
        try:
            size = os.lstat(path).st_size
        except OSError:
            continue
        files += 1
        container_id = os.path.basename(os.path.dirname(path))
        per_container[container_id] = per_container.get(container_id, 0) + size
    largest = sorted(per_container.items(), key=lambda item: (-item[1], item[0]))[:top]
    return {"bytes": sum(per_container.values()), "files": files,
            "largest": [{"container": names.get(cid, cid[:12]), "bytes": size}
                        for cid, size in largest]}


def docker_usage(timeout=DF_TIMEOUT_SECONDS, client_factory=None):
    """The breakdown of the local Docker engine, or ``None`` when there is none to ask.

    Returns ``summarize_df`` plus ``"logs"`` (``container_log_usage``, ``None`` when
    the data root is not readable here) and ``"data_root"``. ``client_factory`` (for
    tests) returns an object with ``df()`` and ``info()``; by default the Docker SDK's
    ``docker_api.connect``. Never raises for a missing SDK or an unreachable daemon.
    """
    try:
        if client_factory is None:
            from .docker_api import connect  # pylint: disable=import-outside-toplevel

            client = connect(timeout=timeout)[0]
        else:
            client = client_factory()
        try:
            df = client.df()
            data_root = (client.info() or {}).get("DockerRootDir") or ""
        finally:
            close = getattr(client, "close", None)
            if close is not None:
                close()
    except Exception:  # pylint: disable=broad-except
        # ImportError, DockerException, requests' connection errors, a timeout: no section.
        return None
    usage = summarize_df(df)
    usage["data_root"] = data_root
    usage["logs"] = container_log_usage(data_root, df.get("Containers")) if data_root else None
    return usage


def format_docker_usage(usage):
    """The alert's Docker section: a heading and one line per kind, ``""`` for ``None``.

    ``Docker (docker system df):`` then ``images 1.3G (10 images, 4 in use, reclaimable
    400M)`` ... and ``container logs 45M in 12 files (largest: backend 40M)``.
    """
    if not usage:
        return ""
    lines = ["Docker (docker system df):"]
    for key, label, unit, active in (("images", "images", "images", "in use"),
                                     ("build_cache", "build cache", "records", "in use"),
                                     ("volumes", "volumes", "volumes", "in use"),
                                     ("containers", "containers", "containers", "running")):
        part = usage.get(key) or {}
        lines.append("%s %s (%d %s, %d %s, reclaimable %s)" % (
            label, human_size(part.get("bytes", 0)), part.get("count", 0), unit,
            part.get("active", 0), active, human_size(part.get("reclaimable_bytes", 0))))
    logs = usage.get("logs")
    if logs is not None:
        line = "container logs %s in %d files" % (human_size(logs["bytes"]), logs["files"])
        if logs["largest"] and logs["bytes"]:
            line += " (largest: %s)" % ", ".join(
                "%s %s" % (row["container"], human_size(row["bytes"])) for row in logs["largest"])
        lines.append(line)
    return "\n".join(lines)


def on_mount(data_root, mount):
    """True when Docker's ``data_root`` lives on the filesystem mounted at ``mount``."""
    if not data_root:
        return False
    try:
        return os.stat(data_root).st_dev == os.stat(mount).st_dev
    except OSError:
        return False

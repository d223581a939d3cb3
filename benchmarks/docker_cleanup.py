# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: runbook.ops.docker_cleanup against the equivalent ``docker ... prune`` commands.

On an isolated Docker engine (tests/harness/isolated_engine.py, never the main engine) it
loads, before every timed run, the same state from one ``docker load`` archive made here:
N images (default 300) sharing a busybox base layer, each with its own small top layer,
a month old; 20% of them untagged (dangling), 5% carrying ``runbook.ops.keep``, 10 used by
stopped containers. Image ids are deterministic, so every run starts from the identical
state. Then it times, alternating, TRIALS times each:

* CLI:    ``docker builder prune -af --filter until=168h`` then
          ``docker image prune -af --filter until=168h --filter label!=runbook.ops.keep``
          (Debian's /usr/bin/docker 20.10);
* core:   ``run_docker_cleanup({"until": "168h"})`` in this process (plan + removals);
* module: ``ansible localhost -m runbook.ops.docker_cleanup -a until=168h`` (adds Ansible's
          own start-up, module shipping and interpreter start; ``ansible localhost -m ping``
          is timed too, as that fixed cost).

It checks that every run leaves exactly the same images and prints the medians and the
ratios core/CLI and module/CLI. A figure to read, not a timed test.

    . scripts/dev-env.sh; python benchmarks/docker_cleanup.py [--images 300] [--trials 3]
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "harness"))
sys.path.insert(0, os.path.join(REPO, ".collections"))

from isolated_engine import start_isolated_engine  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops.docker_cleanup import (  # noqa: E402
    run_docker_cleanup)

CLI = "/usr/bin/docker"
CREATED = "2026-01-01T00:00:00Z"  # far older than until=168h
APPLETS = ("sh", "sleep", "true", "cat", "md5sum", "env")


def _tar_bytes(entries):
    """A layer tar from ``[(name, bytes or None for a dir, symlink target)]``."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            info.mtime = 1700000000
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size, info.mode = len(data), 0o755
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def make_archive(path, count):
    """Write a ``docker load`` archive of ``count`` images; returns their roles."""
    with open("/bin/busybox", "rb") as fh:
        busybox = fh.read()
    base = _tar_bytes([("bin", None, None), ("bin/busybox", busybox, None)]
                      + [("bin/" + a, None, "busybox") for a in APPLETS])
    base_diff = "sha256:" + hashlib.sha256(base).hexdigest()
    manifest, roles = [], {"dangling": [], "keep": [], "used": [], "tagged": []}
    with tarfile.open(path, "w") as out:
        def add(name, data):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data), 1700000000
            out.addfile(info, io.BytesIO(data))

        add("base/layer.tar", base)
        for i in range(count):
            payload = hashlib.sha256(b"bench-%d" % i).digest() * 512  # 16 KiB, unique
            layer = _tar_bytes([("data", None, None), ("data/blob-%d" % i, payload, None)])
            diff = "sha256:" + hashlib.sha256(layer).hexdigest()
            labels = {"bench": "1"}
            if i % 20 == 7:
                labels["runbook.ops.keep"] = "true"
                roles["keep"].append(i)
            config = json.dumps({
                "architecture": "amd64", "os": "linux", "created": CREATED,
                "config": {"Cmd": ["sleep", "3600"], "Labels": labels},
                "rootfs": {"type": "layers", "diff_ids": [base_diff, diff]},
                "history": [{"created": CREATED, "created_by": "busybox base"},
                            {"created": CREATED, "created_by": "data %d" % i}],
            }, sort_keys=True).encode()
            config_name = hashlib.sha256(config).hexdigest() + ".json"
            add("u%d/layer.tar" % i, layer)
            add(config_name, config)
            dangling = i % 5 == 3
            if dangling:
                roles["dangling"].append(i)
            else:
                roles["tagged"].append(i)
            manifest.append({"Config": config_name,
                             "RepoTags": None if dangling else ["bench/img:%d" % i],
                             "Layers": ["base/layer.tar", "u%d/layer.tar" % i]})
        add("manifest.json", json.dumps(manifest).encode())
    roles["used"] = [i for i in roles["tagged"] if i not in roles["keep"]][:10]
    return roles


def reset_state(engine, archive, roles):
    """Empty the engine, load the archive, create the stopped containers (not timed)."""
    api = engine.api(timeout=600)
    try:
        for ctr in api.containers(all=True):
            api.remove_container(ctr["Id"], force=True)
        for img in api.images(all=True):
            try:
                api.remove_image(img["Id"], force=True)
            except Exception:  # noqa: BLE001 - a parent already went with its child
                pass
        engine.docker_cli("load", "-q", "-i", archive)
        for n, i in enumerate(roles["used"]):
            api.create_container("bench/img:%d" % i, name="user-%d" % n)
        return set(i["Id"] for i in api.images())
    finally:
        api.close()


def remaining(engine):
    api = engine.api()
    try:
        return set(i["Id"] for i in api.images())
    finally:
        api.close()


def run_cli(engine):
    engine.docker_cli("builder", "prune", "-af", "--filter", "until=168h")
    engine.docker_cli("image", "prune", "-af", "--filter", "until=168h",
                      "--filter", "label!=runbook.ops.keep")


def run_core(engine):
    result = run_docker_cleanup({"until": "168h", "docker_host": engine.host})
    assert not result["errors"], result["errors"]


def run_module(engine):
    env = dict(os.environ, **engine.env)
    proc = subprocess.run(["ansible", "localhost", "-m", "runbook.ops.docker_cleanup",
                           "-a", "until=168h"], capture_output=True, text=True, env=env,
                          cwd=REPO, check=False)
    if proc.returncode != 0:
        raise RuntimeError("module failed:\n%s\n%s" % (proc.stdout[-2000:], proc.stderr[-2000:]))


def run_ping(engine):
    """Ansible's own fixed cost: the same ad-hoc call with a module that does nothing."""
    proc = subprocess.run(["ansible", "localhost", "-m", "ansible.builtin.ping"],
                          capture_output=True, text=True, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise RuntimeError("ping failed:\n%s" % proc.stdout[-2000:])


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--trials", type=int, default=3)
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="rbo-bench-")
    archive = os.path.join(workdir, "images.tar")
    roles = make_archive(archive, args.images)
    engine = start_isolated_engine("bench")
    times = {"cli": [], "core": [], "module": [], "ping": []}
    left = {}
    try:
        variants = (("cli", run_cli), ("core", run_core), ("module", run_module))
        for trial in range(args.trials):
            started = time.perf_counter()
            run_ping(engine)
            times["ping"].append(time.perf_counter() - started)
            for name, func in variants:
                loaded = reset_state(engine, archive, roles)
                assert len(loaded) == args.images, len(loaded)
                started = time.perf_counter()
                func(engine)
                times[name].append(time.perf_counter() - started)
                kept = remaining(engine)
                left.setdefault(name, kept)
                assert kept == left["cli"] if "cli" in left else True, (
                    "%s left a different set of images than the CLI" % name)
                print("trial %d %-6s %6.2f s  images %d -> %d" % (
                    trial + 1, name, times[name][-1], len(loaded), len(kept)), flush=True)
    finally:
        engine.stop()
        os.unlink(archive)
        os.rmdir(workdir)
    cli = statistics.median(times["cli"])
    core = statistics.median(times["core"])
    module = statistics.median(times["module"])
    ping = statistics.median(times["ping"])
    print()
    print("images: %d (%d dangling, %d keep-labelled, %d used by stopped containers); "
          "removed per run: %d" % (args.images, len(roles["dangling"]), len(roles["keep"]),
                                   len(roles["used"]),
                                   args.images - len(left["cli"])))
    print("median of %d: docker CLI prune %.2f s | core %.2f s (%.2fx) | "
          "ansible module %.2f s (%.2fx) | ansible -m ping %.2f s | module minus ping "
          "%.2f s (%.2fx)" % (args.trials, cli, core, core / cli, module, module / cli,
                              ping, module - ping, (module - ping) / cli))
    print("load average: %.2f %.2f %.2f, cores: %d" % (os.getloadavg() + (os.cpu_count(),)))


if __name__ == "__main__":
    main()

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: runbook.ops.docker_cleanup against the equivalent ``docker ... prune`` commands.

On an isolated Docker engine (tests/harness/isolated_engine.py, never the main engine) it
loads, before every timed run, the same state from one ``docker load`` archive made here:
N images (default 300) sharing a busybox base layer, each with its own top layer of F
small files (default 300: an application layer, a ``pip install`` or ``node_modules``,
holds thousands; ``--files 0`` leaves one 16 KiB file, where fixed costs weigh most),
a month old; 20% of them untagged (dangling), 5% carrying ``runbook.ops.keep``, 10 used by
stopped containers. Image ids are deterministic, so every run starts from the identical
state. Then it times, alternating, TRIALS times each:

* CLI:    ``docker builder prune -af --filter until=168h`` then
          ``docker image prune -af --filter until=168h --filter label!=runbook.ops.keep``
          (Debian's /usr/bin/docker 20.10);
* core:   ``run_docker_cleanup({"until": "168h"})`` in this process (plan + removals);
* module: ``ansible-playbook`` of one play: ``ansible.builtin.ping`` (Ansible's own cost per
          task), then ``runbook.ops.docker_cleanup`` with ``until: 168h``. The task's wall
          time comes from Ansible's own task timer (the ``ansible.posix.json`` callback);
          the whole process (controller start-up included) is timed too;
* peer:   the same play with ``community.docker.docker_prune`` (images with ``until`` and
          ``label!``, build cache ``all``): the same removals through Ansible.

It checks that every run leaves exactly the same images and prints the medians, and the
median of each trial's own ratio to that trial's CLI run (the engine's speed drifts by
about 15% between trials; a trial's contenders run back to back). A figure to read, not a
timed test.

    . scripts/dev-env.sh; python benchmarks/docker_cleanup.py [--images 300] [--trials 5] [--files 300]
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
from datetime import datetime

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


def make_archive(path, count, files=0):
    """Write a ``docker load`` archive of ``count`` images; returns their roles.

    ``files``: small extra files in each image's own layer. Deleting a layer costs the
    engine one unlink per file, and an application layer (a ``pip install``, a
    ``node_modules``) holds thousands: 0 gives the cheapest layers, where fixed costs
    weigh most.
    """
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
            layer = _tar_bytes([("data", None, None), ("data/blob-%d" % i, payload, None)]
                               + [("data/f-%d" % k, b"%d.%d" % (i, k), None)
                                  for k in range(files)])
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
        loaded = set(i["Id"] for i in api.images())
    finally:
        api.close()
    os.sync()  # the load's writeback must not land inside the next timed run
    time.sleep(1)
    return loaded


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


PLAY = """- hosts: localhost
  gather_facts: false
  tasks:
    - name: ping
      ansible.builtin.ping:
    - name: cleanup
      %s
"""
MODULE_TASK = "runbook.ops.docker_cleanup: {until: 168h}"
PEER_TASK = ("community.docker.docker_prune: {images: true, images_filters: {dangling: false, "
             "until: 168h, 'label!': runbook.ops.keep}, builder_cache: true, "
             "builder_cache_all: true, builder_cache_filters: {until: 168h}}")


def _seconds(duration):
    start, end = (datetime.fromisoformat(duration[k].replace("Z", "+00:00"))
                  for k in ("start", "end"))
    return (end - start).total_seconds()


def run_play(engine, task, workdir):
    """Run the ping + cleanup play; ``{"ping": s, "task": s}`` by Ansible's task timer."""
    playbook = os.path.join(workdir, "play.yml")
    with open(playbook, "w") as fh:
        fh.write(PLAY % task)
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="ansible.posix.json", **engine.env)
    proc = subprocess.run(["ansible-playbook", playbook], capture_output=True, text=True,
                          env=env, cwd=REPO, check=False)
    if proc.returncode != 0:
        raise RuntimeError("play failed:\n%s\n%s" % (proc.stdout[-3000:], proc.stderr[-2000:]))
    tasks = json.loads(proc.stdout)["plays"][0]["tasks"]
    return dict((t["task"]["name"], _seconds(t["hosts"]["localhost"].get("duration")
                                             or t["task"]["duration"])) for t in tasks)


def _median(values):
    return statistics.median(values) if values else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=300)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--files", type=int, default=300,
                        help="extra small files in each image's own layer (default 300)")
    args = parser.parse_args()

    workdir = tempfile.mkdtemp(prefix="rbo-bench-")
    archive = os.path.join(workdir, "images.tar")
    roles = make_archive(archive, args.images, args.files)
    engine = start_isolated_engine("bench")
    times = dict((k, []) for k in ("cli", "core", "module", "module_task", "module_ping",
                                   "peer", "peer_task", "peer_ping"))
    left = {}

    def timed_play(task, name):
        def run(eng):
            tasks = run_play(eng, task, workdir)
            times[name + "_task"].append(tasks["cleanup"])
            times[name + "_ping"].append(tasks["ping"])
        return run

    try:
        variants = (("cli", run_cli), ("core", run_core),
                    ("module", timed_play(MODULE_TASK, "module")),
                    ("peer", timed_play(PEER_TASK, "peer")))
        for trial in range(args.trials):
            for name, func in variants:
                loaded = reset_state(engine, archive, roles)
                assert len(loaded) == args.images, len(loaded)
                started = time.perf_counter()
                func(engine)
                times[name].append(time.perf_counter() - started)
                kept = remaining(engine)
                left.setdefault(name, kept)
                assert kept == left["cli"], "%s left other images than the CLI" % name
                task = times.get(name + "_task")
                print("trial %d %-6s %6.2f s%s  images %d -> %d" % (
                    trial + 1, name, times[name][-1],
                    " (task %.2f s)" % task[-1] if task else "", len(loaded), len(kept)),
                    flush=True)
    finally:
        engine.stop()
        os.unlink(archive)
        for leftover in os.listdir(workdir):
            os.unlink(os.path.join(workdir, leftover))
        os.rmdir(workdir)
    times["ping_task"] = times["module_ping"] + times["peer_ping"]
    times["module_task_minus_ping"] = [t - p for t, p in zip(times["module_task"],
                                                             times["module_ping"])]
    med = dict((k, _median(v)) for k, v in times.items())
    cli = med["cli"]
    print()
    print("images: %d (%d dangling, %d keep-labelled, %d used by stopped containers), "
          "%d extra files per image layer; removed per run: %d" % (
              args.images, len(roles["dangling"]), len(roles["keep"]), len(roles["used"]),
              args.files, args.images - len(left["cli"])))
    print("median of %d trials; ratio: median over trials of time / that trial's CLI time"
          % args.trials)
    print("  %-46s %6.2f s" % ("docker CLI prune", cli))
    for label, key in (("core, in process", "core"),
                       ("module task (Ansible's task timer)", "module_task"),
                       ("docker_prune task (Ansible's task timer)", "peer_task"),
                       ("ping task (Ansible's cost per task)", "ping_task"),
                       ("module task minus its play's ping task", "module_task_minus_ping"),
                       ("module, whole ansible-playbook process", "module"),
                       ("docker_prune, whole ansible-playbook process", "peer")):
        ratio = ""
        if key != "ping_task":  # two pings per trial: no CLI run to pair each with
            ratios = [t / c for t, c in zip(times[key], times["cli"])]
            ratio = "%5.2fx  (trials %.2f-%.2fx)" % (_median(ratios), min(ratios), max(ratios))
        print("  %-46s %6.2f s  %s" % (label, med[key], ratio))
    print("load average: %.2f %.2f %.2f, cores: %d" % (os.getloadavg() + (os.cpu_count(),)))


if __name__ == "__main__":
    main()

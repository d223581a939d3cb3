# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: docker_cleanup's inventory with a big photo volume, Docker 20.10 and 26.

On an isolated engine of each version (tests/harness/isolated_engine.py, never the main
engine; data root on the disk) it makes a named volume ``photos`` holding ``--files``
small files (default 100,000, in directories of 1,000) that a running container mounts,
plus a few images, a stopped container, an unused anonymous volume and BuildKit build
cache. Then, with a warm cache (one untimed round first), it times ``--trials`` times:

* ``/system/df``: the full inventory, which the code before issue 15 asked twice per
  real run (plan, then the images step's measurement) and once per check run; on API
  1.41 it sizes every volume;
* ``collect_state``: the inventory now, for the emergency playbook's three Docker steps
  and the weekly job's defaults, real run and check mode.

    . scripts/dev-env.sh; python benchmarks/docker_inventory.py [--files 100000] [--trials 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

REPO = os.path.abspath(os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
sys.path.insert(0, os.path.join(REPO, "tests", "harness"))
sys.path.insert(0, os.path.join(REPO, ".collections"))

from images import build_busybox_image  # noqa: E402
from isolated_engine import ENGINES, start_isolated_engine  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_cleanup as dc  # noqa: E402

OPTION_SETS = (  # (label, options) as the emergency playbook and the weekly job pass them
    ("emergency 1: build cache", {"builder_cache": True, "images": "none", "until": "0s"}),
    ("emergency 2: images", {"builder_cache": False, "images": "unused"}),
    ("emergency 3: containers, anonymous volumes",
     {"builder_cache": False, "images": "none", "containers": True, "volumes": "anonymous"}),
    ("weekly job (defaults)", {}),
)


def make_state(engine, files):
    """The photo volume (filled from here: fast), images, containers, cache, an orphan."""
    client = engine.client()
    client.volumes.create("photos")
    root = os.path.join(engine.data_root, "volumes", "photos", "_data")
    for n in range(files):
        directory = os.path.join(root, "%03d" % (n // 1000))
        if n % 1000 == 0:
            os.makedirs(directory)
        with open(os.path.join(directory, "p%06d.jpg" % n), "wb") as fh:
            fh.write(b"x" * 100)
    for n in range(10):
        build_busybox_image(engine, "shop/app:%d" % n, filler_bytes=4096 + n)
    build_busybox_image(engine, "cache:1", filler_bytes=4096, buildkit=True)
    client.containers.run("shop/app:9", detach=True, name="app",
                          volumes={"photos": {"bind": "/photos", "mode": "rw"}})
    engine.docker_cli("run", "--name", "job", "-v", "/scratch", "shop/app:8", "true")
    engine.docker_cli("run", "--name", "gone", "-v", "/tmp-data", "shop/app:8", "true")
    engine.docker_cli("rm", "gone")  # leaves its anonymous volume: a planned one
    client.close()


def timed(func, trials):
    func()  # warm: the kernel's dentry and inode caches, the engine's own
    times = []
    for _trial in range(trials):
        started = time.perf_counter()
        func()
        times.append(time.perf_counter() - started)
    return statistics.median(times), min(times), max(times)


def measure(version, files, trials):
    engine = start_isolated_engine("inventory", version=version)
    try:
        make_state(engine, files)
        api, host = dc.connect(engine.host)
        rows = [("full /system/df (before: 2 per real run, 1 per check)",
                 timed(api.df, trials))]
        for label, options in OPTION_SETS:
            opts = dc.normalize_options(options)
            for check in (False, True):
                rows.append(("%s, %s" % (label, "check" if check else "real"), timed(
                    lambda: dc.collect_state(api, opts, docker_host=host, check_mode=check),
                    trials)))
        api.close()
        return api.api_version, rows
    finally:
        engine.stop()


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100000)
    parser.add_argument("--trials", type=int, default=5)
    parser.add_argument("--engines", nargs="+", default=list(ENGINES), choices=ENGINES)
    args = parser.parse_args()
    for version in args.engines:
        api_version, rows = measure(version, args.files, args.trials)
        print("Docker %s (API %s), photo volume of %d files in use; median of %d (range)"
              % (version, api_version, args.files, args.trials))
        for label, (med, low, high) in rows:
            print("  %-56s %7.3f s  (%.3f-%.3f)" % (label, med, low, high))
    print("load average: %.2f %.2f %.2f, cores: %d" % (os.getloadavg() + (os.cpu_count(),)))


if __name__ == "__main__":
    main()

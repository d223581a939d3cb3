# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Benchmark: the largest-directories scan against ``du -x DIR | sort -n | tail -20``.

Builds (once, cached under /var/tmp/runbook-ops-bench-tree) a tree of about a million
files shaped like a server's data directories: uneven top-level directories, nested
subdirectories, mostly small files, some hard links and symlinks. Then, on the warm tree,
it times in one run:

* ``du -x DIR | sort -n | tail -20`` (a shell pipeline, as the runbook does), and
* ``scan_largest_dirs`` run by ``/usr/bin/python3`` in a fresh process, the same process
  model the module uses (a fork-based pool of workers over subtrees),

checks that the totals and the top-20 sizes are identical, and prints both times and
their ratio. A figure to read, not a timed test.

Usage: /usr/bin/python3 benchmarks/largest_dirs.py [--files N] [--rounds R] [--tree DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
OPS_PARENT = os.path.join(HERE, "..", "plugins", "module_utils")
DEFAULT_TREE = "/var/tmp/runbook-ops-bench-tree"
PYTHON = "/usr/bin/python3"
CPU = {"du": [], "scan": []}


def build_tree(root, files):
    """Create the tree under ``root`` unless a complete one is cached there."""
    marker = os.path.join(root, ".complete-%d" % files)
    if os.path.exists(marker):
        return False
    if os.path.exists(root):
        subprocess.run(["rm", "-rf", root], check=True)
    os.makedirs(root)
    made = 0
    top = 0
    payload = b"x" * 3000
    # Uneven top-level directories: sizes follow 1, 2, 3, ... parts of the total.
    weights = [1 + (i % 7) * (i % 5) for i in range(60)]
    scale = files / float(sum(weights))
    for top, weight in enumerate(weights):
        budget = int(weight * scale)
        topdir = os.path.join(root, "app%02d" % top)
        os.mkdir(topdir)
        sub = 0
        while budget > 0 and made < files:
            subdir = os.path.join(topdir, "d%03d" % sub, "e%d" % (sub % 3))
            os.makedirs(subdir)
            count = min(budget, 150 + (sub * 37) % 400)
            for n in range(count):
                path = os.path.join(subdir, "f%05d" % n)
                fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
                if n % 10 == 0:
                    os.write(fd, payload[: 1 + (n * 131) % 3000])
                os.close(fd)
            if sub % 50 == 7:
                os.link(os.path.join(subdir, "f00000"), os.path.join(topdir, "hl%03d" % sub))
                os.symlink("e%d/f00001" % (sub % 3), os.path.join(topdir, "d%03d" % sub, "sl"))
            made += count
            budget -= count
            sub += 1
    with open(marker, "w") as handle:
        handle.write("%d\n" % made)
    return True


def warm(root):
    subprocess.run(["du", "-sx", root], stdout=subprocess.DEVNULL, check=True)


def _cpu_of_children():
    times = os.times()
    return times.children_user + times.children_system


def time_du(root):
    cpu = _cpu_of_children()
    started = time.monotonic()
    proc = subprocess.run(["sh", "-c", 'du -x "$1" | sort -n | tail -20', "sh", root],
                          stdout=subprocess.PIPE, check=True, env=dict(os.environ, LC_ALL="C"))
    seconds = time.monotonic() - started
    CPU["du"].append(_cpu_of_children() - cpu)
    rows = []
    for line in proc.stdout.decode().splitlines():
        size, path = line.split("\t", 1)
        rows.append((int(size), path))
    return seconds, rows


SCAN = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
started = time.monotonic()
from _ops.disk import scan_largest_dirs
result = scan_largest_dirs([sys.argv[2]], count=20, one_file_system=True)
seconds = time.monotonic() - started
print(json.dumps({"seconds": seconds, "largest": result["largest"], "workers": result["workers"]}))
"""


def time_scan(root):
    cpu = _cpu_of_children()
    started = time.monotonic()
    proc = subprocess.run([PYTHON, "-c", SCAN, os.path.abspath(OPS_PARENT), root],
                          stdout=subprocess.PIPE, check=True)
    seconds = time.monotonic() - started
    CPU["scan"].append(_cpu_of_children() - cpu)
    data = json.loads(proc.stdout)
    return seconds, data


def _own_autogroup(nice):
    """Start a new session (a new scheduler autogroup) and set that group's nice.

    With autogroup (Debian's default), CPU is shared between sessions first: on a busy
    machine a session gets about one share however many processes it runs, so two scan
    workers split what one ``du`` gets alone. A group of its own with a high weight
    shows both tools as they run when the CPUs are free.
    """
    try:
        os.setsid()
    except OSError:
        pass  # already a session leader
    with open("/proc/self/autogroup", "w") as handle:
        handle.write("%d\n" % nice)
    with open("/proc/self/autogroup") as handle:
        print("scheduler: %s" % handle.read().strip())


def _loadavg():
    with open("/proc/loadavg") as handle:
        return " ".join(handle.read().split()[:3])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--files", type=int, default=1000000)
    parser.add_argument("--rounds", type=int, default=3, help="alternating timings per tool; the best counts")
    parser.add_argument("--tree", default=DEFAULT_TREE)
    parser.add_argument("--autogroup-nice", type=int, metavar="N",
                        help="run both tools in a new session whose scheduler autogroup has "
                             "nice N (e.g. -10): approximates an idle machine on a shared one, "
                             "for both tools alike (needs root and CONFIG_SCHED_AUTOGROUP)")
    args = parser.parse_args(argv)
    if args.autogroup_nice is not None:
        _own_autogroup(args.autogroup_nice)

    started = time.monotonic()
    if build_tree(args.tree, args.files):
        print("built %s in %.0f s" % (args.tree, time.monotonic() - started))
    warm(args.tree)
    load_before = _loadavg()

    du_times, scan_times = [], []
    du_rows = scan_data = None
    for unused in range(args.rounds):  # noqa: B007
        seconds, du_rows = time_du(args.tree)
        du_times.append(seconds)
        seconds, scan_data = time_scan(args.tree)
        scan_times.append(seconds)

    ours = [((entry["bytes"] + 1023) // 1024, entry["path"]) for entry in scan_data["largest"]]
    theirs = sorted(du_rows, reverse=True)
    same_total = ours[0] == theirs[0]
    same_sizes = [row[0] for row in ours] == [row[0] for row in theirs]
    same_rows = ours == theirs
    du_best, scan_best = min(du_times), min(scan_times)
    print("tree: %s (%d files, total %d KiB by du)" % (args.tree, args.files, theirs[0][0]))
    print("du -x | sort -n | tail -20: best %.3f s  (runs: %s)" % (
        du_best, ", ".join("%.3f" % t for t in du_times)))
    print("scan_largest_dirs (%s, %d workers): best %.3f s  (runs: %s)" % (
        PYTHON, scan_data["workers"], scan_best, ", ".join("%.3f" % t for t in scan_times)))
    print("ratio scan/du: %.2f (best of each), %.2f..%.2f (pairwise)" % (
        scan_best / du_best,
        min(s / d for s, d in zip(scan_times, du_times)),
        max(s / d for s, d in zip(scan_times, du_times))))
    print("CPU seconds (user+sys, all processes): du %s; scan %s" % (
        ", ".join("%.2f" % c for c in CPU["du"]), ", ".join("%.2f" % c for c in CPU["scan"])))
    print("load average before: %s; after: %s" % (load_before, _loadavg()))
    print("totals identical: %s; top-20 sizes identical: %s; top-20 rows identical: %s" % (
        same_total, same_sizes, same_rows))
    if not (same_total and same_sizes):
        for mine, other in zip(ours, theirs):
            print("  %-60s %s" % (mine, other))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

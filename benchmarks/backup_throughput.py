# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Backup throughput: ``restic backup`` (through runbook.ops' core) vs ``tar -c | zstd``.

Builds (once, cached) a 1 GB mixed tree under /var/tmp/runbook-ops-bench/tree:
incompressible media-like files (random bytes), compressible text/JSON logs, a SQLite-like
file of repeated pages and thousands of small files. Then, on the same disk:

1. ``restic backup`` of the tree into a fresh local repository, through
   ``backup.run_backup`` (what the cron job runs: hooks none, backup, forget --prune);
2. ``tar -c -f - tree | zstd -T0 -3 -q -o file`` (the plain archive a team would script);
3. a second ``restic backup`` with nothing changed (the nightly case for a quiet app).

One run each, page cache dropped before each when possible. Prints MB/s (of source
bytes), the stored size and the ratio restic/tar.

    /usr/bin/python3 benchmarks/backup_throughput.py [--size-mb 1024] [--root /var/tmp/runbook-ops-bench]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "plugins",
                                "module_utils"))

from _ops import backup  # noqa: E402

MB = 1024 * 1024


def build_tree(root, size_mb):
    """A mixed tree of ~size_mb MiB; reused when its marker says it has that size."""
    tree = os.path.join(root, "tree")
    marker = os.path.join(root, "tree.%dmb.done" % size_mb)
    if os.path.exists(marker):
        return tree
    shutil.rmtree(tree, ignore_errors=True)
    rng = random.Random(20260114)
    budget = size_mb * MB
    shares = {"media": 0.55, "logs": 0.25, "db": 0.12, "small": 0.08}
    # media: incompressible 1-8 MiB files
    written = 0
    os.makedirs(os.path.join(tree, "media", "uploads"))
    while written < budget * shares["media"]:
        size = rng.randint(1, 8) * MB
        with open(os.path.join(tree, "media", "uploads", "img%05d.jpg" % written), "wb") as f:
            f.write(os.urandom(size))
        written += size
    # logs: compressible text
    os.makedirs(os.path.join(tree, "logs"))
    words = ["GET", "POST", "/api/meals", "/health", "200", "404", "celery", "task", "ok",
             "user=%d", "ms=%d", "photo", "upload", "retry", "INFO", "WARNING"]
    target = written + budget * shares["logs"]
    index = 0
    while written < target:
        lines = []
        for _line in range(20000):
            line = " ".join(rng.choice(words) for _word in range(8))
            lines.append("2026-01-%02d %s %s" % (rng.randint(1, 28), line % () if "%" not in line
                                                 else line.replace("%d", str(rng.randint(0, 9999))),
                                                 rng.random()))
        data = ("\n".join(lines) + "\n").encode()
        with open(os.path.join(tree, "logs", "app.%03d.log" % index), "wb") as f:
            f.write(data)
        written += len(data)
        index += 1
    # db: repeated 4 KiB pages with small differences
    os.makedirs(os.path.join(tree, "db"))
    page = os.urandom(2048) + b"\0" * 2048
    with open(os.path.join(tree, "db", "app.sqlite"), "wb") as f:
        count = int(budget * shares["db"]) // 4096
        for number in range(count):
            f.write(page[:-8] + number.to_bytes(8, "little"))
    written += count * 4096
    # small files: many JSON documents
    small = os.path.join(tree, "small")
    index = 0
    while written < budget:
        directory = os.path.join(small, "d%03d" % (index // 500))
        os.makedirs(directory, exist_ok=True)
        data = ('{"id": %d, "name": "item-%d", "blob": "%s"}\n'
                % (index, index, os.urandom(rng.randint(200, 12000)).hex())).encode()
        with open(os.path.join(directory, "doc%06d.json" % index), "wb") as f:
            f.write(data)
        written += len(data)
        index += 1
    open(marker, "w").close()
    return tree


def tree_bytes(tree):
    total = files = 0
    for cur, _dirs, names in os.walk(tree):
        for name in names:
            total += os.lstat(os.path.join(cur, name)).st_size
            files += 1
    return total, files


def dir_bytes(path):
    return sum(os.lstat(os.path.join(c, n)).st_size for c, _d, ns in os.walk(path) for n in ns)


def drop_caches():
    try:
        os.sync()
        with open("/proc/sys/vm/drop_caches", "w") as handle:
            handle.write("3\n")
        return True
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=1024)
    parser.add_argument("--root", default="/var/tmp/runbook-ops-bench")
    args = parser.parse_args()
    os.makedirs(args.root, exist_ok=True)
    started = time.monotonic()
    tree = build_tree(args.root, args.size_mb)
    source, files = tree_bytes(tree)
    print("tree: %s, %.0f MiB in %d files (built/cached in %.0f s)"
          % (tree, source / MB, files, time.monotonic() - started))

    repo = os.path.join(args.root, "restic-repo")
    archive = os.path.join(args.root, "tree.tar.zst")
    shutil.rmtree(repo, ignore_errors=True)
    if os.path.exists(archive):
        os.unlink(archive)
    password = os.path.join(args.root, "password")
    with open(password, "w") as handle:
        handle.write("benchmark-only\n")
    os.chmod(password, 0o600)
    os.environ["XDG_CACHE_HOME"] = os.path.join(args.root, "cache")
    shutil.rmtree(os.environ["XDG_CACHE_HOME"], ignore_errors=True)
    config = backup.validate_config({"repository": repo, "password_file": password,
                                     "host_label": "bench", "paths": [tree]})
    backup.ensure_repository(config)

    cold = drop_caches()
    t0 = time.monotonic()
    result = backup.run_backup(config)
    restic_s = time.monotonic() - t0
    if not result["ok"]:
        sys.exit("restic backup failed: %s" % result.get("error"))
    restic_stored = dir_bytes(repo)

    drop_caches()
    t0 = time.monotonic()
    subprocess.run("tar -C %s -c -f - tree | zstd -T0 -3 -q -o %s" % (args.root, archive),
                   shell=True, check=True)
    tar_s = time.monotonic() - t0
    tar_stored = os.path.getsize(archive)

    t0 = time.monotonic()
    again = backup.run_backup(config)
    rerun_s = time.monotonic() - t0

    print("cache dropped before runs: %s; cores: %d" % ("yes" if cold else "no", os.cpu_count()))
    print("%-34s %8s %9s %12s" % ("", "seconds", "MB/s", "stored MiB"))
    row = "%-34s %8.1f %9.1f %12s"
    print(row % ("restic backup (first, + forget)", restic_s, source / MB / restic_s,
                 "%.0f" % (restic_stored / MB)))
    print(row % ("tar -c | zstd -T0 -3", tar_s, source / MB / tar_s, "%.0f" % (tar_stored / MB)))
    print(row % ("restic backup (unchanged rerun)", rerun_s, source / MB / rerun_s,
                 "+%.1f" % ((dir_bytes(repo) - restic_stored) / MB)))
    print("ratio restic/tar: time %.2fx, stored size %.2fx; rerun ok=%s"
          % (restic_s / tar_s, restic_stored / float(tar_stored), again["ok"]))


if __name__ == "__main__":
    main()

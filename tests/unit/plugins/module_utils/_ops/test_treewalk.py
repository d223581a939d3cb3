# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""treewalk.py against GNU du on real trees: every directory's size must be identical.

Each test builds a real tree in ``tmp_path`` (ext4 here) and compares the walk with
``du -B1 [-x] ROOT`` line by line, with one worker (in-process) and with forked workers.

The unreadable-directory test needs a user who cannot read everything (root reads all),
so it builds its tree under /var/tmp (``tmp_path`` sits in a 0700 directory), makes one
directory 0700 and one 0744 (listable, not searchable) and runs both ``du`` and the walk
as ``nobody`` through ``runuser -u nobody -- /usr/bin/python3``, with ``_ops`` copied to a
world-readable temp directory as the ``runbook_ops`` package, the way the CLI ships it.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
import tempfile

import pytest

REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import treewalk  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.treewalk import walk_tree  # noqa: E402

OPS_DIR = os.path.join(REPO, "plugins", "module_utils", "_ops")
WORKERS = [1, 2, 4]


def du_sizes(root, one_file_system=True, user=None):
    """``{path: bytes}`` for every directory ``du -B1`` lists (as ``user`` if given)."""
    argv = ["du", "-B1"] + (["-x"] if one_file_system else []) + [str(root)]
    if user:
        argv = ["runuser", "-u", user, "--"] + argv
    proc = subprocess.run(argv, capture_output=True, text=True, env=dict(os.environ, LC_ALL="C"), check=False)
    sizes = {}
    for line in proc.stdout.splitlines():
        size, path = line.split("\t", 1)
        sizes[path] = int(size)
    return sizes, proc


def walk_sizes(result):
    return {result.path_of(i): result.sizes[i] for i in range(result.dirs)}


def write(path, size=0, sparse=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        if sparse:
            handle.truncate(size)
        elif size:
            handle.write(b"r" * size)


# ---------------------------------------------------------------------------- trees


def tree_flat(root):
    for n in range(25):
        write(root / ("f%02d" % n), n * 1000)


def tree_nested(root):
    for a in range(4):
        for b in range(3):
            for n in range(5):
                write(root / ("a%d" % a) / ("b%d" % b) / ("f%d" % n), (a + 1) * (b + 1) * 3000 * n)
            (root / ("a%d" % a) / ("empty%d" % b)).mkdir()


def tree_hard_links(root):
    """The same inodes in several directories at several depths: du charges the first."""
    write(root / "one" / "big", 200000)
    write(root / "one" / "small", 5000)
    os.link(root / "one" / "big", root / "big-again")
    (root / "two" / "deep" / "er").mkdir(parents=True)
    os.link(root / "one" / "big", root / "two" / "deep" / "er" / "big3")
    os.link(root / "one" / "small", root / "two" / "small2")
    os.link(root / "one" / "small", root / "two" / "deep" / "small3")
    os.link(root / "one" / "small", root / "one" / "small-twin")


def tree_symlinks(root):
    """Links to a big file and to a big directory: sized as links, never followed."""
    write(root / "data" / "big", 300000)
    (root / "links").mkdir()
    os.symlink(str(root / "data" / "big"), root / "links" / "to-file")
    os.symlink(str(root / "data"), root / "links" / "to-dir")
    os.symlink("../data/" + "x" * 200, root / "links" / "long-target")  # a slow symlink
    os.symlink("/nonexistent", root / "links" / "dangling")
    os.symlink(".", root / "links" / "loop")


def tree_sparse_and_special(root):
    write(root / "sparse", 50 * 1024 * 1024, sparse=True)
    write(root / "dense", 70000)
    os.mkfifo(root / "fifo")
    import socket
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(root / "sock"))
    sock.close()


def tree_many(root):
    """Enough directories that forked workers share work, hard links across all of them."""
    rng = random.Random(7)
    files = []
    for a in range(12):
        for b in range(15):
            directory = root / ("t%02d" % a) / ("s%02d" % b)
            directory.mkdir(parents=True)
            for n in range(rng.randint(0, 12)):
                path = directory / ("f%d" % n)
                write(path, rng.choice([0, 1, 4096, 5000, 70000]))
                files.append(path)
    for n in range(60):
        source = rng.choice(files)
        target = rng.choice(files).parent / ("link%d" % n)
        if not target.exists():
            os.link(source, target)


def tree_big_directory(root):
    """A directory of more than 10,000 entries, which du visits in inode order.

    Subdirectories created last (high inodes) hold hard links to files created first
    (low inodes): with inode order du meets each file in the big directory first;
    readdir (hash) order would often meet the link in the subdirectory first.
    """
    big = root / "big"
    big.mkdir()
    for n in range(10050):
        with open(big / ("f%05d" % n), "wb") as handle:
            if n % 500 == 0:
                handle.write(b"z" * 9000)
    for k in range(20):
        sub = big / ("sub%02d" % k)
        sub.mkdir()
        os.link(big / ("f%05d" % (k * 500)), sub / "linked")


TREES = {
    "flat": tree_flat,
    "nested": tree_nested,
    "hard-links": tree_hard_links,
    "symlinks": tree_symlinks,
    "sparse-and-special": tree_sparse_and_special,
    "many": tree_many,
}


@pytest.mark.parametrize("workers", WORKERS, ids=lambda w: "workers=%d" % w)
@pytest.mark.parametrize("build", list(TREES.values()), ids=list(TREES))
def test_walk_sizes_every_directory_like_du(tmp_path, build, workers):
    root = tmp_path / "tree"
    root.mkdir()
    build(root)
    expected, proc = du_sizes(root)
    assert proc.returncode == 0, proc.stderr
    result = walk_tree(str(root), workers=workers)
    assert walk_sizes(result) == expected
    assert not result.partial and result.unreadable == []


@pytest.mark.parametrize("workers", [1, 2], ids=lambda w: "workers=%d" % w)
def test_walk_charges_hard_links_in_big_directories_in_inode_order_like_du(tmp_path, workers):
    root = tmp_path / "tree"
    root.mkdir()
    tree_big_directory(root)
    expected = du_sizes(root)[0]
    assert walk_sizes(walk_tree(str(root), workers=workers)) == expected


def test_walk_counts_hard_links_once_in_files_and_bytes(tmp_path):
    root = tmp_path / "tree"
    tree_hard_links(root)
    result = walk_tree(str(root), workers=2)
    inodes = {os.lstat(os.path.join(d, f)).st_ino
              for d, unused, names in os.walk(root) for f in names}
    assert result.files == len(inodes) == 2
    total = int(subprocess.run(["du", "-sB1", str(root)], capture_output=True,
                               text=True, check=False).stdout.split()[0])
    assert result.total_bytes == total


def test_walk_does_not_follow_symlinks(tmp_path):
    root = tmp_path / "tree"
    tree_symlinks(root)
    result = walk_tree(str(root), workers=1)
    paths = walk_sizes(result)
    assert str(root / "links" / "to-dir") not in paths
    assert paths[str(root / "links")] < 300000  # the linked file is not counted there


@pytest.fixture
def inner_tmpfs(tmp_path):
    root = tmp_path / "tree"
    tree_nested(root)
    mount = root / "a1" / "mnt"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount tmpfs here: %s" % proc.stderr.strip())
    try:
        write(mount / "on-tmpfs" / "payload", 2 * 1024 * 1024)
        yield root, mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


@pytest.mark.parametrize("workers", [1, 2], ids=lambda w: "workers=%d" % w)
def test_walk_skips_other_filesystems_like_du_x(inner_tmpfs, workers):
    root, mount = inner_tmpfs
    expected = du_sizes(root, one_file_system=True)[0]
    result = walk_tree(str(root), one_file_system=True, workers=workers)
    assert walk_sizes(result) == expected
    assert str(mount) not in expected


@pytest.mark.parametrize("workers", [1, 2], ids=lambda w: "workers=%d" % w)
def test_walk_crosses_filesystems_without_one_file_system_like_du(inner_tmpfs, workers):
    root, mount = inner_tmpfs
    expected = du_sizes(root, one_file_system=False)[0]
    result = walk_tree(str(root), one_file_system=False, workers=workers)
    assert walk_sizes(result) == expected
    assert expected[str(mount)] >= 2 * 1024 * 1024


AS_NOBODY = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from runbook_ops.treewalk import walk_tree
result = walk_tree(sys.argv[2], workers=int(sys.argv[3]))
print(json.dumps({"sizes": {result.path_of(i): result.sizes[i] for i in range(result.dirs)},
                  "unreadable": result.unreadable, "partial": result.partial}))
"""


@pytest.fixture
def nobody_tree():
    """A world-readable tree under /var/tmp with a 0700 and a 0744 directory, and the
    core copied where ``nobody`` can import it as ``runbook_ops``."""
    if shutil.which("runuser") is None or os.geteuid() != 0:
        pytest.skip("needs root and runuser to run as nobody")
    base = tempfile.mkdtemp(prefix="runbook-ops-test-", dir="/var/tmp")
    try:
        os.chmod(base, 0o755)
        shutil.copytree(OPS_DIR, os.path.join(base, "lib", "runbook_ops"),
                        ignore=shutil.ignore_patterns("__pycache__"))
        root = os.path.join(base, "tree")
        tree_nested(__import__("pathlib").Path(root))
        write(__import__("pathlib").Path(root) / "a0" / "secret" / "key", 40000)
        write(__import__("pathlib").Path(root) / "a2" / "listable" / "hidden", 40000)
        for directory, unused, names in os.walk(base):
            os.chmod(directory, 0o755)
            for name in names:
                os.chmod(os.path.join(directory, name), 0o644)
        os.chmod(os.path.join(root, "a0", "secret"), 0o700)
        os.chmod(os.path.join(root, "a2", "listable"), 0o744)
        yield base, root
    finally:
        shutil.rmtree(base, ignore_errors=True)


@pytest.mark.parametrize("workers", [1, 2], ids=lambda w: "workers=%d" % w)
def test_walk_reports_unreadable_directories_and_sizes_the_rest_like_du(nobody_tree, workers):
    base, root = nobody_tree
    expected, du_proc = du_sizes(root, user="nobody")
    assert du_proc.returncode == 1 and "Permission denied" in du_proc.stderr
    proc = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", AS_NOBODY,
                           os.path.join(base, "lib"), root, str(workers)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["sizes"] == expected
    assert sorted(entry["path"] for entry in data["unreadable"]) == [
        os.path.join(root, "a0", "secret"), os.path.join(root, "a2", "listable")]
    assert all(entry["error"] == "Permission denied" for entry in data["unreadable"])
    assert data["partial"] is False


CLI_WALK = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from runbook_ops.disk import scan_largest_dirs
print(json.dumps(scan_largest_dirs([sys.argv[2]], count=5)))
"""


def test_walk_runs_forked_from_the_cli_package_under_system_python(tmp_path):
    """The CLI imports the core as ``runbook_ops`` under /usr/bin/python3 (the hosts' Python)."""
    lib = tmp_path / "lib"
    shutil.copytree(OPS_DIR, str(lib / "runbook_ops"), ignore=shutil.ignore_patterns("__pycache__"))
    root = tmp_path / "tree"
    tree_many(root)
    proc = subprocess.run(["/usr/bin/python3", "-c", CLI_WALK, str(lib), str(root)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    expected = du_sizes(root)[0]
    assert data["workers"] > 1 or (os.cpu_count() or 1) == 1
    assert [row["bytes"] for row in data["largest"]] == sorted(expected.values(), reverse=True)[:5]
    assert data["largest"][0] == {"path": str(root), "bytes": expected[str(root)]}


def test_walk_falls_back_to_one_process_when_fork_fails(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    tree_many(root)

    def no_fork():
        raise OSError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(treewalk.os, "fork", no_fork)
    result = walk_tree(str(root), workers=4)
    assert result.workers == 1
    assert walk_sizes(result) == du_sizes(root)[0]


def test_walk_runs_in_process_where_fork_does_not_exist(tmp_path, monkeypatch):
    root = tmp_path / "tree"
    tree_nested(root)
    monkeypatch.delattr(treewalk.os, "fork")
    result = walk_tree(str(root), workers=4)
    assert result.workers == 1
    assert walk_sizes(result) == du_sizes(root)[0]


@pytest.mark.parametrize("workers", [1, 2], ids=lambda w: "workers=%d" % w)
def test_walk_past_its_timeout_returns_what_it_has_flagged_partial(tmp_path, workers):
    root = tmp_path / "tree"
    tree_many(root)
    result = walk_tree(str(root), timeout=1e-9, workers=workers)
    assert result.partial is True
    full = du_sizes(root)[0][str(root)]
    assert result.total_bytes < full


def test_walk_without_timeout_is_not_partial(tmp_path):
    root = tmp_path / "tree"
    tree_flat(root)
    assert walk_tree(str(root), timeout=60, workers=2).partial is False


@pytest.mark.parametrize("sizes, count, expected", [
    ([10, 5, 7, 7, 1], 3, [10, 7, 7]),
    ([3, 3, 3], 2, [3, 3]),
    ([4], 20, [4]),
], ids=["plain", "ties", "fewer-than-count"])
def test_largest_orders_by_size_then_path_like_sort_n(sizes, count, expected):
    names = ["root"] + ["d%d" % i for i in range(1, len(sizes))]
    result = treewalk.WalkResult("/r", names, [-1] + [0] * (len(sizes) - 1), sizes, 0, [],
                                 False, 1, 0.0)
    rows = result.largest(count)
    assert [row["bytes"] for row in rows] == expected
    if len(sizes) == 3 and count == 2:  # ties: the bytewise greater path wins, as with tail
        assert [row["path"] for row in rows] == ["/r/d2", "/r/d1"]

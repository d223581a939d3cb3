# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of _ops/restore_plan.py on real trees on real (tmpfs) filesystems.

The property test builds a live tree, a snapshot listing and exclude patterns, plans,
moves aside for real, and checks every live path against an independent model: excluded
paths untouched, nothing deleted (each inode either in place or in the quarantine),
and nothing left in restic's way."""

from __future__ import annotations

import itertools
import os
import re
import shutil
import stat
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
if os.path.join(_REPO, ".collections") not in sys.path:
    sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import restore_plan  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402

NAMES = ["a", "b", "c", "keep", "x.tmp", "d"]
PATTERNS = ["*.tmp", "keep", "!keep", "b/*", "/{root}/a", "a/**/c", "c", "!/{root}/d/keep",
            "[ab]/d", "?/?/x.tmp"]
_CASES = itertools.count()
_TOPS = {}


# --------------------------------------------------------------------------- trees

def _trees(leaf, depth):
    if depth == 0:
        return leaf
    return st.one_of(leaf, st.dictionaries(st.sampled_from(NAMES), _trees(leaf, depth - 1),
                                           max_size=4))


LIVE = st.dictionaries(st.sampled_from(NAMES),
                       _trees(st.sampled_from(["file", "hardlink", "symlink", "fifo"]), 3),
                       max_size=5)
# "same": a file as the live one is now (its size and time): overwritten in place
SNAPSHOT = st.dictionaries(st.sampled_from(NAMES),
                           _trees(st.sampled_from(["file", "same", "symlink", "fifo"]), 3),
                           max_size=5)


def build_live(root, tree, outside):
    """Create ``tree`` under ``root``: files, files with a second name in ``outside``,
    symlinks to a file in ``outside``, fifos and directories."""
    for name, sub in tree.items():
        path = os.path.join(root, name)
        if isinstance(sub, dict):
            os.mkdir(path)
            build_live(path, sub, outside)
        elif sub == "file":
            with open(path, "w") as handle:
                handle.write(path)
        elif sub == "hardlink":
            partner = os.path.join(outside, "link-%d" % next(_CASES))
            with open(partner, "w") as handle:
                handle.write("shared " + path)
            os.link(partner, path)
        elif sub == "symlink":
            os.symlink(os.path.join(outside, "target"), path)
        else:
            os.mkfifo(path)


def listing(root, tree):
    """A snapshot listing (``restic ls`` shape) of ``tree`` restored at ``root``; a
    ``same`` file has the size and time of the live file there (when there is one)."""
    nodes = {root: {"type": "dir", "size": 0, "mtime_ns": None}}
    for name, sub in tree.items():
        path = os.path.join(root, name)
        if isinstance(sub, dict):
            nodes.update(listing(path, sub))
        elif sub == "same":
            live = os.lstat(path) if os.path.lexists(path) else None
            nodes[path] = {"type": "file", "size": live.st_size if live else 0,
                           "mtime_ns": live.st_mtime_ns if live else None}
        else:
            nodes[path] = {"type": sub, "size": 0, "mtime_ns": None}
    return nodes


def identical(nodes):
    """The snapshot files whose live file has their size and time (restic overwrites those
    in place; any other live file there is moved aside first)."""
    same = set()
    for path, node in nodes.items():
        if node["type"] == "file" and os.path.lexists(path):
            live = os.lstat(path)
            if (live.st_size, live.st_mtime_ns) == (node["size"], node["mtime_ns"]):
                same.add(path)
    return same


def inventory(root):
    """``{path: (inode, type)}`` of everything under ``root``, never following a symlink."""
    found = {}
    for current, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(current, name)
            st_ = os.lstat(path)
            found[path] = (st_.st_ino, restore_plan.live_type(st_.st_mode), st_.st_nlink)
    return found


# --------------------------------------------------------------------------- the model

def _glob_regex(part):
    out = ""
    for char in part:
        out += {"*": "[^/]*", "?": "[^/]"}.get(char, char if char in "[]" else re.escape(char))
    return out


def _pattern_regex(pattern):
    body = pattern.lstrip("!")
    regex = "".join("(?:/[^/]+)*" if part == "**" else "/" + _glob_regex(part)
                    for part in body.split("/") if part)
    lead = "^" if body.startswith("/") else "^(?:/[^/]+)*?"
    return re.compile(lead + regex + "(?:/.*)?$")


def model_excluded(patterns, root, path):
    """restic's exclusion said as regular expressions: some path from ``root`` down to
    ``path`` is matched by the pattern list (later ``!`` patterns take matches back)."""
    compiled = [(pattern.startswith("!"), _pattern_regex(pattern))
                for pattern in patterns + [restore_plan.QUARANTINE_DIR]]
    rest = os.path.relpath(path, root)
    chain = [root] + [os.path.join(root, *rest.split("/")[:n + 1])
                      for n in range(len(rest.split("/")))] if rest != "." else [root]
    for step in chain:
        matched = False
        for negated, regex in compiled:
            hit = bool(regex.match(step))
            matched = (matched and not hit) if negated else (matched or hit)
        if matched:
            return True
    return False


def model_fates(root, live, nodes, patterns, same):
    """``{path: "stay" | "quarantine"}`` for every live path, and the paths kept in the way."""
    def excluded(path):
        return model_excluded(patterns, root, path)

    def fits(path):
        node, (_ino, kind, links) = nodes.get(path), live[path]
        return node is not None and ((node["type"] == kind == "dir") or (
            node["type"] == kind == "file" and links == 1 and path in same))

    def blocked(path):
        return any(other.startswith(path + "/") and excluded(other) for other in live)

    fates, kept = {}, set()
    for path in live:
        if excluded(path):
            fates[path] = "stay"
            continue
        parts = os.path.relpath(path, root).split("/")
        chain = [os.path.join(root, *parts[:n + 1]) for n in range(len(parts))]
        first = next((step for step in chain if not fits(step)), None)
        if first is None:
            fates[path] = "stay"
        elif first in nodes:
            if blocked(first):
                kept.add(first)
            fates[path] = "stay" if blocked(first) else "quarantine"
        else:
            below = chain[chain.index(first):]
            fates[path] = "quarantine" if any(not blocked(step) for step in below) else "stay"
    return fates, kept


# --------------------------------------------------------------------------- property

@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(live_tree=LIVE, snapshot_tree=SNAPSHOT,
       chosen=st.lists(st.sampled_from(PATTERNS), max_size=4))
def test_plan_and_moves_lose_nothing_and_touch_no_excluded_path(
        tmpfs, tmp_path, live_tree, snapshot_tree, chosen):
    if str(tmp_path) not in _TOPS:  # one filesystem for all examples of this test run
        _TOPS[str(tmp_path)] = str(tmpfs(tmp_path / "fs", "size=32m"))
    top = _TOPS[str(tmp_path)]
    case = os.path.join(top, "case%d" % next(_CASES))
    root, outside = os.path.join(case, "root"), os.path.join(case, "outside")
    os.makedirs(root)
    os.makedirs(outside)
    with open(os.path.join(outside, "target"), "w") as handle:
        handle.write("outside the root")
    build_live(root, live_tree, outside)
    patterns = [pattern.format(root=root.strip("/")) for pattern in chosen]
    nodes = listing(root, snapshot_tree)
    same = identical(nodes)
    before = inventory(root)
    outside_before = {name: open(os.path.join(outside, name)).read()
                      for name in os.listdir(outside)}

    plan = restore_plan.plan_in_place([root], nodes, patterns)
    placed = restore_plan.quarantine_moves(plan["moves"], os.path.basename(case))
    restore_plan.move_aside(placed["moves"], placed["dirs"], {"snapshot": "test"})

    fates, kept = model_fates(root, before, nodes, patterns, same)
    quarantine = os.path.join(top, restore_plan.QUARANTINE_DIR, os.path.basename(case))
    assert placed["dirs"] == ([quarantine] if plan["moves"] else [])
    for path, (inode, kind, _links) in before.items():
        where = path if fates[path] == "stay" else quarantine + path
        assert os.path.lexists(where), (fates[path], path, plan)
        assert os.lstat(where).st_ino == inode, (fates[path], path)
    assert {item["path"] for item in plan["kept"]} == kept
    # nothing left in restic's way: every snapshot path it will write is absent or fits
    for path, node in nodes.items():
        if model_excluded(patterns, root, path) or any(
                path == k or path.startswith(k + "/") for k in kept):
            continue
        if os.path.lexists(path):
            st_ = os.lstat(path)
            kind = restore_plan.live_type(st_.st_mode)
            assert kind == node["type"] and kind in ("dir", "file"), (path, kind, node)
            assert kind == "dir" or (st_.st_nlink == 1 and path in same)
    assert {name: open(os.path.join(outside, name)).read()
            for name in os.listdir(outside)} == outside_before
    shutil.rmtree(case)


# --------------------------------------------------------------------------- examples

def _node(kind):
    return {"type": kind, "size": 0, "mtime_ns": None}


def test_refuses_when_the_snapshot_does_not_list_its_own_root(tmp_path):
    (tmp_path / "data").mkdir()
    with pytest.raises(OpsError, match="lists nothing at"):
        restore_plan.plan_in_place([str(tmp_path / "data")], {}, [])


def test_refuses_when_an_exclude_hides_a_parent_of_a_root(tmp_path):
    root = tmp_path / "srv" / "app"
    root.mkdir(parents=True)
    patterns = [str(tmp_path / "srv"), "!" + str(root)]
    with pytest.raises(OpsError, match="a parent of the restored path"):
        restore_plan.plan_in_place([str(root)], {str(root): _node("dir")}, patterns)


def test_moves_go_to_the_top_of_each_filesystem_and_mount_points_stay(tmpfs, tmp_path):
    top = str(tmpfs(tmp_path / "fs", "size=64m"))
    root = os.path.join(top, "data")
    inner = str(tmpfs(os.path.join(root, "uploads"), "size=64m"))  # a disk of its own inside the root
    extra_mount = str(tmpfs(os.path.join(root, "scratch"), "size=64m"))  # mounted, not in the snapshot
    for path in (os.path.join(root, "new.txt"), os.path.join(inner, "new.jpg"),
                 os.path.join(extra_mount, "tmpfile")):
        with open(path, "w") as handle:
            handle.write("written after the backup")
    nodes = {root: _node("dir"), inner: _node("dir")}
    plan = restore_plan.plan_in_place([root], nodes, [])
    assert plan["kept"] == [{"path": extra_mount, "reason": "a mount point not in the snapshot"}]
    placed = restore_plan.quarantine_moves(plan["moves"], "q")
    assert placed["dirs"] == sorted([os.path.join(top, restore_plan.QUARANTINE_DIR, "q"),
                                     os.path.join(inner, restore_plan.QUARANTINE_DIR, "q")])
    inodes = {item["path"]: os.lstat(item["path"]).st_ino for item in placed["moves"]}
    restore_plan.move_aside(placed["moves"], placed["dirs"], {})
    for item in placed["moves"]:
        assert os.lstat(item["to"]).st_ino == inodes[item["path"]]  # a rename, not a copy
    assert os.path.exists(os.path.join(extra_mount, "tmpfile"))
    assert oct(os.stat(placed["dirs"][0]).st_mode & 0o777) == "0o700"
    # the next restore never walks into the quarantine inside the inner filesystem
    again = restore_plan.plan_in_place([root], nodes, [])
    assert again["moves"] == [] and os.path.join(inner, restore_plan.QUARANTINE_DIR) in \
        again["excluded"]


def test_a_bind_mount_of_the_same_filesystem_gets_its_own_quarantine(tmpfs, tmp_path):
    top = str(tmpfs(tmp_path / "fs", "size=64m"))
    root, elsewhere = os.path.join(top, "data"), os.path.join(top, "elsewhere")
    bound = os.path.join(root, "bound")
    os.makedirs(bound)
    os.makedirs(elsewhere)
    subprocess.run(["mount", "--bind", elsewhere, bound], check=True)
    try:
        with open(os.path.join(bound, "new"), "w") as handle:
            handle.write("x")
        plan = restore_plan.plan_in_place([root], {root: _node("dir"), bound: _node("dir")}, [])
        placed = restore_plan.quarantine_moves(plan["moves"], "q")
        assert placed["dirs"] == [os.path.join(bound, restore_plan.QUARANTINE_DIR, "q")]
        restore_plan.move_aside(placed["moves"], placed["dirs"], {})  # no EXDEV
        assert os.path.exists(placed["moves"][0]["to"])
    finally:
        subprocess.run(["umount", "-l", bound], check=False)


def test_a_symlink_pointing_outside_is_moved_and_its_target_untouched(tmpfs, tmp_path):
    top = str(tmpfs(tmp_path / "fs", "size=64m"))
    root = os.path.join(top, "data")
    os.makedirs(root)
    secret = os.path.join(top, "etc-passwd")
    with open(secret, "w") as handle:
        handle.write("root:x:0:0")
    os.symlink(secret, os.path.join(root, "config.yml"))  # the snapshot has a file here
    os.symlink(top, os.path.join(root, "uploads"))  # the snapshot has a directory here
    nodes = {root: _node("dir"), os.path.join(root, "config.yml"): _node("file"),
             os.path.join(root, "uploads"): _node("dir")}
    plan = restore_plan.plan_in_place([root], nodes, [])
    assert sorted(item["reason"] for item in plan["moves"]) == [
        "a symlink where the snapshot has a dir", "a symlink where the snapshot has a file"]
    placed = restore_plan.quarantine_moves(plan["moves"], "q")
    restore_plan.move_aside(placed["moves"], placed["dirs"], {})
    assert open(secret).read() == "root:x:0:0"
    assert not os.path.lexists(os.path.join(root, "uploads"))


def test_a_directory_in_the_way_that_holds_excluded_files_is_kept_and_left_out(tmp_path):
    root = tmp_path / "data"
    (root / "cache").mkdir(parents=True)
    (root / "cache" / "big.tmp").write_text("excluded")
    nodes = {str(root): _node("dir"), str(root / "cache"): _node("file")}
    plan = restore_plan.plan_in_place([str(root)], nodes, ["*.tmp"])
    assert plan["moves"] == [] and plan["kept"][0]["path"] == str(root / "cache")
    assert restore_plan.escape_path(str(root / "cache")) in plan["restore_excludes"]
    assert plan["excluded"] == [str(root / "cache" / "big.tmp")]


def test_quarantine_name_collision_gets_a_suffix(tmpfs, tmp_path):
    top = str(tmpfs(tmp_path / "fs", "size=64m"))
    os.makedirs(os.path.join(top, restore_plan.QUARANTINE_DIR, "q"))
    path = os.path.join(top, "f")
    open(path, "w").close()
    placed = restore_plan.quarantine_moves([{"path": path, "reason": "r"}], "q")
    assert placed["dirs"] == [os.path.join(top, restore_plan.QUARANTINE_DIR, "q.2")]


def test_move_aside_refuses_before_moving_when_a_path_is_on_another_device(tmpfs, tmp_path):
    top = str(tmpfs(tmp_path / "fs", "size=64m"))
    other = str(tmpfs(tmp_path / "other", "size=64m"))
    path = os.path.join(other, "f")
    open(path, "w").close()
    wrong = [{"path": path, "reason": "r", "to": os.path.join(top, "q") + path}]
    with pytest.raises(OpsError, match="nothing was moved"):
        restore_plan.move_aside(wrong, [os.path.join(top, "q")], {})
    assert os.path.exists(path)


def test_live_type_names_every_kind(tmp_path):
    os.mkfifo(str(tmp_path / "fifo"))
    assert restore_plan.live_type(os.lstat(str(tmp_path / "fifo")).st_mode) == "other"
    assert restore_plan.live_type(stat.S_IFDIR) == "dir"


def test_a_quarantine_directory_that_is_a_symlink_is_refused(tmpfs, tmp_path):
    top = str(tmpfs(tmp_path / "fs", "size=64m"))
    os.makedirs(os.path.join(top, "elsewhere"))
    path = os.path.join(top, "f")
    open(path, "w").close()
    placed = restore_plan.quarantine_moves([{"path": path, "reason": "r"}], "q")
    os.symlink(os.path.join(top, "elsewhere"), os.path.join(top, restore_plan.QUARANTINE_DIR))
    # the plan (and so --check) refuses it ...
    with pytest.raises(OpsError, match="is a mount point or a symlink.*nothing was moved"):
        restore_plan.quarantine_moves([{"path": path, "reason": "r"}], "q")
    # ... and so do the moves, when it appeared after the plan
    with pytest.raises(OpsError, match="is not a directory .a symlink.*nothing was moved"):
        restore_plan.move_aside(placed["moves"], placed["dirs"], {})
    assert os.path.exists(path) and os.listdir(os.path.join(top, "elsewhere")) == []


def test_a_path_gone_before_its_move_is_reported_not_fatal(tmpfs, tmp_path):
    top = str(tmpfs(tmp_path / "fs", "size=64m"))
    paths = [os.path.join(top, name) for name in ("gone", "stays")]
    for path in paths:
        open(path, "w").close()
    placed = restore_plan.quarantine_moves([{"path": p, "reason": "r"} for p in paths], "q")
    os.unlink(paths[0])
    done = restore_plan.move_aside(placed["moves"], placed["dirs"], {})
    assert [item["path"] for item in done["moved"]] == [paths[1]]
    assert done["warnings"] == ["%s was gone before it could be moved aside" % paths[0]]


# --------------------------------------------------------------------------- same-filesystem bind mounts

@pytest.fixture
def binds():
    """``bind(source, target)`` bind-mounts for real; all are unmounted after the test."""
    done = []

    def bind(source, target):
        subprocess.run(["mount", "--bind", str(source), str(target)], check=True)
        done.append(str(target))

    yield bind
    for target in reversed(done):
        subprocess.run(["umount", "-l", target], check=False)


def _tree_with_bind(tmpfs, tmp_path, binds, mount_at, kind="dir"):
    """A root on a tmpfs, ``elsewhere`` on the same filesystem bind-mounted at
    ``root/<mount_at>`` (a directory, or a file when ``kind`` is ``file``)."""
    top = str(tmpfs(tmp_path / "fs", "size=64m"))
    root = os.path.join(top, "data")
    target = os.path.join(root, mount_at)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if kind == "dir":
        source = os.path.join(top, "elsewhere")
        os.makedirs(source)
        os.makedirs(target)
        with open(os.path.join(source, "precious"), "w") as handle:
            handle.write("p")
    else:
        source = os.path.join(top, "elsewhere.db")
        for path in (source, target):
            with open(path, "w") as handle:
                handle.write("live now")
    binds(source, target)
    return root, target


def test_a_same_filesystem_bind_mount_below_a_new_directory_stays_and_the_rest_moves(
        tmpfs, tmp_path, binds):
    """new/ is not in the snapshot and holds a bind mount: new/ cannot move as a whole;
    its other entries move, the mount point is kept."""
    root, target = _tree_with_bind(tmpfs, tmp_path, binds, "new/shared")
    with open(os.path.join(root, "new", "photo.jpg"), "w") as handle:
        handle.write("uploaded since")
    plan = restore_plan.plan_in_place([root], {root: _node("dir")}, [])
    assert plan["kept"] == [{"path": target, "reason": "a mount point not in the snapshot"}]
    assert [item["path"] for item in plan["moves"]] == [os.path.join(root, "new", "photo.jpg")]
    placed = restore_plan.quarantine_moves(plan["moves"], "q")
    restore_plan.move_aside(placed["moves"], placed["dirs"], {})  # no EBUSY
    assert os.path.exists(os.path.join(target, "precious"))


def test_a_same_filesystem_bind_mount_where_the_snapshot_has_a_file_is_kept(
        tmpfs, tmp_path, binds):
    root, target = _tree_with_bind(tmpfs, tmp_path, binds, "shared")
    plan = restore_plan.plan_in_place([root], {root: _node("dir"), target: _node("file")}, [])
    assert plan["moves"] == []
    assert plan["kept"] == [{"path": target, "reason": "a mount point where the snapshot has "
                                                       "a file; not restored"}]
    assert restore_plan.escape_path(target) in plan["restore_excludes"]


def test_a_bind_mounted_file_that_differs_from_the_snapshot_is_kept_not_moved(
        tmpfs, tmp_path, binds):
    root, target = _tree_with_bind(tmpfs, tmp_path, binds, "app.db", kind="file")
    plan = restore_plan.plan_in_place(
        [root], {root: _node("dir"), target: {"type": "file", "size": 3, "mtime_ns": 1}}, [])
    assert plan["moves"] == [] and plan["kept"][0]["path"] == target


def test_a_root_reached_through_a_symlink_still_sees_its_bind_mounts(tmpfs, tmp_path, binds):
    root, target = _tree_with_bind(tmpfs, tmp_path, binds, "shared")
    alias = str(tmp_path / "alias")
    os.symlink(os.path.dirname(root), alias)  # the backup was made through /srv -> /data/srv
    via = os.path.join(alias, "data")
    plan = restore_plan.plan_in_place([via], {via: _node("dir")}, [])
    assert [item["path"] for item in plan["kept"]] == [os.path.join(via, "shared")]


# --------------------------------------------------------------------------- files restic would rewrite

def _file_node(path, **changes):
    live = os.lstat(path)
    return dict({"type": "file", "size": live.st_size, "mtime_ns": live.st_mtime_ns}, **changes)


def test_a_file_that_differs_moves_aside_and_an_identical_one_is_overwritten(tmpfs, tmp_path):
    top = str(tmpfs(tmp_path / "fs", "size=64m"))
    root = os.path.join(top, "data")
    os.makedirs(root)
    same, changed = os.path.join(root, "same.txt"), os.path.join(root, "changed.db")
    for path in (same, changed):
        with open(path, "w") as handle:
            handle.write("content")
    nodes = {root: _node("dir"), same: _file_node(same),
             changed: _file_node(changed, size=3)}
    plan = restore_plan.plan_in_place([root], nodes, [])
    assert plan["moves"] == [{"path": changed, "reason": "differs from the snapshot: moved "
                                                         "aside, so the restore can be undone"}]
    assert (plan["replace"], plan["changed"], plan["create"]) == (2, 1, 0)
    assert plan["changed_sample"] == [changed]


def test_a_file_hard_linked_in_the_snapshot_moves_aside_even_when_identical(tmp_path):
    root = tmp_path / "data"
    root.mkdir()
    (root / "b").write_text("orig")
    nodes = {str(root): _node("dir"),
             str(root / "b"): _file_node(str(root / "b"), hardlinked=True)}
    plan = restore_plan.plan_in_place([str(root)], nodes, [])
    assert [item["path"] for item in plan["moves"]] == [str(root / "b")]
    assert "hard-linked in the snapshot" in plan["moves"][0]["reason"]


def test_space_counts_what_restic_writes_on_each_filesystem(tmpfs, tmp_path):
    """New files and replacements of moved files in whole blocks; identical files
    overwritten in place and files only moved aside need nothing."""
    top = str(tmpfs(tmp_path / "fs", "size=64m"))
    root = os.path.join(top, "data")
    inner = str(tmpfs(os.path.join(root, "disk2"), "size=64m"))
    for path, size in ((os.path.join(root, "same"), 10000), (os.path.join(root, "grew"), 5),
                       (os.path.join(root, "extra"), 9000)):
        with open(path, "wb") as handle:
            handle.write(b"x" * size)
    nodes = {root: _node("dir"), inner: _node("dir"),
             os.path.join(root, "same"): _file_node(os.path.join(root, "same")),
             os.path.join(root, "grew"): {"type": "file", "size": 5000, "mtime_ns": 1},
             os.path.join(root, "new"): _node("dir"),
             os.path.join(root, "new", "a"): {"type": "file", "size": 1, "mtime_ns": 1},
             os.path.join(inner, "b"): {"type": "file", "size": 4097, "mtime_ns": 1}}
    plan = restore_plan.plan_in_place([root], nodes, [])
    assert plan["space"] == [{"path": root, "bytes": 4096 * 4},  # grew (2), new/, new/a
                             {"path": inner, "bytes": 4096 * 2}]


def test_a_mounted_quarantine_is_refused_before_anything_moves(tmpfs, tmp_path, binds):
    """Two filesystems to restore over; the second's runbook-ops-quarantine is a bind mount
    (same filesystem, so the device check passes): its renames would fail with EXDEV after
    the first filesystem's moves were done. The plan (and so --check) refuses first."""
    first = str(tmpfs(tmp_path / "one", "size=16m"))
    second = str(tmpfs(tmp_path / "two", "size=16m"))
    for top in (first, second):
        with open(os.path.join(top, "new.jpg"), "w") as handle:
            handle.write("uploaded since")
    os.makedirs(os.path.join(second, "elsewhere"))
    os.makedirs(os.path.join(second, restore_plan.QUARANTINE_DIR))
    binds(os.path.join(second, "elsewhere"), os.path.join(second, restore_plan.QUARANTINE_DIR))
    plan = restore_plan.plan_in_place([first, second], {first: _node("dir"),
                                                        second: _node("dir")}, [])
    with pytest.raises(OpsError, match="is a mount point or a symlink"):
        restore_plan.quarantine_moves(plan["moves"], "q")
    assert os.path.exists(os.path.join(first, "new.jpg"))
    assert os.path.exists(os.path.join(second, "new.jpg"))

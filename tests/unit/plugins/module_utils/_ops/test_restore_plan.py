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
SNAPSHOT = st.dictionaries(st.sampled_from(NAMES),
                           _trees(st.sampled_from(["file", "symlink", "fifo"]), 3), max_size=5)


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
    """A snapshot listing (``restic ls`` shape) of ``tree`` restored at ``root``."""
    nodes = {root: {"type": "dir", "size": 0, "mtime_ns": None}}
    for name, sub in tree.items():
        path = os.path.join(root, name)
        if isinstance(sub, dict):
            nodes.update(listing(path, sub))
        else:
            nodes[path] = {"type": sub, "size": 0, "mtime_ns": None}
    return nodes


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


def model_fates(root, live, nodes, patterns):
    """``{path: "stay" | "quarantine"}`` for every live path, and the paths kept in the way."""
    def excluded(path):
        return model_excluded(patterns, root, path)

    def fits(path):
        node, (_ino, kind, links) = nodes.get(path), live[path]
        return node is not None and ((node["type"] == kind == "dir")
                                     or (node["type"] == kind == "file" and links == 1))

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
    before = inventory(root)
    outside_before = {name: open(os.path.join(outside, name)).read()
                      for name in os.listdir(outside)}

    plan = restore_plan.plan_in_place([root], nodes, patterns)
    placed = restore_plan.quarantine_moves(plan["moves"], os.path.basename(case))
    restore_plan.move_aside(placed["moves"], placed["dirs"], {"snapshot": "test"})

    fates, kept = model_fates(root, before, nodes, patterns)
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
            assert kind == "dir" or st_.st_nlink == 1
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
    os.symlink(os.path.join(top, "elsewhere"), os.path.join(top, restore_plan.QUARANTINE_DIR))
    path = os.path.join(top, "f")
    open(path, "w").close()
    placed = restore_plan.quarantine_moves([{"path": path, "reason": "r"}], "q")
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

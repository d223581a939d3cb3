# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The filesystem side of an in-place restore: restore what the snapshot has, lose nothing else.

``plan_in_place`` compares the snapshot's listing with the live tree under the
restored paths (never following a symlink) and decides, path by path:

- ``excluded``: the job's excludes match it (restic's own rules, ``restic_filter``), or
  it is a ``runbook-ops-quarantine`` directory. Never touched: the walk does not enter
  it and ``restic restore`` gets the same ``--exclude`` patterns.
- ``replace`` / ``create``: a live regular file the snapshot has, with the snapshot's
  size, time and change time (``ctime_ns`` when the listing has it: a rewrite that kept
  size and mtime still changes it), is overwritten by restic; a path the snapshot has and the host lacks is
  created.
- ``moves``: moved aside, never deleted. Files and directories the snapshot does not
  have (written after the backup); a file that differs from the snapshot's (so the
  restore can be undone: the old one is in the quarantine); and whatever restic would fail
  on or write through: a live path of another type than the snapshot's (a directory where
  it has a file, a symlink, fifo or device where it has one), a file with other hard links
  (restic truncates files in place, which would change the other names too) and a file
  the snapshot has hard-linked (restic 0.14 deletes such a file and does not link it). A
  directory goes as a whole when nothing below it is excluded or mounted, else entry by
  entry.
- ``kept``: cannot be moved (a mount point: another device than its parent, or in the
  mount table, as a bind mount of the same filesystem is; a directory in the way that
  holds excluded paths): left exactly as it is and left out of the restore. Every place
  that decides a move checks this first.
- ``space``: what restic will write on each filesystem (new files and the replacements of
  moved files, at full length in whole blocks), for the free-space check.

``quarantine_moves`` places each move under ``<top of the file's filesystem>/
runbook-ops-quarantine/<time>-<job>-<snapshot>/<original absolute path>`` (the top is
the mount point, or the btrfs subvolume, found by mount table and st_dev), so moving is
a rename on one filesystem: no space needed, nothing half-copied. ``move_aside`` does
the renames and writes ``restore-plan.json`` beside them.
"""

from __future__ import annotations

import datetime
import json
import os
import stat

from .errors import OpsError
from .mounts import unescape_mount
from .restic_filter import escape_path, list_matches, parse_patterns

QUARANTINE_DIR = "runbook-ops-quarantine"
SAMPLE = 50
BLOCK = 4096


def live_type(mode):
    """``dir``, ``file``, ``symlink`` or ``other`` for an ``lstat`` mode."""
    if stat.S_ISLNK(mode):
        return "symlink"
    if stat.S_ISDIR(mode):
        return "dir"
    return "file" if stat.S_ISREG(mode) else "other"


def _lstat(path):
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None


def _listdir(path):
    """The names in a live directory; unreadable, it stops the plan before anything changed."""
    try:
        return os.listdir(path)
    except OSError as exc:
        raise OpsError("cannot read %s (%s); nothing was changed" % (path, exc.strerror))


class _Planner:
    """One walk over the restored roots; fills the plan's lists."""

    def __init__(self, nodes, excludes, mounts):
        self.nodes = nodes
        self.mounts = mounts
        self.root, self.real_root = "", ""
        self.parsed = parse_patterns(list(excludes) + [QUARANTINE_DIR])
        self.children = {}
        for path in nodes:
            parent, name = os.path.split(path)
            self.children.setdefault(parent, set()).add(name)
        self.plan = {"moves": [], "kept": [], "excluded": [], "replace": 0, "create": 0,
                     "changed": 0, "changed_sample": []}
        self.space = {}

    def start(self, root):
        """Walk ``root`` next; paths below it are compared with the mount table by the
        root's real path (the walk never follows a symlink, so the rest is real)."""
        self.root, self.real_root = root, os.path.realpath(root)

    def excluded(self, path):
        return list_matches(self.parsed, path)

    def mounted(self, path, st, parent_dev):
        """Whether ``path`` is a mount point: another device than its parent, or in the
        mount table (a bind mount of the same filesystem has its parent's device)."""
        return st.st_dev != parent_dev or (
            self.real_root + path[len(self.root):]) in self.mounts

    def visit(self, path, parent_dev, parent_path):
        """Decide for ``path`` (not excluded) and what is below it."""
        node = self.nodes.get(path)
        wanted = node["type"] if node else None
        st = _lstat(path)
        if st is None:
            if wanted and wanted != "socket":
                self.count_create(path, parent_dev, parent_path)
            return
        live = live_type(st.st_mode)
        if wanted is None:
            self.extra(path, st, parent_dev)
        elif wanted == "socket":
            return  # restic never restores sockets: leave whatever is here
        elif wanted == "dir" and live == "dir":
            self.descend(path, st)
        elif wanted == "file" and live == "file" and st.st_nlink == 1:
            self.replace(path, st, node, parent_dev, parent_path)
        else:
            self.displace(path, st, parent_dev, parent_path, _conflict_reason(wanted, live, st))

    def descend(self, path, st):
        names = set(_listdir(path))
        for name in sorted(names | self.children.get(path, set())):
            child = os.path.join(path, name)
            if self.excluded(child):
                if name in names:
                    self.plan["excluded"].append(child)
                continue
            self.visit(child, st.st_dev, path)

    def replace(self, path, st, node, parent_dev, parent_path):
        """A live file where the snapshot has one: identical ones are overwritten in place;
        one that differs, or that the snapshot has hard-linked, moves aside first."""
        self.plan["replace"] += 1
        reason = ""
        if node.get("size") != st.st_size or node.get("mtime_ns") != st.st_mtime_ns or (
                node.get("ctime_ns") is not None and node["ctime_ns"] != st.st_ctime_ns):
            self.plan["changed"] += 1
            if len(self.plan["changed_sample"]) < SAMPLE:
                self.plan["changed_sample"].append(path)
            reason = "differs from the snapshot: moved aside, so the restore can be undone"
        elif node.get("hardlinked"):
            reason = ("hard-linked in the snapshot: restic (0.14) would delete it here and "
                      "not link it")
        if reason:
            self.displace(path, st, parent_dev, parent_path, reason, replacing=True)

    def count_create(self, path, dev, parent_path, counted=True):
        """Count what restic creates at ``path`` and below (on device ``dev``)."""
        if counted:
            self.plan["create"] += 1
        node = self.nodes[path]
        self.add_space(dev, parent_path, (node.get("size") or 0) if node["type"] == "file"
                       else BLOCK)
        for name in self.children.get(path, ()):
            child = os.path.join(path, name)
            if not self.excluded(child) and self.nodes[child]["type"] != "socket":
                self.count_create(child, dev, parent_path, counted)

    def add_space(self, dev, path, size):
        """Count ``size`` bytes restic writes on device ``dev`` (``path``: a directory on
        it), in whole 4 KiB blocks: files at their full length (restic 0.14 writes sparse
        files out in full), everything else one block."""
        entry = self.space.setdefault(dev, {"path": path, "bytes": 0})
        entry["bytes"] += -(-size // BLOCK) * BLOCK

    def move(self, path, reason):
        self.plan["moves"].append({"path": path, "reason": reason})

    def keep(self, path, reason):
        self.plan["kept"].append({"path": path, "reason": reason})

    def displace(self, path, st, parent_dev, parent_path, reason, replacing=False):
        """The snapshot has something else at ``path``: move the live one aside, or keep it."""
        if self.mounted(path, st, parent_dev):
            self.keep(path, "a mount point where the snapshot has a %s; not restored"
                      % self.nodes[path]["type"])
            return
        if stat.S_ISDIR(st.st_mode):
            clean, _moves = self.scan_extra(path, st)
            if not clean:
                self.keep(path, "a directory holding excluded paths or mount points where "
                                "the snapshot has a %s; not restored" % self.nodes[path]["type"])
                return
        self.move(path, reason)
        self.count_create(path, parent_dev, parent_path, counted=not replacing)

    def extra(self, path, st, parent_dev):
        """``path`` is not in the snapshot: move it aside (or what of it can move)."""
        if self.mounted(path, st, parent_dev):
            self.keep(path, "a mount point not in the snapshot")
            return
        if not stat.S_ISDIR(st.st_mode):
            self.move(path, "not in the snapshot")
            return
        clean, moves = self.scan_extra(path, st)
        if clean:
            self.move(path, "not in the snapshot")
        else:
            for item in moves:
                self.move(item, "not in the snapshot")

    def scan_extra(self, path, st):
        """Walk a live directory the snapshot does not have here.

        Returns ``(clean, moves)``: clean when nothing below is excluded or mounted (the
        directory can move as a whole); else the entries that can move one by one. Excluded
        entries and mount points found are recorded, as they stay.
        """
        clean, moves = True, []
        for name in sorted(_listdir(path)):
            child = os.path.join(path, name)
            if self.excluded(child):
                self.plan["excluded"].append(child)
                clean = False
                continue
            child_st = _lstat(child)
            if child_st is None:
                continue
            if self.mounted(child, child_st, st.st_dev):
                self.keep(child, "a mount point not in the snapshot")
                clean = False
            elif stat.S_ISDIR(child_st.st_mode):
                child_clean, child_moves = self.scan_extra(child, child_st)
                if child_clean:
                    moves.append(child)
                else:
                    clean = False
                    moves.extend(child_moves)
            else:
                moves.append(child)
        return clean, moves


def _conflict_reason(wanted, live, st):
    if live == "file" and wanted == "file":
        return "has %d hard links; restic would overwrite the other names too" % st.st_nlink
    if live == "symlink":
        return "a symlink where the snapshot has a %s" % wanted
    return "a %s where the snapshot has a %s" % (live, wanted)


def _ancestors(path):
    parent = os.path.dirname(path)
    found = []
    while parent not in ("/", ""):
        found.append(parent)
        parent = os.path.dirname(parent)
    return found


def plan_in_place(roots, nodes, excludes, mounts=None):
    """What an in-place restore of ``nodes`` (``{path: {"type", "size", "mtime_ns",
    "hardlinked"?}}``, the snapshot's listing) over ``roots`` (its paths) does to the
    live tree. ``mounts``: the mount points (default: this process's mount table).

    Returns ``{"moves": [{"path", "reason"}], "kept": [{"path", "reason"}],
    "excluded": [paths], "replace", "create", "changed": counts, "changed_sample",
    "restore_excludes": [patterns for restic restore], "space": [{"path", "bytes"}]}``
    (``space``: what restic will write on each filesystem, ``path`` a directory on it).
    Reads only; raises ``OpsError`` when the snapshot does not list a root or an exclude
    would make restic skip a root.
    """
    planner = _Planner(nodes, excludes, mount_points() if mounts is None else mounts)
    for root in sorted(set(roots)):
        if root not in nodes:
            raise OpsError("the snapshot lists nothing at %s, one of its own paths; refusing "
                           "an in-place restore that would move the live tree aside" % root)
        if planner.excluded(root):
            if os.path.lexists(root):
                planner.plan["excluded"].append(root)
            continue
        hiding = [parent for parent in _ancestors(root) if planner.excluded(parent)]
        if hiding:
            raise OpsError("the exclude patterns match %s, a parent of the restored path %s: "
                           "restic restore would skip it; fix backup_excludes" % (hiding[0], root))
        parent = _lstat(os.path.dirname(root))
        planner.start(root)
        planner.visit(root, parent.st_dev if parent else None, os.path.dirname(root))
    plan = planner.plan
    plan["restore_excludes"] = (list(excludes) + [QUARANTINE_DIR]
                                + [escape_path(item["path"]) for item in plan["kept"]])
    plan["space"] = sorted(planner.space.values(), key=lambda entry: entry["path"])
    return plan


# --------------------------------------------------------------------------- quarantine

def mount_table(path):
    """The lines of ``/etc/fstab``; they end where the file cannot be read (none when it
    cannot be opened: a host or container without one)."""
    try:
        with open(path, encoding="utf-8", errors="surrogateescape") as handle:
            yield from handle
    except OSError:
        pass


def mount_points(mountinfo="/proc/self/mountinfo"):
    """The mount points of this process's mount table. Raises ``OpsError`` when it cannot be
    read whole: the walks that must stop at mount points (a restore, emptying a dump
    directory) would otherwise go on as if nothing were mounted."""
    try:
        with open(mountinfo, encoding="utf-8", errors="surrogateescape") as handle:
            fields = [line.split(" ") for line in handle]
    except OSError as exc:
        raise OpsError("cannot read the mount table %s (%s): nothing was deleted, moved or restored"
                       % (mountinfo, exc.strerror or exc))
    return {unescape_mount(entry[4]) for entry in fields if len(entry) > 4}


def filesystem_top(path, mounts):
    """The highest directory above ``path`` on the same mount and device: where its
    quarantine goes (a rename from ``path`` to below it stays on one filesystem)."""
    device = os.lstat(path).st_dev
    current = os.path.realpath(os.path.dirname(path))
    while current != "/" and current not in mounts:
        parent = os.path.dirname(current)
        if os.lstat(parent).st_dev != device:
            break
        current = parent
    return current


def quarantine_name(job, short_id, now=None):
    """``<YYYYmmddTHHMMSS>-<job>-<snapshot>``: one directory per restore and filesystem."""
    stamp = (now or datetime.datetime.now()).strftime("%Y%m%dT%H%M%S")
    return "%s-%s-%s" % (stamp, job, short_id)


def quarantine_moves(moves, name, mounts=None):
    """Give each move its destination; returns ``{"dirs": [...], "moves": [{"path",
    "reason", "to"}]}``. A directory of that name already there gets a ``.N`` suffix."""
    mounts = mount_points() if mounts is None else mounts
    dirs = {}
    placed = []
    for item in moves:
        top = filesystem_top(item["path"], mounts)
        if top not in dirs:
            _refuse_mounted_quarantine(top, mounts)
            base = os.path.join(top, QUARANTINE_DIR, name)
            candidate, counter = base, 1
            while os.path.lexists(candidate):
                counter += 1
                candidate = "%s.%d" % (base, counter)
            dirs[top] = candidate
        placed.append(dict(item, to=dirs[top] + item["path"]))
    return {"dirs": sorted(dirs.values()), "moves": placed}


def _refuse_mounted_quarantine(top, mounts):
    """A ``runbook-ops-quarantine`` that is a mount point (or a symlink) of its own turns
    every rename into it into EXDEV half-way through a restore: refuse before any move."""
    quarantine = os.path.join(top, QUARANTINE_DIR)
    if os.path.islink(quarantine) or os.path.realpath(quarantine) in mounts:
        raise OpsError("%s is a mount point or a symlink: moving files into it would not be "
                       "a rename on one filesystem; unmount or remove it (it must be a plain "
                       "directory); nothing was moved" % quarantine, moved=[])


def move_aside(moves, dirs, header):
    """Rename every move (``quarantine_moves``' output) into its quarantine directory.

    Each directory in ``dirs`` is made (0700) and checked to be on the device of the
    paths bound for it before the first rename. A failed rename raises ``OpsError``
    naming what had moved (``details["moved"]``); nothing is ever deleted. ``header``
    (snapshot, job, time) goes into ``restore-plan.json`` beside the moved paths.
    Returns ``{"moved": [...], "warnings": [...]}``.
    """
    by_dir, warnings = {}, []
    for item in moves:
        by_dir.setdefault(_owning_dir(item["to"], dirs), []).append(item)
    for qdir, items in sorted(by_dir.items()):
        _make_quarantine(qdir)
        device = os.stat(qdir).st_dev
        for item in items:
            found = _lstat(item["path"])
            if found is not None and found.st_dev != device:
                raise OpsError("%s is not on the filesystem of %s; nothing was moved"
                               % (item["path"], qdir), moved=[])
        warning = _write_manifest(qdir, dict(header, moves=items))
        if warning:
            warnings.append(warning)
    moved = []
    for item in moves:
        try:
            os.makedirs(os.path.dirname(item["to"]), mode=0o700, exist_ok=True)
            os.rename(item["path"], item["to"])
        except FileNotFoundError:
            if os.path.lexists(item["path"]):
                raise
            warnings.append("%s was gone before it could be moved aside" % item["path"])
            continue
        except OSError as exc:
            raise OpsError("could not move %s aside to %s (%s); %d paths were moved before "
                           "it, all are in %s" % (item["path"], item["to"], exc.strerror,
                                                  len(moved), ", ".join(sorted(by_dir))),
                           moved=moved)
        moved.append(item)
    return {"moved": moved, "warnings": warnings}


def _make_quarantine(qdir):
    """Make ``qdir`` (0700) below a real ``runbook-ops-quarantine`` directory (0700)."""
    parent = os.path.dirname(qdir)
    try:
        if os.path.lexists(parent) and (os.path.islink(parent) or not os.path.isdir(parent)):
            raise OpsError("%s is not a directory (a symlink?); remove it or move it away; "
                           "nothing was moved" % parent, moved=[])
        os.makedirs(qdir, mode=0o700)
        os.chmod(parent, 0o700)
    except OSError as exc:
        raise OpsError("cannot create the quarantine %s (%s); nothing was moved"
                       % (qdir, exc.strerror), moved=[])


def _owning_dir(target, dirs):
    for qdir in dirs:
        if target.startswith(qdir + "/"):
            return qdir
    raise ValueError(target)


def _write_manifest(qdir, content):
    """Write ``restore-plan.json`` (what is here and why); a failure is returned, not raised:
    the moved paths mirror their original places, so the record is a help, not a need."""
    path = os.path.join(qdir, "restore-plan.json")
    try:
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(content, handle, indent=1, sort_keys=True, default=str)
            handle.write("\n")
    except OSError as exc:
        return "could not write %s (%s)" % (path, exc.strerror)
    return None

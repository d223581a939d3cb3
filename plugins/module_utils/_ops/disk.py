# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Disk checks: how full each filesystem is, which directories are largest, the trend.

Control flow of ``check_disks`` (what the ``disk_check`` module and the
``runbook-ops disk-check`` command run):

1. ``validate_thresholds`` rejects impossible settings (warn >= crit, percents outside 0-100);
2. ``filesystem_usage(path)`` for each path: ``os.statvfs`` for the figures, with
   ``Use%`` rounded as ``df`` rounds it, and ``/proc/self/mountinfo`` for the mount
   point, device and type; ``classify`` turns percents into ok/warning/critical;
3. ``scan_largest_dirs`` sizes the trees in ``largest_under`` like ``du -x`` (see
   ``treewalk``) and keeps the biggest directories;
4. ``compute_trend`` fits the daily samples in the history file (growth per day, days
   until warn/crit/full);
5. ``format_disk_message`` writes the runbook's one-line alert
   (``⚠️ HOST disk WARNING: 72% used (free 14G, threshold 70%)``).

Everything returns plain data; nothing here writes (``history_sample`` builds the line the
CLI appends).
"""

from __future__ import annotations

import os
import socket
import time

from .errors import OpsError
from .mounts import unescape_mount
from .options import check_config, config_defaults
from .state import read_jsonl
from .timestamps import epoch_seconds, iso_z
from .treewalk import walk_tree

DEFAULT_HISTORY_FILE = "/var/lib/runbook-ops/disk-history.jsonl"
STATUSES = ("ok", "warning", "critical")
FAIL_ON = ("never", "warning", "critical")
_ICONS = {"ok": "\u2705", "warning": "\u26a0\ufe0f", "critical": "\U0001f6a8"}


# ---------------------------------------------------------------------------- thresholds


def validate_thresholds(warn_percent, crit_percent, what="percent"):
    """Raise ``OpsError`` unless ``0 <= warn_percent < crit_percent <= 100``.

    ``what`` names the pair in the message (``percent`` or ``inode percent``).
    """
    prefix = "inode_" if what.startswith("inode") else ""
    for name, value in (("%swarn_percent" % prefix, warn_percent),
                        ("%scrit_percent" % prefix, crit_percent)):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OpsError("%s must be a number between 0 and 100, got %r" % (name, value))
        if not 0 <= value <= 100:
            raise OpsError("%s must be between 0 and 100, got %s; give a percentage of "
                           "the filesystem" % (name, value))
    if warn_percent >= crit_percent:
        raise OpsError("%swarn_percent (%s) must be lower than %scrit_percent (%s); "
                       "warning comes before critical" % (prefix, warn_percent, prefix,
                                                          crit_percent))


def classify(percent, warn_percent, crit_percent):
    """Return ``ok``, ``warning`` (percent >= warn) or ``critical`` (percent >= crit).

    ``None`` (a filesystem without inode figures) is ``ok``. At the limit counts as
    reached, as in the runbook: 70% used with a 70% threshold is a WARNING.
    """
    if percent is None:
        return "ok"
    if percent >= crit_percent:
        return "critical"
    if percent >= warn_percent:
        return "warning"
    return "ok"


def worst(statuses):
    """The most severe of ``statuses`` (``ok`` when empty)."""
    rank = max((STATUSES.index(s) for s in statuses), default=0)
    return STATUSES[rank]


def should_fail(status, fail_on):
    """True when ``status`` is at or above ``fail_on`` (``never`` never fails)."""
    if fail_on not in FAIL_ON:
        raise OpsError("fail_on must be one of %s, got %r" % (", ".join(FAIL_ON), fail_on))
    if fail_on == "never":
        return False
    return STATUSES.index(status) >= STATUSES.index(fail_on)


# ---------------------------------------------------------------------------- filesystems


def parse_mountinfo(text):
    """Parse /proc/self/mountinfo text into ``[{"mount", "device", "fstype", "dev"}]``.

    ``dev`` is the ``st_dev`` number of files on that mount; order is kept (later
    entries are mounted over earlier ones).
    """
    mounts = []
    for line in text.splitlines():
        fields = line.split(" ")
        try:
            sep = fields.index("-", 6)
            major, minor = fields[2].split(":")
            mounts.append({
                "mount": unescape_mount(fields[4]),
                "device": unescape_mount(fields[sep + 2]),
                "fstype": fields[sep + 1],
                "dev": os.makedev(int(major), int(minor)),
            })
        except (ValueError, IndexError):
            continue
    return mounts


def _read_mountinfo():
    try:
        with open("/proc/self/mountinfo", "r", encoding="utf-8", errors="surrogateescape") as handle:
            return parse_mountinfo(handle.read())
    except OSError:
        return []


def find_mount(path, mounts, dev=None):
    """The entry of ``mounts`` holding ``path`` (a real path): the longest mount point
    that contains it, the last mounted when stacked, preferring one whose ``dev`` matches."""
    best = None
    for entry in mounts:
        mount = entry["mount"]
        if path == mount or mount == "/" or path.startswith(mount.rstrip("/") + "/"):
            if best is None or len(mount) > len(best["mount"]) or (
                    len(mount) == len(best["mount"]) and (dev is None or entry["dev"] == dev
                                                          or best["dev"] != dev)):
                best = entry
    return best


def ceil_percent(part, whole):
    """``ceil(part * 100 / whole)`` in integers, as df computes Use% (None for 0/0)."""
    if whole <= 0:
        return None
    return -(-part * 100 // whole)


def filesystem_usage(path, mounts=None):
    """Return the usage of the filesystem holding ``path``, as ``df`` and ``df -i`` show it.

    ``{"path", "mount", "device", "fstype", "total_bytes", "used_bytes", "free_bytes",
    "used_percent", "inodes_total", "inodes_used", "inodes_free", "inodes_used_percent"}``
    where ``free_bytes`` is what non-root users can still write (df's Avail) and
    ``used_percent`` is ``ceil(used * 100 / (used + avail))`` like df's Use%.
    ``inodes_used_percent`` is ``None`` on filesystems without inode counts (btrfs).
    Raises ``OpsError`` when ``path`` does not exist.
    """
    try:
        st = os.stat(path)
        vfs = os.statvfs(path)
    except FileNotFoundError:
        raise OpsError("path %s does not exist; give a path on the filesystem to check" % path)
    except OSError as exc:
        raise OpsError("cannot examine %s: %s" % (path, exc.strerror or exc))
    real = os.path.realpath(path)
    entry = find_mount(real, _read_mountinfo() if mounts is None else mounts, st.st_dev)
    frsize = vfs.f_frsize or vfs.f_bsize
    used_blocks = vfs.f_blocks - vfs.f_bfree
    inodes_used = vfs.f_files - vfs.f_ffree
    return {
        "path": path,
        "mount": entry["mount"] if entry else real,
        "device": entry["device"] if entry else None,
        "fstype": entry["fstype"] if entry else None,
        "total_bytes": vfs.f_blocks * frsize,
        "used_bytes": used_blocks * frsize,
        "free_bytes": vfs.f_bavail * frsize,
        "used_percent": ceil_percent(used_blocks, used_blocks + vfs.f_bavail) or 0,
        "inodes_total": vfs.f_files,
        "inodes_used": inodes_used,
        "inodes_free": vfs.f_ffree,
        "inodes_used_percent": ceil_percent(inodes_used, vfs.f_files) if vfs.f_files else None,
    }


def human_size(num_bytes):
    """Format bytes as ``df -h`` does: powers of 1024, rounded up, one decimal below 10."""
    num_bytes = int(num_bytes)
    units = ("", "K", "M", "G", "T", "P", "E")
    power = 0
    while power < len(units) - 1 and num_bytes >= 1024 ** (power + 1):
        power += 1
    if power == 0:
        return "%d" % num_bytes
    scale = 1024 ** power
    if num_bytes * 10 < 10 * 10 * scale:
        tenths = -(-num_bytes * 10 // scale)
        if tenths < 100:
            return "%d.%d%s" % (tenths // 10, tenths % 10, units[power])
    whole = -(-num_bytes // scale)
    if whole >= 1024 and power < len(units) - 1:
        return "1.0%s" % units[power + 1]
    return "%d%s" % (whole, units[power])


# ---------------------------------------------------------------------------- largest


def scan_largest_dirs(roots, count=20, one_file_system=True, timeout=None, workers=None):
    """Size the trees under ``roots`` like ``du -x`` and keep the ``count`` biggest.

    Returns ``{"largest": [{"path", "bytes"}], "partial", "unreadable": [{"path",
    "error"}], "dirs", "files", "seconds", "workers"}``; ``largest`` is biggest first
    over all roots (each root is one of its own directories, as in du's listing) with
    ``bytes`` as du counts them (allocated blocks, hard links once). ``timeout`` is one
    budget for all roots; past it the result holds what was measured and ``partial`` is
    true. Raises ``OpsError`` for a missing root or one that is not a directory.
    """
    for root in roots:
        _require_directory(root, "largest_under")
    started = time.monotonic()
    rows, unreadable = [], []
    partial = False
    dirs = files = 0
    used_workers = 1
    for root in roots:
        left = None
        if timeout is not None:
            left = timeout - (time.monotonic() - started)
            if left <= 0:
                partial = True
                continue
        tree = walk_tree(root, one_file_system=one_file_system, timeout=left, workers=workers)
        rows.extend(tree.largest(count))
        unreadable.extend(tree.unreadable)
        partial = partial or tree.partial
        dirs += tree.dirs
        files += tree.files
        used_workers = max(used_workers, tree.workers)
    rows.sort(key=lambda row: (row["bytes"], os.fsencode(row["path"])), reverse=True)
    return {"largest": rows[:count], "partial": partial, "unreadable": unreadable,
            "dirs": dirs, "files": files, "seconds": round(time.monotonic() - started, 3),
            "workers": used_workers}


def measure_tree(path, one_file_system=True, timeout=None, workers=None):
    """Measure one tree like ``du -s`` (``-x`` with ``one_file_system``) and count its files.

    Returns ``{"bytes", "files", "dirs", "unreadable": [{"path", "error"}], "partial"}``:
    allocated bytes with hard links once, non-directory entries (each inode once),
    directories including ``path`` itself. Raises ``OpsError`` when ``path`` is missing
    or not a directory.
    """
    _require_directory(path, "path")
    tree = walk_tree(path, one_file_system=one_file_system, timeout=timeout, workers=workers)
    return {"bytes": tree.total_bytes, "files": tree.files, "dirs": tree.dirs,
            "unreadable": tree.unreadable, "partial": tree.partial}


def _require_directory(path, option):
    if not os.path.exists(path):
        raise OpsError("%s: %s does not exist; give an existing directory" % (option, path))
    if not os.path.isdir(path):
        raise OpsError("%s: %s is not a directory; give the directory to scan" % (option, path))


# ---------------------------------------------------------------------------- trend


def read_history(history_file, mount):
    """The samples of ``mount`` in ``history_file`` as ``[(epoch, used_bytes)]``, oldest
    first; malformed lines and other mounts are skipped, a missing file gives ``[]``."""
    if not history_file or not os.path.isfile(history_file):
        return []
    samples = []
    for record in read_jsonl(history_file) or []:
        if not isinstance(record, dict) or record.get("mount") != mount:
            continue
        epoch = epoch_seconds(record.get("ts"))
        used = record.get("used_bytes")
        if epoch is None or isinstance(used, bool) or not isinstance(used, (int, float)):
            continue
        samples.append((epoch, used))
    samples.sort()
    return samples


def compute_trend(samples, usage, warn_percent, crit_percent):
    """Fit growth per day over ``samples`` (``[(epoch, used_bytes)]``) by least squares.

    ``usage`` is the current ``filesystem_usage``. Returns ``None`` without at least two
    samples spanning a day, else ``{"growth_bytes_per_day", "samples", "span_days",
    "days_until_warn", "days_until_crit", "days_until_full"}``: days from now at the
    fitted rate (0 when already there, ``None`` when not growing).
    """
    if len(samples) < 2:
        return None
    first = samples[0][0]
    xs = [(sample[0] - first) / 86400.0 for sample in samples]
    ys = [float(sample[1]) for sample in samples]
    span = max(xs) - min(xs)
    if span < 1.0:
        return None
    mean_x = sum(xs) / len(xs)
    mean_y = sum(ys) / len(ys)
    var_x = sum((x - mean_x) ** 2 for x in xs)
    slope = sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys)) / var_x
    used = usage["used_bytes"]
    visible = used + usage["free_bytes"]  # df's Use% base: used + available

    def days_until(limit_bytes):
        if used >= limit_bytes:
            return 0.0
        if slope <= 0:
            return None
        return round((limit_bytes - used) / slope, 1)

    return {
        "growth_bytes_per_day": int(round(slope)),
        "samples": len(samples),
        "span_days": round(span, 2),
        "days_until_warn": days_until(visible * warn_percent / 100.0),
        "days_until_crit": days_until(visible * crit_percent / 100.0),
        "days_until_full": days_until(visible),
    }


def history_sample(usage, now=None):
    """The history line for today's sample: ``{"ts", "mount", "used_bytes", "total_bytes"}``."""
    return {"ts": iso_z(time.time() if now is None else now), "mount": usage["mount"],
            "used_bytes": usage["used_bytes"], "total_bytes": usage["total_bytes"]}


# ---------------------------------------------------------------------------- message


def format_disk_detail(filesystems, warn_percent, crit_percent,
                       inode_warn_percent=None, inode_crit_percent=None):
    """Return ``(status, detail)`` for the worst of ``filesystems``.

    ``detail`` is what follows ``STATUS:`` in the alert line: ``72% used (free 14G,
    threshold 70%)`` (`` on MOUNT`` after ``used`` when the mount is not ``/`` or several
    mounts were checked); a filesystem that is worse by inodes reads ``inodes 91% used
    (free 1200 inodes, threshold 70%)``; other filesystems that are not ok follow as
    ``; /data CRITICAL 90%``.
    """
    if not filesystems:
        return "ok", "nothing checked"
    rank = {s: i for i, s in enumerate(STATUSES)}
    ordered = sorted(filesystems, key=lambda fs: (-rank[fs["status"]], -fs["used_percent"]))
    head = ordered[0]
    status = head["status"]
    space_status = classify(head["used_percent"], warn_percent, crit_percent)
    threshold = crit_percent if status == "critical" else warn_percent
    several = len({fs["mount"] for fs in filesystems}) > 1
    where = " on %s" % head["mount"] if (several or head["mount"] != "/") else ""
    if rank[space_status] >= rank[status] or inode_warn_percent is None:
        detail = "%d%% used%s (free %s, threshold %d%%)" % (
            head["used_percent"], where, human_size(head["free_bytes"]), threshold)
    else:
        inode_threshold = inode_crit_percent if status == "critical" else inode_warn_percent
        detail = "inodes %d%% used%s (free %d inodes, threshold %d%%)" % (
            head["inodes_used_percent"], where, head["inodes_free"], inode_threshold)
    seen = {head["mount"]}
    for fs in ordered[1:]:
        if fs["status"] == "ok" or fs["mount"] in seen:
            continue
        seen.add(fs["mount"])
        detail += "; %s %s %d%%" % (fs["mount"], fs["status"].upper(), fs["used_percent"])
    return status, detail


def format_disk_message(host, filesystems, warn_percent, crit_percent,
                        inode_warn_percent=None, inode_crit_percent=None):
    """The one-line summary in the runbook's alert format.

    ``⚠️ web1 disk WARNING: 72% used (free 14G, threshold 70%)``: icon, host, ``disk``,
    the worst status, then ``format_disk_detail``.
    """
    status, detail = format_disk_detail(filesystems, warn_percent, crit_percent,
                                        inode_warn_percent, inode_crit_percent)
    return "%s %s disk %s: %s" % (_ICONS[status], host, status.upper(), detail)


# ---------------------------------------------------------------------------- config

# The options, declared once (argument-spec style, see ``options``): the disk_check module's
# argument_spec and the disk-check job's config check are built from this table, and a unit
# test holds the disk_monitor role's variables to it. The module alone fails on a status and
# names the host; the job alone alerts, adds Docker's usage and writes metrics.
OPTIONS = {
    "paths": {"type": "list", "elements": "path", "default": ["/"]},
    "warn_percent": {"type": "int", "default": 70},
    "crit_percent": {"type": "int", "default": 85},
    "inode_warn_percent": {"type": "int", "default": 70},
    "inode_crit_percent": {"type": "int", "default": 85},
    "largest_under": {"type": "list", "elements": "path", "default": []},
    "largest_count": {"type": "int", "default": 20},
    "one_file_system": {"type": "bool", "default": True},
    "scan_timeout": {"type": "float"},
    "history_file": {"type": "path"},
    "fail_on": {"type": "str", "default": "never", "choices": list(FAIL_ON), "only": "module"},
    "host_label": {"type": "str", "only": "module"},
    "alert": {"type": "bool", "default": True, "only": "cli"},
    "alert_largest": {"type": "int", "default": 5, "only": "cli"},
    "docker_usage": {"type": "bool", "default": True, "only": "cli"},
    "textfile_dir": {"type": "path", "default": "", "only": "cli"},
}
CONFIG_DEFAULTS = config_defaults(OPTIONS)


def validate_config(data, source="<config>"):
    """Check a disk-check job config (``/etc/runbook-ops/disk-monitor.json``).

    Returns the settings with defaults filled in (``OPTIONS``; ``history_file`` ``None``
    means ``<state_dir>/disk-history.jsonl``; ``textfile_dir`` ``""`` writes no metrics).
    Keys starting with ``_`` (the managed-file comment) are ignored. Raises ``OpsError``
    naming the file and the key for unknown keys, wrong types and impossible thresholds.
    """
    config = check_config(OPTIONS, data, source)

    def fail(key, wanted):
        raise OpsError("%s: %s must be %s, got %r" % (source, key, wanted, config[key]))

    if not config["paths"]:
        fail("paths", "a non-empty list of paths")
    for key, low in (("largest_count", 1), ("alert_largest", 0)):
        if config[key] < low:
            fail(key, "at least %d" % low)
    if config["scan_timeout"] is not None and config["scan_timeout"] <= 0:
        fail("scan_timeout", "a positive number of seconds or null")
    if config["history_file"] == "":
        fail("history_file", "a path or null")
    if config["textfile_dir"] and not config["textfile_dir"].startswith("/"):
        fail("textfile_dir", "an absolute directory path or \"\" (no metrics)")
    try:
        validate_thresholds(config["warn_percent"], config["crit_percent"])
        validate_thresholds(config["inode_warn_percent"], config["inode_crit_percent"],
                            "inode percent")
    except OpsError as exc:
        raise OpsError("%s: %s" % (source, exc.message))
    return config


# ---------------------------------------------------------------------------- check


def check_disks(paths=("/",), warn_percent=70, crit_percent=85, inode_warn_percent=70,
                inode_crit_percent=85, largest_under=(), largest_count=20,
                one_file_system=True, scan_timeout=None, fail_on="never",
                history_file=DEFAULT_HISTORY_FILE, host_label=None, now=None, workers=None):
    """Run the whole disk check and return the module's result (see its RETURN).

    ``{"changed": False, "status", "filesystems", "largest", "message"}`` plus ``scan``
    when ``largest_under`` is given and ``trend`` (per mount) when the history allows one.
    The caller decides what ``fail_on`` means with ``should_fail(result["status"], fail_on)``.
    Raises ``OpsError`` for bad input: thresholds, a missing path, a scan root that is
    not a directory.
    """
    validate_thresholds(warn_percent, crit_percent)
    validate_thresholds(inode_warn_percent, inode_crit_percent, "inode percent")
    if fail_on not in FAIL_ON:
        raise OpsError("fail_on must be one of %s, got %r" % (", ".join(FAIL_ON), fail_on))
    paths = list(paths or [])
    if not paths:
        raise OpsError("paths is empty; give at least one path (default /)")
    if isinstance(largest_count, bool) or not isinstance(largest_count, int) or largest_count < 1:
        raise OpsError("largest_count must be a whole number of at least 1, got %r" % (largest_count,))
    if scan_timeout is not None and not (isinstance(scan_timeout, (int, float)) and scan_timeout > 0):
        raise OpsError("scan_timeout must be a positive number of seconds, got %r" % (scan_timeout,))
    largest_under = list(largest_under or [])
    for root in largest_under:
        _require_directory(root, "largest_under")
    mounts = _read_mountinfo()
    filesystems = []
    for path in paths:
        usage = filesystem_usage(path, mounts)
        space = classify(usage["used_percent"], warn_percent, crit_percent)
        inodes = classify(usage["inodes_used_percent"], inode_warn_percent, inode_crit_percent)
        usage["status"] = worst((space, inodes))
        filesystems.append(usage)
    status = worst(fs["status"] for fs in filesystems)
    host = host_label or socket.gethostname()
    result = {
        "changed": False,
        "status": status,
        "filesystems": filesystems,
        "largest": [],
        "message": format_disk_message(host, filesystems, warn_percent, crit_percent,
                                       inode_warn_percent, inode_crit_percent),
    }
    if largest_under:
        scan = scan_largest_dirs(largest_under, count=largest_count,
                                 one_file_system=one_file_system, timeout=scan_timeout,
                                 workers=workers)
        result["largest"] = scan.pop("largest")
        result["scan"] = scan
    trend = {}
    now = time.time() if now is None else now
    for fs in filesystems:
        if fs["mount"] in trend:
            continue
        samples = [s for s in read_history(history_file, fs["mount"]) if s[0] <= now]
        fitted = compute_trend(samples, fs, warn_percent, crit_percent)
        if fitted is not None:
            trend[fs["mount"]] = fitted
    if trend:
        result["trend"] = trend
    return result

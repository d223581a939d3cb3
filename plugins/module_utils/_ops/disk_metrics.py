# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The disk check's figures for node_exporter's textfile collector.

``format_disk_metrics(result, config, now)`` turns a ``disk.check_disks`` result into the
Prometheus text exposition format (``# HELP``/``# TYPE`` per family, escaped label
values); ``write_textfile(directory, text)`` puts it in ``<directory>/runbook_ops_disk.prom``
through a temp file (no ``.prom`` suffix, so the collector never reads half a file) and a
rename in the same directory. A write that fails is reported as a string, never raised:
metrics are a convenience, the alert is the job.
"""

from __future__ import annotations

import os

from .state import replace_file_atomic

TEXTFILE_NAME = "runbook_ops_disk.prom"
STATUS_CODES = {"ok": 0, "warning": 1, "critical": 2}


def escape_label_value(value) -> str:
    """A label value as the exposition format wants it: ``\\``, ``"`` and newline escaped.

    Bytes that are not UTF-8 (a path with ``surrogateescape`` characters) become U+FFFD.
    """
    text = str(value).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _format_value(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(float(value))


def family(name, kind, help_text, samples):
    """Lines of one metric family; ``samples`` is ``[(labels_dict, value)]``."""
    lines = ["# HELP %s %s" % (name, help_text), "# TYPE %s %s" % (name, kind)]
    for labels, value in samples:
        if labels:
            rendered = ",".join('%s="%s"' % (key, escape_label_value(labels[key]))
                                for key in sorted(labels))
            lines.append("%s{%s} %s" % (name, rendered, _format_value(value)))
        else:
            lines.append("%s %s" % (name, _format_value(value)))
    return lines


def format_disk_metrics(result, config, now) -> str:
    """The exposition text for one ``check_disks`` ``result`` checked with ``config``.

    Families (gauges, prefix ``runbook_ops_disk_``): ``used_percent``, ``used_bytes``,
    ``free_bytes``, ``size_bytes``, ``inodes_used_percent`` (filesystems with inode
    counts), ``status`` (0 ok, 1 warning, 2 critical) per ``mount``;
    ``threshold_percent`` per ``level``; ``largest_dir_bytes`` per ``path``;
    ``growth_bytes_per_day`` per ``mount`` when there is a trend; ``scan_partial``;
    ``last_run_timestamp_seconds``. Each mount appears once.
    """
    filesystems = []
    seen = set()
    for fs in result.get("filesystems", []):
        if fs["mount"] not in seen:
            seen.add(fs["mount"])
            filesystems.append(fs)
    per_mount = [
        ("used_percent", "Used space as df's Use% (used / (used + available)).", "used_percent"),
        ("used_bytes", "Used bytes of the filesystem.", "used_bytes"),
        ("free_bytes", "Bytes available to non-root users (df's Avail).", "free_bytes"),
        ("size_bytes", "Size of the filesystem in bytes.", "total_bytes"),
    ]
    lines = []
    for suffix, help_text, key in per_mount:
        lines += family("runbook_ops_disk_" + suffix, "gauge", help_text,
                        [({"mount": fs["mount"]}, fs[key]) for fs in filesystems])
    inodes = [({"mount": fs["mount"]}, fs["inodes_used_percent"]) for fs in filesystems
              if fs.get("inodes_used_percent") is not None]
    if inodes:
        lines += family("runbook_ops_disk_inodes_used_percent", "gauge",
                        "Used inodes in percent (df -i's IUse%).", inodes)
    lines += family("runbook_ops_disk_status", "gauge",
                    "Result of the check: 0 ok, 1 warning, 2 critical.",
                    [({"mount": fs["mount"]}, STATUS_CODES[fs["status"]]) for fs in filesystems])
    lines += family("runbook_ops_disk_threshold_percent", "gauge",
                    "Used-space thresholds of the check.",
                    [({"level": "warning"}, config["warn_percent"]),
                     ({"level": "critical"}, config["crit_percent"])])
    largest = result.get("largest") or []
    if largest:
        lines += family("runbook_ops_disk_largest_dir_bytes", "gauge",
                        "Largest directories under the scan roots, as du -x counts them.",
                        [({"path": row["path"]}, row["bytes"]) for row in largest])
    trend = result.get("trend") or {}
    if trend:
        lines += family("runbook_ops_disk_growth_bytes_per_day", "gauge",
                        "Growth fitted over the daily samples of the history.",
                        [({"mount": mount}, trend[mount]["growth_bytes_per_day"])
                         for mount in sorted(trend)])
    if "scan" in result:
        lines += family("runbook_ops_disk_scan_partial", "gauge",
                        "1 when the directory scan stopped at scan_timeout.",
                        [({}, bool(result["scan"].get("partial")))])
    lines += family("runbook_ops_disk_last_run_timestamp_seconds", "gauge",
                    "When runbook-ops disk-check last ran (seconds since the epoch).",
                    [({}, float(now))])
    return "\n".join(lines) + "\n"


def write_textfile(directory, text, name=TEXTFILE_NAME):
    """Write ``text`` to ``<directory>/<name>`` atomically; return ``None`` or the problem.

    The temp file lives in ``directory`` (same filesystem, so the rename is atomic) and
    does not end in ``.prom``. The directory is created when missing. The result is
    ``"cannot write <path>: <reason>"`` on any ``OSError`` (full disk, read-only, ...).
    """
    path = os.path.join(directory, name)
    try:
        replace_file_atomic(path, text.encode("utf-8"), 0o644)
        return None
    except OSError as exc:
        return "cannot write %s: %s" % (path, exc.strerror or exc)

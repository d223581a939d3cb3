# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``runbook-ops disk-check``: the daily disk check of the runbook (cron, 09:00).

    runbook-ops disk-check --config /etc/runbook-ops/disk-monitor.json [--validate] [--json] [--no-alert]

1. checks the filesystems of ``paths`` (``disk.check_disks``: df's Use%, inodes, the
   largest directories under ``largest_under``, the trend from the history);
2. appends today's sample per mount to ``<state_dir>/disk-history.jsonl`` (one line per
   mount and UTC day; a full disk only skips the sample);
3. alerts per mount through ``alerts.notify(runtime, "disk:<mount>", level, text,
   subject="disk")``, the runbook's ``⚠️ HOST disk WARNING: 72% used (free 14G,
   threshold 70%)``: WARNING/CRITICAL with the cooldown of the runtime (per mount and
   level), a rise at once, a recovery once back to ok. When not ok, the text carries the
   largest directories (``alert_largest``, default 5) and, on the mount holding Docker's
   data root, the ``docker system df`` breakdown with the container logs
   (``docker_usage``; no engine, no section);
4. with ``textfile_dir`` set, writes the figures for node_exporter's textfile collector
   to ``<textfile_dir>/runbook_ops_disk.prom`` (atomic rename; a failure is reported).

A full disk never stops the alert: the history sample, the alert state and the metrics
are skipped when they cannot be written (the cooldown is then not recorded, so the next
run alerts again), the message still goes out.

Exit status: 0 ran (alerts handled, whatever the disk's state: a full disk is reported by
its alert, not by failing the job), 1 an alert could not be delivered or the scan was cut
by ``scan_timeout``, 2 bad input or config.
"""

from __future__ import annotations

import os
import time

from . import disk, disk_metrics, docker_usage
from .cli_output import add_config_arguments, emit, read_config
from .state import append_jsonl
from .timestamps import iso_z

DEFAULT_CONFIG_PATH = "/etc/runbook-ops/disk-monitor.json"
EXIT_OK = 0
EXIT_PROBLEM = 1


def add_parser(subparsers) -> None:
    """Register ``disk-check``."""
    check = subparsers.add_parser(
        "disk-check", help="check disk usage, record the daily sample, alert on thresholds",
        description="Check the filesystems of the configured paths as df shows them, list "
                    "the largest directories as du counts them, record the daily sample "
                    "for the trend and alert (WARNING/CRITICAL, recovery) per mount.")
    add_config_arguments(check, DEFAULT_CONFIG_PATH, "disk check settings")
    check.add_argument("--no-alert", action="store_true", help="check and record, do not alert")
    check.set_defaults(func=disk_check_command)


def run_disk_check(config, runtime, alert=True, now=None, notify=None, docker=None):
    """Check, record and alert once; return ``{"result", "samples", "alerts", "docker",
    "metrics"}``.

    ``samples`` lists ``{"mount", "recorded"}`` (``recorded`` false when today's sample
    exists or the state disk is full); ``alerts`` holds ``notify``'s answer per mount;
    ``docker`` is ``docker_usage.docker_usage()`` when an alert needed it (``None``
    otherwise or without an engine); ``metrics`` is ``{"path", "error"}`` when
    ``textfile_dir`` is set. ``docker`` (the argument) replaces ``docker_usage`` in tests.
    """
    history_file = config["history_file"] or os.path.join(runtime["state_dir"],
                                                          "disk-history.jsonl")
    result = disk.check_disks(
        paths=config["paths"], warn_percent=config["warn_percent"],
        crit_percent=config["crit_percent"], inode_warn_percent=config["inode_warn_percent"],
        inode_crit_percent=config["inode_crit_percent"], largest_under=config["largest_under"],
        largest_count=config["largest_count"], one_file_system=config["one_file_system"],
        scan_timeout=config["scan_timeout"], history_file=history_file,
        host_label=runtime.get("host_label"), now=now)
    samples = []
    firsts = {}  # mount -> its first filesystem entry
    for fs in result["filesystems"]:
        if fs["mount"] in firsts:
            continue
        firsts[fs["mount"]] = fs
        sample = disk.history_sample(fs, now=now)
        recorded = False
        history = disk.read_history(history_file, fs["mount"])
        if not history or iso_z(history[-1][0])[:10] != sample["ts"][:10]:
            recorded = append_jsonl(history_file, sample)
        samples.append({"mount": fs["mount"], "recorded": recorded})
    alerts = []
    usage = None
    if alert:
        if notify is None:
            from .alerts import notify
        docker = docker or docker_usage.docker_usage
        asked = False
        for mount, fs in firsts.items():
            level, text = disk.format_disk_detail(
                [fs], config["warn_percent"], config["crit_percent"],
                config["inode_warn_percent"], config["inode_crit_percent"])
            if level != "ok" and result["largest"] and config["alert_largest"]:
                text += "\nLargest directories:\n" + "\n".join(
                    "%s %s" % (disk.human_size(row["bytes"]), row["path"])
                    for row in result["largest"][:config["alert_largest"]])
            if level != "ok" and config["docker_usage"]:
                if not asked:
                    usage, asked = docker(), True
                if usage and docker_usage.on_mount(usage.get("data_root"), mount):
                    text += "\n" + docker_usage.format_docker_usage(usage)
            outcome = notify(runtime, "disk:%s" % mount, level, text, subject="disk")
            alerts.append(outcome)
    summary = {"result": result, "samples": samples, "alerts": alerts, "docker": usage}
    if config["textfile_dir"]:
        text = disk_metrics.format_disk_metrics(result, config,
                                                time.time() if now is None else now)
        summary["metrics"] = {
            "path": os.path.join(config["textfile_dir"], disk_metrics.TEXTFILE_NAME),
            "error": disk_metrics.write_textfile(config["textfile_dir"], text)}
    return summary


def disk_check_command(args, runtime) -> int:
    """``disk-check``: run once, print, exit as documented in the module docstring."""
    config = disk.validate_config(read_config(args.config), args.config)
    if args.validate:
        emit(args, {"valid": True, "config": args.config},
             ["disk check config %s is valid: %d path(s), %d scan root(s)" % (
                 args.config, len(config["paths"]), len(config["largest_under"]))])
        return EXIT_OK
    summary = run_disk_check(config, runtime, alert=config["alert"] and not args.no_alert)
    result = summary["result"]
    lines = [result["message"]]
    for fs in result["filesystems"]:
        lines.append("  %-20s %3d%% used, %s free, inodes %s%%, %s" % (
            fs["mount"], fs["used_percent"], disk.human_size(fs["free_bytes"]),
            "-" if fs["inodes_used_percent"] is None else fs["inodes_used_percent"],
            fs["status"]))
    for mount, trend in sorted((result.get("trend") or {}).items()):
        lines.append("  trend %s: %s/day, warn in %s d, crit in %s d, full in %s d" % (
            mount, disk.human_size(max(0, trend["growth_bytes_per_day"])),
            trend["days_until_warn"], trend["days_until_crit"], trend["days_until_full"]))
    for row in result["largest"]:
        lines.append("  %8s  %s" % (disk.human_size(row["bytes"]), row["path"]))
    scan = result.get("scan") or {}
    for entry in scan.get("unreadable", []):
        lines.append("  unreadable: %s (%s)" % (entry["path"], entry["error"]))
    if scan.get("partial"):
        lines.append("  scan stopped at scan_timeout: sizes are lower bounds")
    for outcome in summary["alerts"]:
        lines.append("  alert %s: %s%s%s" % (
            outcome.get("key"), outcome.get("reason"),
            " (error: %s)" % outcome["error"] if outcome.get("error") else "",
            "" if outcome.get("state_saved", True) else
            " (alert state not saved: the cooldown starts again next run)"))
    if summary["docker"]:
        lines += ["  " + line for line in
                  docker_usage.format_docker_usage(summary["docker"]).splitlines()]
    if summary["samples"] and not any(s["recorded"] for s in summary["samples"]):
        lines.append("  history: no new sample (one a day, or the state disk is full)")
    metrics = summary.get("metrics")
    if metrics:
        lines.append("  metrics: %s" % (("NOT written, %s" % metrics["error"])
                                        if metrics["error"] else "written to " + metrics["path"]))
    emit(args, summary, lines)
    undelivered = [a for a in summary["alerts"] if a.get("error")]
    return EXIT_PROBLEM if undelivered or scan.get("partial") else EXIT_OK

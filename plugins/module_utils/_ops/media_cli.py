# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``runbook-ops`` subcommands for media growth and the photo-cleanup activation.

    runbook-ops media-baseline --config /etc/runbook-ops/media-baseline.json [--validate] [--json]
        measure the media directory, append a baseline line, print a human line
    runbook-ops media-gate --config /etc/runbook-ops/media-gate.json [--validate] [--json] [--no-alert]
        evaluate the activation triggers; alert (key media-cleanup) when they fire
    runbook-ops media-cleanup --config /etc/runbook-ops/meal-photos-cleanup.json [--validate] [--json]
        run the application's cleanup command once (the weekly cron job), only while the
        activation state is active for the report the job was approved for
    runbook-ops media-cleanup-reminder --config /etc/runbook-ops/meal-photos-cleanup-review.json [--validate] [--json]
        while a host whose weekly job was removed waits in review, repeat the report's alert
        (the weekly job in its place; the alert cooldown applies)

Exit status: 0 ran, 1 the job failed (partial measurement, baseline not written,
cleanup command failed, cleanup not run because its approval no longer holds, reminder not
delivered), 2 bad input or config.
"""

from __future__ import annotations

import os
import sys

from .cli_output import add_config_arguments, emit, read_config
from . import media
from .units import plural

ALERT_KEY = "media-cleanup"


def add_parser(subparsers):
    """Register the media subcommands on the ``runbook-ops`` argparse ``subparsers``."""
    for name, text, check, command in (
            ("media-baseline", "record the media directory's size and file count",
             media.check_baseline_config, cmd_media_baseline),
            ("media-gate", "evaluate the photo-cleanup activation triggers",
             media.check_gate_config, cmd_media_gate),
            ("media-cleanup", "run the application's media cleanup command once",
             media.check_cleanup_config, cmd_media_cleanup),
            ("media-cleanup-reminder", "remind the team that a disarmed media cleanup waits for approval",
             media.check_reminder_config, cmd_media_cleanup_reminder)):
        parser = subparsers.add_parser(name, help=text)
        add_config_arguments(parser, None, "the job's settings")
        if command is cmd_media_gate:
            parser.add_argument("--no-alert", action="store_true",
                                help="print the result without alerting")
        parser.set_defaults(func=_with_config(check, command))


def _with_config(check, command):
    """The subcommand: ``command(args, runtime, config)`` with the job's config read and
    checked by ``check``; with ``--validate`` only the check, and ``FILE: ok``."""
    def run(args, runtime):
        config = check(read_config(args.config), where=args.config)
        if args.validate:
            sys.stdout.write("%s: ok\n" % args.config)
            return 0
        return command(args, runtime, config)
    return run


def cmd_media_baseline(args, runtime, config):
    """Measure, append the baseline line, print it; 1 when partial or not written."""
    result = media.record_baseline(config["media_path"], config["baseline_file"],
                                   timeout=config["timeout_seconds"])
    sample, growth = result["sample"], result["growth"]
    rate = growth.get("bytes_per_week")
    text = "%s %s %s (%s), %s, growth %s" % (
        sample["ts"], sample["path"], media.format_size(sample["bytes"]),
        plural(sample["bytes"], "byte"), plural(sample["files"], "file"), "%s/week" % media.format_size(rate) if rate is not None
        else "n/a (%s)" % growth.get("detail", ""))
    if result["partial"]:
        text += "; PARTIAL: %s unreadable" % plural(result["unreadable"], "entry", "entries")
    if not result["written"]:
        text += "; NOT WRITTEN to %s" % config["baseline_file"]
    emit(args, result, text)
    return 1 if result["partial"] or not result["written"] else 0


def cmd_media_gate(args, runtime, config):
    """Evaluate the gate, print it, alert warning when it fires (ok: recovery)."""
    from .alerts import notify

    if not config.get("disk_history_file"):
        config["disk_history_file"] = os.path.join(runtime["state_dir"], "disk-history.jsonl")
    result = media.evaluate_gate(**config)
    text = media.summarize_gate(result)
    if not args.no_alert:
        notify(runtime, ALERT_KEY, "warning" if result["activate"] else "ok", text)
    emit(args, result, text)
    return 0


def cmd_media_cleanup(args, runtime, config):
    """Run the cleanup command once, print its output and the size change."""
    result = media.run_cleanup(config)
    if result["refused"]:
        emit(args, result, "media cleanup NOT run: %s" % result["refused"])
        return 1
    lines = [(result["stdout"] or "").rstrip(), (result["stderr"] or "").rstrip()]
    if result["before_bytes"] is not None:
        lines.append("media %s -> %s" % (
            media.format_size(result["before_bytes"]), media.format_size(result["after_bytes"])))
    if result["timed_out"]:
        lines.append("cleanup command timed out after %s s" % config["timeout_seconds"])
    elif result["rc"] != 0:
        lines.append("cleanup command exited with status %d" % result["rc"])
    emit(args, result, "\n".join(line for line in lines if line))
    return 0 if result["rc"] == 0 and not result["timed_out"] else 1


def cmd_media_cleanup_reminder(args, runtime, config):
    """Repeat the waiting report's alert; 1 when it could not be delivered."""
    from .alerts import notify

    due = media.review_reminder(config)
    if due is None:
        emit(args, {"reminded": False}, "nothing to remind: the media cleanup is not waiting in review "
             "after a disarm (%s)" % config["state_file"])
        return 0
    result = notify(runtime, due["key"], "warning", due["text"])
    result["reminded"] = bool(result.get("sent"))
    if result.get("error"):
        emit(args, result, "reminder NOT delivered (%s): %s" % (result["error"], due["text"]))
        return 1
    emit(args, result, "reminder %s: %s" % (
        "sent" if result.get("sent") else "not sent (%s)" % result.get("reason", ""), due["text"]))
    return 0

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""``runbook-ops backup ACTION --config /etc/runbook-ops/backup.json``.

Actions:

- ``run``: hooks, backup, size comparison, retention (``forget --prune`` only after a
  successful backup). Exit 1 when the backup failed: the cron wrapper
  (``runbook-ops run --job backup``) alerts with the output tail. A snapshot far
  smaller than the previous one alerts ``backup:<job>:size`` (warning) itself.
- ``check``: ``restic check --read-data-subset`` (archive engine: verify the newest
  file). Exit 1 on failure (the wrapper alerts).
- ``freshness``: alerts ``backup:<job>:freshness`` (critical) when the newest snapshot
  is older than ``freshness_max_age_hours`` or there is none, recovery when fresh again;
  having none is a warning until the first scheduled run has had its chance
  (``first_run_pending``);
  a separate cron job, so a dead backup job is noticed. Exit 0 once the alert was
  handled, 1 when it could not be delivered.
- ``init``: initialise the repository when it does not exist (prints ``created`` or
  ``exists``); ``run`` does the same before its first backup.
- ``snapshots``: list this host's snapshots of this job.
- ``restore``: into ``--target DIR`` (default: a fresh scratch directory, printed), or
  ``--in-place --confirm-overwrite``: stop compose services, move aside into a dated
  quarantine what the snapshot does not have or what is in restic's way (never delete;
  excluded paths untouched), restore, start, health. ``--in-place --dry-run`` shows what
  would be replaced and what would be moved aside, and needs no confirmation.

``--validate`` only checks the config file (the role's ``validate:``); ``--json`` prints
results as JSON. Nothing printed contains the password or the repository location.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from . import backup
from .cli_output import add_config_arguments, emit
from .errors import OpsError
from .runtime import LOCKED_JOB_ENV
from .timestamps import format_timestamp
from .units import format_bytes

DEFAULT_CONFIG = "/etc/runbook-ops/backup.json"
ACTIONS = ("init", "run", "check", "freshness", "snapshots", "restore")


def add_parser(subparsers) -> None:
    """Register the ``backup`` subcommand."""
    parser = subparsers.add_parser(
        "backup", help="restic/archive backups, checks, freshness alerts and restores")
    parser.add_argument("action", choices=ACTIONS, help="what to do")
    add_config_arguments(parser, DEFAULT_CONFIG, "backup settings")
    parser.add_argument("--dry-run", action="store_true", help="show what would be done")
    parser.add_argument("--time", dest="when", metavar="'YYYY-MM-DD HH:MM:SS'",
                        help="run: record the snapshot with this time (restore drills)")
    parser.add_argument("--snapshot", default="latest", metavar="ID",
                        help="restore: snapshot id (default: latest of this host)")
    parser.add_argument("--target", metavar="DIR",
                        help="restore: a new directory to restore into")
    parser.add_argument("--in-place", action="store_true",
                        help="restore: overwrite the original paths (needs --confirm-overwrite)")
    parser.add_argument("--confirm-overwrite", action="store_true",
                        help="restore: confirm that --in-place may overwrite live data")
    parser.set_defaults(func=backup_command)


class Interrupted(OpsError):
    """SIGTERM or SIGINT arrived: raised where the action is, so its failure path runs
    (a restore says what it left where; the run alerts and logs to syslog)."""


def _interrupt(signum, _frame):
    raise Interrupted("stopped by %s" % signal.Signals(signum).name)


def backup_command(args, runtime) -> int:
    """Load the config (exit 2 when bad), then run the action."""
    config = backup.load_config(args.config)
    if not config["host_label"]:
        config["host_label"] = runtime["host_label"]
    if args.validate:
        emit(args, {"valid": True, "config": args.config},
             "backup config %s is valid" % args.config)
        return 0
    if config["engine"] == "restic":
        config["machine_tag"] = backup.machine_tag(runtime["state_dir"])
    handler = {"init": _init, "run": _run, "check": _check, "freshness": _freshness,
               "snapshots": _snapshots, "restore": _restore}[args.action]
    previous = {signum: signal.signal(signum, _interrupt)
                for signum in (signal.SIGTERM, signal.SIGINT)}
    try:
        return handler(args, config, runtime)
    except OpsError as exc:
        # Failed hooks, an unreachable repository, a failed restore: the job failed.
        for signum in previous:
            signal.signal(signum, signal.SIG_IGN)  # the failure path finishes
        _report_failure(args, config, runtime, exc)
        return 1
    finally:
        for signum, handler_before in previous.items():
            signal.signal(signum, handler_before)


def _report_failure(args, config, runtime, exc):
    """Print the failure; an interrupted run or a failed restore also alerts
    ``backup:<job>:<action>`` and goes to syslog (no cron wrapper reports them)."""
    emit(args, dict(exc.details, ok=False, error=exc.message), None)
    text = "runbook-ops: backup %s of job %s failed: %s" % (
        args.action, config["job"], exc.message)
    sys.stderr.write(text + "\n")
    if isinstance(exc, Interrupted) or args.action == "restore":
        import syslog
        syslog.openlog("runbook-ops")
        syslog.syslog(syslog.LOG_ERR, text)
        _notify(runtime, "backup:%s:%s" % (config["job"], args.action), "critical", text[13:])


def _init(args, config, runtime) -> int:
    if config["engine"] == "archive":
        emit(args, {"repository": "n/a"}, "archive engine: no repository to initialise")
        return 0
    state = backup.ensure_repository(config, dry_run=args.dry_run)
    if not args.dry_run:
        backup.check_repository(config, runtime["state_dir"])  # records its id
    emit(args, {"repository": state}, "repository %s" % state)
    return 0


def _run(args, config, runtime) -> int:
    with contextlib.ExitStack() as held:
        if not args.dry_run and os.environ.get(LOCKED_JOB_ENV) != config["job"]:  # run by hand, not by the wrapper
            held.callback(_job_lock(config, runtime, "backup run").close)
        result = backup.run_backup(config, when=args.when, dry_run=args.dry_run,
                                   state_dir=runtime["state_dir"])
    job = config["job"]
    if result.get("size_drop"):
        drop = result["size_drop"]
        text = ("backup %s: the new snapshot is %.0f%% smaller than the previous one "
                "(%s -> %s); nothing was forgotten; check that no source went missing"
                % (job, drop["drop_percent"], format_bytes(drop["previous_bytes"]),
                   format_bytes(drop["current_bytes"])))
        result["alert"] = _notify(runtime, "backup:%s:size" % job, "warning", text)
    elif result.get("ok") and not args.dry_run:
        result["alert"] = _notify(runtime, "backup:%s:size" % job, "ok",
                                  "backup %s: snapshot size back to normal" % job)
    if result["ok"] and not args.dry_run:
        result["retention_alert"] = _retention_alert(runtime, job, result.get("forget") or {})
        if result.get("other_machines"):
            result["host_label_alert"] = _notify(
                runtime, "backup:%s:host-label" % job, "warning",
                "backup %s: %d snapshots of this job under host label %s come from another "
                "machine: two hosts share the label; each keeps to its own snapshots (machine "
                "tag), but give each host its own label"
                % (job, result["other_machines"], config["host_label"]))
    if result["ok"]:
        summary = result.get("summary") or {}
        forget = result.get("forget") or {}
        text = "backup %s %s: %d paths" % (job, "planned" if args.dry_run else "done",
                                           len(result["paths"]))
        if result.get("snapshot_id"):
            text += ", snapshot %s, %s processed, %s added, kept %d, removed %d" % (
                result["snapshot_id"], format_bytes(summary.get("total_bytes_processed", 0)),
                format_bytes(summary.get("data_added", 0)), len(forget.get("kept", [])),
                len(forget.get("removed", [])))
        if result.get("file"):
            text += ", %s (%s)" % (result["file"], format_bytes(result.get("size_bytes", 0)))
        emit(args, result, text)
        return 0
    emit(args, result, None)
    sys.stderr.write("runbook-ops: backup %s FAILED: %s; nothing was pruned\n"
                     % (job, result.get("error")))
    return 1


def _retention_alert(runtime, job, forget):
    """Retention's own alert ``backup:<job>:retention``: a failed forget/prune is not a
    failed backup (the snapshot was made), but old snapshots pile up until it is fixed."""
    key = "backup:%s:retention" % job
    if forget.get("error"):
        sys.stderr.write("runbook-ops: backup %s: retention FAILED: %s\n" % (job, forget["error"]))
        return _notify(runtime, key, "critical",
                       "backup %s: the snapshot was made, but retention failed: %s; no "
                       "snapshot was forgotten this run" % (job, forget["error"]))
    if "removed" in forget:
        return _notify(runtime, key, "ok", "backup %s: retention works again" % job)
    return None


def _check(args, config, runtime) -> int:
    result = backup.run_check(config)
    if result["ok"]:
        emit(args, result, "backup %s: repository check passed (%s of the data read)"
             % (config["job"], result.get("subset", "all")))
        return 0
    emit(args, result, None)
    sys.stderr.write("runbook-ops: backup %s check FAILED: %s\n"
                     % (config["job"], result.get("error")))
    return 1


def _freshness(args, config, runtime) -> int:
    key = "backup:%s:freshness" % config["job"]
    try:
        result = backup.check_freshness(config, state_dir=runtime["state_dir"])
    except OpsError as exc:  # the result of having no backup, and why
        result = dict(backup.freshness([], config["freshness_max_age_hours"]), size_bytes=None,
                      error=exc.message)
    level = "ok" if result["ok"] else "critical"
    if result["ok"]:
        text = "backup %s: newest backup is %.1f h old" % (config["job"], result["age_hours"])
    elif result.get("error"):
        text = "backup %s: cannot read the backups (%s)" % (config["job"], result["error"])
    elif result["newest"] is None:
        pending = first_run_pending(config, runtime["state_dir"], args.config)
        level = "warning" if pending else "critical"
        text = "backup %s: %s for %s; %s" % (
            config["job"], "no backup yet" if pending else "no backup exists",
            config["host_label"], pending or "the backup job has run and made none: look "
            "at /var/log/%s.log" % config["job"])
    else:
        text = ("backup %s: newest backup is %.1f h old (limit %s h, from %s); "
                "is the backup cron job running?" % (
                    config["job"], result["age_hours"], result["max_age_hours"],
                    format_timestamp(result["newest"])))
    result.update(level=level, detail=text, alert=_notify(runtime, key, level, text))
    emit(args, result, text)
    return 1 if result["alert"].get("error") else 0


def first_run_pending(config, state_dir, config_path, now=None):
    """Why having no backup is not yet a failure, or ``""`` once it is.

    The first scheduled run has not had its chance while the backup job has no recorded
    run (``<state_dir>/jobs/<job>.json``, written by ``runbook-ops run``) and its config
    was installed (the file's modification time) less than ``freshness_max_age_hours``
    ago. A recorded run, or a job that never ran within that time (cron not running it),
    makes no backup a failure.
    """
    if os.path.exists(os.path.join(state_dir, "jobs", config["job"] + ".json")):
        return ""
    try:
        installed = os.stat(config_path).st_mtime
    except OSError:
        return ""
    now = time.time() if now is None else now
    limit = config["freshness_max_age_hours"]
    if now - installed >= limit * 3600:
        return ""
    return ("the job has not run since its settings were installed at %s; a backup is due "
            "within %s h of that (freshness_max_age_hours), later this is critical"
            % (format_timestamp(installed), "%g" % limit))


def _snapshots(args, config, runtime) -> int:
    if config["engine"] == "archive":
        items = [{"file": path} for path in backup.list_archives(config)]
        emit(args, items, "\n".join(item["file"] for item in items) or "no archives")
        return 0
    items = [{"id": s["short_id"], "time": s["time"].isoformat(), "paths": s["paths"],
              "tags": s["tags"]} for s in backup.list_snapshots(config)]
    emit(args, items, "\n".join("%s  %s  %s" % (i["id"], i["time"], " ".join(i["paths"]))
                                for i in items) or "no snapshots")
    return 0


def _restore(args, config, runtime) -> int:
    if args.in_place and not (args.confirm_overwrite or args.dry_run):
        raise OpsError("refusing to restore in place without --confirm-overwrite: it stops "
                       "the services and overwrites live data; restore into a scratch "
                       "directory (--target DIR) to look first, or add --dry-run to see "
                       "what it would do")
    if args.in_place and args.target:
        raise OpsError("--in-place and --target exclude each other")
    with contextlib.ExitStack() as held:
        if args.in_place and not args.dry_run:
            held.callback(_job_lock(config, runtime, "backup restore --in-place").close)
        return _restore_locked(args, config)


def _job_lock(config, runtime, what):
    """The job's lock (the one `runbook-ops run --job JOB` takes for `backup run`): no
    backup, and so no retention, runs during an in-place restore, nor a restore or a
    second backup during a backup. Returns the held ``JobLock``; refuses when it is held."""
    from .jobs import JobLock, boot_seconds, lock_note
    lock = JobLock(runtime, config["job"], runtime["state_dir"])
    held = lock.acquire(0)
    if held is not None:
        holder, path, _fd = held
        lock.close()
        raise OpsError("job %s is busy (pid %s holds %s%s); %s did not start and nothing was "
                       "changed: run it again when that has finished"
                       % (config["job"], holder.get("pid", "unknown"), path,
                          (", " + holder["what"]) if holder.get("what") else "", what))
    lock.write_note(dict(lock_note(time.time(), boot_seconds(), None), what=what))
    return lock


def _restore_locked(args, config):
    snapshot = backup.resolve_snapshot(config, args.snapshot)  # once: its id from here on
    target = args.target or backup.scratch_dir(config["host_label"], snapshot["short_id"])
    plan = backup.plan_restore(config, snapshot, target=target, in_place=args.in_place)
    result = backup.run_restore(config, plan, dry_run=args.dry_run)
    where = "in place" if args.in_place else "into %s" % target
    lines = ["restore of snapshot %s (%s) %s: %s" % (
        plan["short_id"], plan["time"], where,
        ("dry run, nothing changed" if args.dry_run else "ok") if result["ok"]
        else "FAILED: %s" % result.get("error"))]
    if args.in_place:
        lines += _in_place_lines(result, args.dry_run)
    else:
        lines.append("restored files are under %s; nothing live was touched" % target)
    result["summary"] = lines  # what restore.yml prints
    emit(args, result, lines)
    return 0 if result["ok"] else 1


def _in_place_lines(result, dry_run):
    """What an in-place restore replaced, moved aside, kept and left alone, for a person."""
    would = "would " if dry_run else ""
    lines = ["%s%d files from the snapshot (%d differ from it now), %screate %d paths" % (
        "would replace " if dry_run else "replaced ", result["replace"], result["changed"],
        would, result["create"])]
    for path in result["changed_sample"]:
        lines.append("  differs now: %s" % path)
    if result["moved_aside"]:
        lines.append("%s%d paths aside (not in the snapshot, or in its way) into %s" % (
            "would move " if dry_run else "moved ", result["moved_aside"],
            ", ".join(result["quarantine"])))
        for item in result["moves"]:
            lines.append("  %s  (%s)" % (item["path"], item["reason"]))
        if result["moved_aside"] > len(result["moves"]):
            lines.append("  ... and %d more" % (result["moved_aside"] - len(result["moves"])))
    else:
        lines.append("nothing to move aside")
    for item in result["kept"]:
        lines.append("kept as it is, not restored: %s (%s)" % (item["path"], item["reason"]))
    if result["excluded_untouched"]:
        lines.append("%d excluded paths left untouched (backup_excludes), e.g. %s" % (
            result["excluded_untouched"], ", ".join(result["excluded_sample"][:3])))
    for warning in result.get("warnings", []):
        lines.append("warning: %s" % warning)
    return lines


def _notify(runtime, key, level, text):
    from .alerts import notify
    return notify(runtime, key, level, text)

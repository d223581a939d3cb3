# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The emergency disk procedure: its run, with its settings checked first (``emergency_settings``).

``run_emergency_disk(settings, check_mode)`` is the whole procedure on the host (the
``runbook.ops.emergency_disk`` module): measure the disk holding ``path`` (``disk``); when
it is at or above ``crit_percent`` (or ``force``), take ``STEPS`` in order, each decided by
``decide_step`` (pure: the usage now, the target, a forced preview, the engine's presence
and an earlier Docker failure), run through ``docker_cleanup.run_docker_cleanup`` or
``clean_old_logs``, then measured again (check mode: projected from the step's estimate
when it frees space on the measured filesystem); then the largest directories
(``disk.scan_largest_dirs``), the media cleanup gate (``media.evaluate_gate``) and the
summary that the playbook prints, sends and judges (``emergency_disk_summary``), with its
table and verdict written by ``emergency_report``.
"""

from __future__ import annotations

import fnmatch
import math
import os
import re
import socket
import stat
import time

from .emergency_report import shorten, summary_lines, verdict
from .emergency_settings import PREFIX, SETTINGS, check_emergency_settings
from .errors import OpsError
from .units import plural


# The steps, in the runbook's order. Titles name the settings they read (``{until}``).
STEPS = (
    {"id": "build_cache", "title": "Docker build cache", "kind": "docker",
     "options": {"builder_cache": True, "images": "none", "containers": False,
                 "volumes": "none", "until": "0s"}},
    {"id": "images", "title": "Docker images unused for {until}", "kind": "docker",
     "options": {"builder_cache": False, "images": "unused", "containers": False,
                 "volumes": "none", "until": "{until}"}},
    # containers by containers_until (never under 1 h, 24 h after a crash); until: volumes only
    {"id": "containers_volumes", "title": "Containers stopped {containers_until}+, anon. volumes",
     "kind": "docker",
     "options": {"builder_cache": False, "images": "none", "containers": True,
                 "volumes": "anonymous", "until": "{until}"}},
    {"id": "logs", "title": "Journal and rotated logs", "kind": "logs"},
)
# the module's options: every setting but the playbook's own (telegram: the alert), typed
# as Ansible converts them; the module's argument_spec is built from this table
_KIND_TYPES = {"abs_path": "path", "abs_path_or_empty": "path", "percent": "int", "bool": "bool",
               "go_duration": "str", "docker_host": "str", "label": "str", "count": "int",
               "positive_count": "int", "seconds": "float", "age": "str", "size": "str",
               "text": "str"}
RUN_SETTINGS = tuple(name for name in SETTINGS if name != "telegram")
RUN_OPTIONS = dict((name, {"type": _KIND_TYPES[SETTINGS[name][0]], "default": SETTINGS[name][1]})
                   for name in RUN_SETTINGS)
LOG_PATTERNS = ("*.gz", "*.[0-9]", "*.old")
JOURNAL_DIRS = ("/var/log/journal", "/run/log/journal")
JOURNAL_PATTERNS = ("*@*.journal", "*@*.journal~")
JOURNALCTL = "/usr/bin/journalctl"
DEFAULT_DOCKER_SOCKET = "/var/run/docker.sock"
DEFAULT_DATA_ROOT = "/var/lib/docker"
_REMOTE_ENGINE = re.compile(r"(tcp|ssh|http|https)://")
_AGE_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def engine_presence(docker_host, socket_exists=os.path.lexists):
    """``present`` when the engine can be asked (a remote address, or the socket exists),
    ``configured_missing`` when ``docker_host`` names a local engine whose socket is not
    there (dockerd stopped on the full disk: a failure), ``absent`` when nothing names an
    engine and ``/var/run/docker.sock`` is missing (a host without Docker)."""
    if _REMOTE_ENGINE.match(docker_host):
        return "present"
    socket_path = docker_host[len("unix://"):] if docker_host.startswith("unix://") \
        else DEFAULT_DOCKER_SOCKET
    if socket_exists(socket_path):
        return "present"
    return "configured_missing" if docker_host else "absent"


def decide_step(kind, title, current_percent, target_percent, preview_all, engine,
                docker_failed, docker_host=""):
    """What happens to one step: ``{"action", "note", "docker_failed"}``.

    ``action``: ``below_target`` (usage is below the target and this is no forced
    preview: not run), ``skip`` (not run, ``note`` says why), ``fail`` (recorded as a
    failed step that ran), ``run``. ``engine`` is ``engine_presence``'s answer;
    ``docker_failed`` the title of the Docker step that failed ("" if none), returned
    updated. Pure: the order of the procedure lives here and in ``STEPS``.
    """
    action, note = "run", None
    if not (preview_all or current_percent >= target_percent):
        action, note = "below_target", "skipped: usage %s%% is below the target %s%%" % (
            current_percent, target_percent)
    elif kind == "docker" and docker_failed and docker_failed != title:
        action, note = "skip", "skipped: the Docker engine failed in " + docker_failed
    elif kind == "docker" and engine == "absent":
        action, note = "skip", "skipped: no Docker engine on this host"
    elif kind == "docker" and engine == "configured_missing":
        action, docker_failed = "fail", title
        note = "failed: no Docker engine at %s (emergency_disk_docker_host): no socket there" % docker_host
    return {"action": action, "note": note, "docker_failed": docker_failed}


def age_seconds(age):
    """Seconds in an age as ``find`` and ``journalctl --vacuum-time`` read it (7d, 12h, 2w)."""
    match = re.match(r"^(-?\d+)(s|m|h|d|w)?$", str(age).lower())
    if not match:
        raise OpsError("%r is not an age such as 7d, 12h or 2w" % (age,))
    return int(match.group(1)) * _AGE_SECONDS.get(match.group(2), 1)


def find_old_files(paths, patterns, age, now=None):
    """Regular files under ``paths`` whose name matches one of ``patterns`` and whose
    mtime is at least ``age`` seconds ago, as ``ansible.builtin.find`` (recurse, not
    hidden, not following links) lists them: ``[{"path", "size"}]`` in walk order. A path
    that is not a directory, or a directory that cannot be read, gives nothing."""
    now = time.time() if now is None else now
    found = []
    for top in paths:
        if not os.path.isdir(top):
            continue
        # every directory is walked, hidden ones too: find's hidden rule is for the names it lists
        for root, _dirs, files in os.walk(top, onerror=lambda _error: None):
            for name in files:
                if name.startswith("."):
                    continue
                full = os.path.normpath(os.path.join(root, name))
                try:
                    info = os.lstat(full)
                except OSError:
                    continue
                if (stat.S_ISREG(info.st_mode) and now - info.st_mtime >= age
                        and any(fnmatch.fnmatch(name, pattern) for pattern in patterns)):
                    found.append({"path": full, "size": info.st_size})
    return found


def clean_old_logs(log_dir, retention_days, journal_vacuum, journal_vacuum_time,
                   check_mode=False):
    """The logs step: archived journal files older than ``journal_vacuum_time``
    (``journalctl --vacuum-time``, only where journalctl exists) and rotated or compressed
    logs (``LOG_PATTERNS``) under ``log_dir`` older than ``retention_days``. Check mode
    lists and removes nothing.

    Returns ``{"estimated_bytes", "note", "changed", "error"}``: the bytes of the files
    listed, the step's note, whether something was (or would be) removed, and ``None`` or
    one line when the vacuum failed or a file could not be removed (every other file is
    still removed).
    """
    from .runner import run_command

    journal, journal_state = [], " (journal vacuum off)"
    changed, problems, vacuum_failed = False, [], False
    if journal_vacuum:
        if os.path.lexists(JOURNALCTL):
            journal_state = ""
            journal = find_old_files(JOURNAL_DIRS, JOURNAL_PATTERNS, age_seconds(journal_vacuum_time))
            if not check_mode:
                argv = ["journalctl", "--vacuum-time=%s" % journal_vacuum_time]
                try:
                    vacuum = run_command(argv, timeout=600)
                    vacuum_failed = vacuum.rc != 0
                    if vacuum.rc != 0:
                        tail = (vacuum.stderr or vacuum.stdout or "").strip().splitlines()[-1:]
                        problems.append("%s exited %d%s" % (" ".join(argv), vacuum.rc,
                                                            (": " + tail[0]) if tail else ""))
                    changed = bool(re.search(r"freed (?!0B)", vacuum.stderr or ""))
                except OpsError as exc:
                    vacuum_failed = True
                    problems.append(exc.message)
        else:
            journal_state = " (journal: no journalctl)"
    old = find_old_files([log_dir], LOG_PATTERNS, int(retention_days) * 86400)
    not_removed = []
    for entry in old:
        if check_mode:
            changed = True
            continue
        try:
            os.unlink(entry["path"])
            changed = True
        except FileNotFoundError:
            pass
        except OSError as exc:
            not_removed.append("%s: %s" % (entry["path"], exc.strerror or exc))
    if not_removed:
        problems.append("could not remove %d of %d old log files: %s" % (
            len(not_removed), len(old), "; ".join(not_removed)))
    note = "%s, %s%s" % (plural(len(old), "old log file"), plural(len(journal), "archived journal file"),
                         journal_state)
    vacuumed = [] if vacuum_failed else journal  # a failed vacuum freed nothing we know of
    return {"estimated_bytes": sum(f["size"] for f in vacuumed + old),
            "note": note, "changed": changed, "error": "; ".join(problems) or None}


def _docker_record(result, step, check_mode, target_percent):
    """The step record's fields from ``run_docker_cleanup``'s result."""
    enabled = [s for s in result["steps"] if s["enabled"]]
    below = all(s["skipped"] is not None for s in enabled)
    removed = sum(len(s["removed"]) for s in enabled)
    younger = sum(s.get("younger") or 0 for s in enabled)
    errors = result["errors"]
    if below:
        note = "skipped: Docker's data root (%s) is at %s%%, below the target %s%%" % (
            result["data_root"], result["usage_before_percent"], target_percent)
    else:
        note = "%d%s%s%s" % (
            removed, " to remove" if check_mode else " removed",
            (", %d younger than %s left" % (younger, step["options"]["until"])) if younger > 0 else "",
            ("; failed: %d error(s): %s" % (len(errors), shorten(errors[0]))) if errors else "")
    return {"ran": not below, "failed": bool(errors), "estimated_bytes": int(result["reclaimed_bytes"]),
            "kept": result.get("kept") or [], "moved_tags": result.get("moved_tags") or [],
            "note": note}


def _failure_text(exc, import_error_text):
    if isinstance(exc, OpsError):
        return exc.message
    if isinstance(exc, ImportError) and import_error_text is not None:
        return import_error_text(exc)
    return str(exc) or type(exc).__name__


def _steps(settings):
    """``STEPS`` with the settings filled into titles and options."""
    steps = []
    for step in STEPS:
        step = dict(step, title=step["title"].format(**settings))
        if "options" in step:
            step["options"] = dict(step["options"], until=step["options"]["until"].format(**settings))
        steps.append(step)
    return steps


def _docker_options(step, settings, preview_all):
    return dict(step["options"], containers_until=settings["containers_until"],
                networks=False, keep_label=settings["keep_label"],
                state_dir=settings["state_dir"],
                target_percent=None if preview_all else float(settings["target_percent"]),
                docker_host=settings["docker_host"] or None)


def _mount_of(path):
    from .disk import filesystem_usage

    try:
        return filesystem_usage(path)["mount"]
    except OpsError:
        return ""


def _largest(settings, docker_root, engine, warnings):
    """The largest directories (media, logs, Docker's data root) and the media gate."""
    from .disk import scan_largest_dirs

    candidates = [settings["media_path"], settings["log_dir"],
                  docker_root or (DEFAULT_DATA_ROOT if engine == "present" else "")]
    dirs = []
    for path in candidates:
        try:
            if path and path not in dirs and stat.S_ISDIR(os.lstat(path).st_mode):
                dirs.append(path)
        except OSError:
            continue
    largest, partial = [], False
    if dirs:
        scan = scan_largest_dirs(dirs, count=int(settings["largest_count"]) * 5,
                                 timeout=float(settings["scan_timeout"]))
        if scan["partial"]:
            warnings.append("the scan stopped at scan_timeout; largest sizes are lower bounds")
        for entry in scan["unreadable"]:
            warnings.append("could not read %s: %s" % (entry["path"], entry["error"]))
        # the scanned roots and at most two levels below them (overlay2/<id>/diff/usr is noise)
        pattern = "^(%s)(/[^/]+){0,2}$" % "|".join(re.escape(re.sub("/+$", "", d)) for d in dirs)
        largest = [row for row in scan["largest"] if re.match(pattern, row["path"])]
        largest = largest[:int(settings["largest_count"])]
        partial = scan["partial"]
    gate = None
    if settings["media_path"] and settings["media_path"] in dirs:
        from .media import evaluate_gate

        result = evaluate_gate(settings["media_path"], size_limit=str(settings["media_size_limit"]),
                               disk_path=settings["path"],
                               disk_limit_percent=int(settings["target_percent"]))
        if result.get("media_partial"):
            warnings.append("some entries under %s could not be read; media_bytes is a lower "
                            "bound" % result["media_path"])
        gate = {"activate": result["activate"],
                "fired": [t["detail"] for t in result["triggers"] if t["hit"]],
                "media_bytes": result["media_bytes"],
                "dry_run_command": settings["media_dry_run_command"]}
    return largest, partial, gate


def check_run_settings(settings):
    """The run's settings (short names, ``RUN_SETTINGS``) checked and normalised by the
    playbook's rules; raises ``OpsError`` with one line per problem."""
    given = dict((PREFIX + name, settings.get(name)) for name in RUN_SETTINGS)
    return settings_from_variables(given)[0]


def settings_from_variables(given):
    """The playbook's ``emergency_disk_*`` variables as given (``check_emergency_settings``)
    -> ``(run settings by short name, warnings)``; raises ``OpsError`` with one line per
    problem, joined by ``; ``, before anything changes."""
    short = sorted(name for name in given if not str(name).startswith(PREFIX))
    if short:
        raise OpsError("; ".join("variables: %r is not an %s* name; use %s%s" % (name, PREFIX, PREFIX, name)
                                 for name in short))
    checked = check_emergency_settings(given)
    if checked["problems"]:
        raise OpsError("; ".join(checked["problems"]))
    return dict((name, checked["settings"][name]) for name in RUN_SETTINGS), checked["warnings"]


def run_emergency_disk(settings, host_label=None, check_mode=False, cleanup=None,
                       import_error_text=None):
    """The emergency procedure on this host; returns ``{"changed", "summary", "lines",
    "verdict", "warnings"}``.

    ``settings``: the ``RUN_SETTINGS`` by short name (missing ones take their defaults),
    checked first (``OpsError`` before anything changes). ``summary`` is the playbook's
    ``emergency_disk_summary`` (see the module's RETURN); ``lines`` and ``verdict`` are
    ``emergency_report``'s table and failure line for it. ``cleanup`` is the Docker
    cleanup (``docker_cleanup.run_docker_cleanup`` unless given); ``import_error_text``
    words a missing library (the module's ``missing_required_lib``). A step that fails is
    recorded and the next ones run; a missing ``path`` raises ``OpsError``.
    """
    from .disk import filesystem_usage

    settings = check_run_settings(settings)
    if cleanup is None:
        from .docker_cleanup import run_docker_cleanup as cleanup
    warnings = []
    before = filesystem_usage(settings["path"])
    target, crit = int(settings["target_percent"]), int(settings["crit_percent"])
    host = host_label or socket.gethostname()
    preview_all = bool(settings["force"]) and bool(check_mode)
    if not (settings["force"] or before["used_percent"] >= crit):
        return _result(settings, False, warnings, {
            "host": host, "path": settings["path"], "mount": before["mount"], "active": False,
            "check_mode": bool(check_mode), "before_percent": before["used_percent"],
            "after_percent": before["used_percent"], "before_used_bytes": before["used_bytes"],
            "after_used_bytes": before["used_bytes"], "freed_bytes": 0, "estimated_bytes": 0,
            "steps": [], "failed_steps": [], "largest": [], "media_gate": None,
            "escalate": False})
    engine = engine_presence(settings["docker_host"])
    total = before["used_bytes"] + before["free_bytes"]
    current_used, current_percent = before["used_bytes"], before["used_percent"]
    docker_failed, docker_root, changed, records = "", "", False, []
    for step in _steps(settings):
        decision = decide_step(step["kind"], step["title"], current_percent, target, preview_all,
                               engine, docker_failed, settings["docker_host"])
        record = {"id": step["id"], "title": step["title"], "ran": False, "failed": False,
                  "estimated_bytes": 0, "freed_bytes": 0, "after_percent": current_percent,
                  "note": decision["note"], "kept": [], "moved_tags": []}
        records.append(record)
        if decision["action"] == "below_target":
            continue
        beyond_target = current_percent < target
        docker_failed = decision["docker_failed"]
        if decision["action"] == "fail":
            record.update(ran=True, failed=True)
        elif decision["action"] == "run" and step["kind"] == "docker":
            try:
                result = cleanup(_docker_options(step, settings, preview_all), check_mode=check_mode)
            except Exception as exc:  # noqa: BLE001 - recorded, the procedure goes on
                docker_failed = step["title"]
                record.update(ran=True, failed=True,
                              note="failed: " + shorten(_failure_text(exc, import_error_text)))
            else:
                docker_root = result.get("data_root") or ""
                record.update(_docker_record(result, step, check_mode, target))
                changed = changed or bool(result.get("changed"))
                warnings.extend(result.get("warnings") or [])
                if result["errors"]:
                    warnings.append("%d removal(s) or step(s) failed: %s" % (
                        len(result["errors"]), "; ".join(result["errors"][:5])))
        elif decision["action"] == "run":
            try:
                logs = clean_old_logs(settings["log_dir"], settings["log_retention_days"],
                                      settings["journal_vacuum"], settings["journal_vacuum_time"],
                                      check_mode=check_mode)
            except Exception as exc:  # noqa: BLE001 - recorded, the procedure goes on
                logs = {"changed": not check_mode, "estimated_bytes": 0,
                        "error": _failure_text(exc, import_error_text)}
            changed = changed or logs["changed"]
            if logs["error"]:
                record.update(ran=True, failed=True, note="failed: " + shorten(logs["error"]))
            else:
                record.update(ran=True, estimated_bytes=logs["estimated_bytes"], note=logs["note"])
        # --check projects the usage from the step's estimate, only when the step frees
        # space on the measured filesystem (Docker's data root or the log directory may be
        # another disk, or not on this host at all: a tcp:// engine)
        step_dir = docker_root if step["kind"] == "docker" else settings["log_dir"]
        counted, step_mount = True, ""
        if check_mode and record["estimated_bytes"] > 0 and step_dir:
            step_mount = _mount_of(step_dir)
            counted = step_mount == before["mount"]
        if check_mode:
            new_used = max(current_used - (record["estimated_bytes"] if counted else 0), 0)
            new_percent = int(math.ceil(new_used * 100 / total)) if total > 0 else current_percent
        else:
            try:
                after = filesystem_usage(settings["path"])
                new_used, new_percent = after["used_bytes"], after["used_percent"]
            except Exception as exc:  # noqa: BLE001 - the summary still comes back
                warnings.append("could not measure %s after %s: %s" % (
                    settings["path"], step["title"], _failure_text(exc, import_error_text)))
                new_used, new_percent = current_used, current_percent
        if not counted:
            record["note"] += "; on %s, not counted for %s" % (
                step_mount or "another host", before["mount"])
        if preview_all and beyond_target:
            record["note"] += "; a real run stops before this step (below the target)"
        record["after_percent"] = new_percent
        record["freed_bytes"] = None if check_mode else max(current_used - new_used, 0)
        current_used, current_percent = new_used, new_percent
    try:
        largest, partial, gate = _largest(settings, docker_root, engine, warnings)
    except Exception as exc:  # noqa: BLE001 - the summary still comes back
        warnings.append("largest directories and media gate not available: %s"
                        % _failure_text(exc, import_error_text))
        largest, partial, gate = [], True, None
    failed = [r for r in records if r["failed"]]
    summary = {
        "host": host, "path": settings["path"], "mount": before["mount"], "active": True,
        "forced": bool(settings["force"]) and before["used_percent"] < crit,
        "preview_all": preview_all, "check_mode": bool(check_mode), "total_bytes": total,
        "before_percent": before["used_percent"], "after_percent": current_percent,
        "target_percent": target, "escalate_percent": int(settings["escalate_percent"]),
        "before_used_bytes": before["used_bytes"], "after_used_bytes": current_used,
        "freed_bytes": None if check_mode else sum(
            r["freed_bytes"] for r in records if r["ran"] and isinstance(r["freed_bytes"], int)),
        "estimated_bytes": sum(r["estimated_bytes"] for r in records),
        "steps": records,
        "failed_steps": ["%s: %s" % (r["title"], r["note"]) for r in failed],
        "largest": largest, "largest_partial": partial, "media_gate": gate,
        "escalate": current_percent > int(settings["escalate_percent"]),
    }
    return _result(settings, changed, warnings, summary)


def _result(settings, changed, warnings, summary):
    """The run's result: the summary with its printed ``lines`` and the ``verdict``. The
    cleanup has already run: a table that cannot be built (a bug) still returns the summary
    of what was removed, with a one-line table and a verdict from its facts."""
    try:
        lines = summary_lines(summary, settings["crit_percent"], settings["media_path"])
        why = verdict(summary, settings["escalate_percent"])
    except Exception as exc:  # noqa: BLE001 - the summary must reach the controller whatever failed here
        lines = ["%s: the summary table could not be built (%s: %s); the result's summary holds the run"
                 % (summary.get("host"), type(exc).__name__, exc)]
        problems = list(summary.get("failed_steps") or ()) + (
            ["still above the escalation threshold"] if summary.get("escalate") else [])
        why = "%s: %s" % (summary.get("host"), "; ".join(problems)) if problems else ""
    return printable({"changed": changed, "summary": summary, "warnings": warnings,
                      "lines": lines, "verdict": why})


def printable(value):
    """``value`` with every string valid UTF-8: a file name that is not (read by Python as
    surrogate escapes) would make the controller refuse the whole result, the summary of
    what was already removed included; such bytes are shown as ``\\xff``."""
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if isinstance(value, dict):
        return dict((printable(key), printable(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [printable(item) for item in value]
    return value

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The emergency procedure's report, written on the host: the summary table and the verdict.

``summary_lines(summary, crit_percent, media_path)`` is the table the playbook prints and
sends to Telegram, one string per line (what the playbook's template rendered on the controller
before #21, line for line: tests/unit/fixtures/emergency/emergency_disk_summary.j2 keeps it and
test_emergency_report compares); ``verdict(summary, escalate_percent)`` the one line the
playbook fails a host with ("" when a step failed nowhere and usage is not above the
escalation threshold). Both are pure.
"""

from __future__ import annotations

from .units import format_bytes, plural

ADVICE = ("expand the disk or move media to S3; above 90% consider stopping non-essential "
          "services \u2014 a human decision (runbook: Escalation Paths, Disk Space Emergency)")
ROW = "%-40s %12s %12s %6s  %s"
KEPT_KINDS = (("container", "stopped container"), ("volume", "volume"), ("image", "image"))
ELLIPSIS = "\u2026"
NOTE_LENGTH = 200


def _size(value):
    return "-" if value is None else format_bytes(int(value))


def shorten(text, length=NOTE_LENGTH, killwords=False, end="...", leeway=5):
    """``text`` cut as Jinja's ``truncate(length, killwords, end)`` cuts it (the playbook's
    notes and table did): unchanged up to ``length + leeway`` characters, else cut before
    ``length - len(end)`` (at a word unless ``killwords``) and ended with ``end``."""
    text = str(text)
    if len(text) <= length + leeway:
        return text
    head = text[:length - len(end)]
    return (head if killwords else head.rsplit(" ", 1)[0]) + end


def _step_row(step):
    ran = step["ran"]
    return ROW % (shorten(step["title"], 40, True, ELLIPSIS), _size(step["estimated_bytes"]) if ran else "-",
                  _size(step["freed_bytes"]) if ran else "-",
                  ("%s%%" % step["after_percent"]) if ran else "-", step["note"])


def _kept_lines(steps):
    kept = [entry for step in steps for entry in step.get("kept") or []]
    lines = []
    for kind, label in KEPT_KINDS:
        entries = [e for e in kept if e.get("kind") == kind]
        if entries:
            lines.append("kept %s: %s" % (plural(len(entries), label), "; ".join(
                "%s %s" % (e["name"] if len(e["name"]) < 64 else e["name"][:12] + ELLIPSIS, e["reason"])
                for e in entries)))
    for moved in [m for step in steps for m in step.get("moved_tags") or []]:
        lines.append("tag %s moved to another image (%s) since the plan: left alone"
                     % (moved["tag"], (moved.get("image") or "none")[:19]))
    return lines


def _gate_lines(gate, media_path):
    if not gate:
        return ["media cleanup gate: %s is not a directory on this host" % media_path] if media_path else []
    lines = ["media cleanup gate: %s (%s of media)" % (
        "ACTIVATE the media cleanup" if gate["activate"] else "not needed yet", _size(gate["media_bytes"]))]
    lines.extend("  fired: %s" % line for line in gate["fired"])
    if gate["activate"]:
        lines.append("  dry run first: %s" % (
            gate["dry_run_command"] or "set emergency_disk_media_dry_run_command to the app's dry-run cleanup command"))
    return lines


def _active_lines(s):
    check = s["check_mode"]
    lines = ["usage %s%% -> %s%%%s, target below %s%%, escalate above %s%%%s%s" % (
        s["before_percent"], s["after_percent"], " (projected)" if check else "", s["target_percent"],
        s["escalate_percent"], " (forced: below critical)" if s["forced"] else "",
        " (forced preview: every step, past the target too)" if s.get("preview_all") else "")]
    if s["failed_steps"]:
        lines.append("FAILED: " + "; ".join(s["failed_steps"]))
    lines.append("%s %s%s" % ("would free" if check else "freed", _size(s["estimated_bytes"] if check else s["freed_bytes"]),
                              "" if check else " (measured drop; Docker and log steps reported %s)"
                              % _size(s["estimated_bytes"])))
    lines.append(ROW % ("step", "estimated", "freed", "usage", "note"))
    lines.extend(_step_row(step) for step in s["steps"])
    lines.extend(_kept_lines(s["steps"]))
    if s["largest"]:
        lines.append("largest directories%s:" % (" (scan timed out: lower bounds)" if s["largest_partial"] else ""))
        lines.extend("  %12s  %s" % (_size(d["bytes"]), d["path"]) for d in s["largest"])
    return lines


def summary_lines(summary, crit_percent, media_path):
    """The summary table, one string per line (see the module docstring)."""
    s = summary
    lines = ["emergency-disk %s: %s (mount %s)%s" % (
        s["host"], s["path"], s["mount"],
        " [CHECK MODE: nothing changed, figures are estimates]" if s["check_mode"] else "")]
    if not s["active"]:
        lines.append("usage %s%% is below the critical %s%%: nothing to do" % (s["before_percent"], crit_percent))
    else:
        lines.extend(_active_lines(s))
        lines.extend(_gate_lines(s["media_gate"], media_path))
        if s["escalate"]:
            lines.append("ESCALATE: still %s%% > %s%%: %s" % (s["after_percent"], s["escalate_percent"], ADVICE))
    return "\n".join(lines).strip().split("\n")


def verdict(summary, escalate_percent):
    """Why the host fails: ``"<host>: N emergency step(s) failed: ...; <mount> is still at
    X% ..."``, or ``""``."""
    s = summary
    parts = []
    if s["failed_steps"]:
        parts.append("%d emergency step(s) failed: %s" % (len(s["failed_steps"]), "; ".join(s["failed_steps"])))
    if s["escalate"]:
        parts.append("%s is still at %s%%%s after the emergency cleanup (escalation threshold %s%%): %s" % (
            s["mount"], s["after_percent"], " (projected)" if s["check_mode"] else "", escalate_percent, ADVICE))
    return "%s: %s" % (s["host"], "; ".join(parts)) if parts else ""

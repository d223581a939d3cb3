# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which snapshots a retention policy keeps, decided exactly as ``restic forget`` decides.

A backup job applies retention to its own snapshots only, including the ones made
before snapshots carried a job tag, a set ``restic forget --tag`` cannot select. So
the job picks the snapshots to remove itself and hands restic their ids. This is
restic's ``ApplyPolicy`` for keep-last/hourly/daily/weekly/monthly/yearly:

- snapshots newest first (ties keep their listing order);
- each rule counts down while it sees a new bucket (``last``: every snapshot; hourly,
  daily, monthly, yearly: the snapshot's own wall clock, in the UTC offset it was
  recorded with; weekly: ISO year and week); a snapshot is kept when any rule takes it;
- restic 0.16 and later also keep the oldest snapshot while a rule still has count
  left (``keep_oldest``); 0.14 (Debian 12) does not.
"""

from __future__ import annotations

import re

RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")

_BUCKETS = {
    "last": lambda when, nr: nr,
    "hourly": lambda when, nr: (when.year, when.month, when.day, when.hour),
    "daily": lambda when, nr: (when.year, when.month, when.day),
    "weekly": lambda when, nr: tuple(when.isocalendar()[:2]),
    "monthly": lambda when, nr: (when.year, when.month),
    "yearly": lambda when, nr: when.year,
}


def plan_retention(snapshots, policy, keep_oldest=False):
    """Split ``snapshots`` (dicts with ``id`` and an aware ``time``) by ``policy``.

    ``policy`` maps rule names (``RULES``) to counts (0 = off). Returns
    ``{"keep": [ids newest first], "remove": [ids], "reasons": {id: [rules]}}``.
    An empty policy keeps everything, as restic does.
    """
    ordered = sorted(snapshots, key=_order_key, reverse=True)
    counts = {rule: int(policy.get(rule) or 0) for rule in RULES}
    if not any(counts.values()):
        return {"keep": [snap["id"] for snap in ordered], "remove": [],
                "reasons": {snap["id"]: ["policy is empty"] for snap in ordered}}
    last_seen = dict.fromkeys(RULES)
    keep, remove, reasons = [], [], {}
    for nr, snap in enumerate(ordered):
        taken = []
        for rule in RULES:
            if counts[rule] <= 0:
                continue
            bucket = _BUCKETS[rule](snap["time"], nr)
            oldest = keep_oldest and nr == len(ordered) - 1
            if bucket != last_seen[rule] or oldest:
                last_seen[rule] = bucket
                counts[rule] -= 1
                taken.append(rule)
        if taken:
            keep.append(snap["id"])
            reasons[snap["id"]] = taken
        else:
            remove.append(snap["id"])
    return {"keep": keep, "remove": remove, "reasons": reasons}


def _order_key(snap):
    return (snap["time"], snap.get("time_ns", 0))


def keeps_oldest(version_output):
    """Whether the restic that printed ``version_output`` keeps the oldest snapshot (0.16+).

    An unreadable version counts as yes: that keeps more, never less.
    """
    match = re.search(r"restic (\d+)\.(\d+)", version_output or "")
    if not match:
        return True
    return (int(match.group(1)), int(match.group(2))) >= (0, 16)

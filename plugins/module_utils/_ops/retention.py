# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Which snapshots a retention policy keeps, decided as ``restic forget`` decides, never less.

A backup job applies retention to its own snapshots only, including the ones made
before snapshots carried a job tag, a set ``restic forget --tag`` cannot select. So
the job picks the snapshots to remove itself and hands restic their ids. This is
restic's ``ApplyPolicy`` for keep-last/hourly/daily/weekly/monthly/yearly:

- snapshots newest first;
- each rule counts down while it sees a new bucket (``last``: every snapshot; hourly,
  daily, monthly, yearly: the snapshot's own wall clock, in the UTC offset it was
  recorded with; weekly: ISO year and week); a snapshot is kept when any rule takes it;
- restic 0.16 and later also keep the oldest snapshot while a rule still has count
  left (``keep_oldest``); 0.14 (Debian 12) does not.

Snapshots with the same time (to the nanosecond) come in an order restic does not fix:
it loads snapshot files in parallel and sorts by time only. So the plan keeps every
snapshot restic keeps in *any* order of such ties (``_tie_orders``): for a tie group it
follows each distinct order of its members' buckets from each state the rules can be in,
and keeps every member of a bucket class some order keeps. Without ties this is exactly
restic's selection. Beyond ``MAX_STATES`` possible states it keeps everything older.

On top, the job's ``floor`` only ever keeps more: every snapshot newer than a moment
(the job passes 48 hours ago) and the newest N (the job passes 2), ties included.
"""

from __future__ import annotations

import re

RULES = ("last", "hourly", "daily", "weekly", "monthly", "yearly")
MAX_STATES = 4096

_BUCKETS = {
    "hourly": lambda when: (when.year, when.month, when.day, when.hour),
    "daily": lambda when: (when.year, when.month, when.day),
    "weekly": lambda when: tuple(when.isocalendar()[:2]),
    "monthly": lambda when: (when.year, when.month),
    "yearly": lambda when: when.year,
}


def plan_retention(snapshots, policy, keep_oldest=False, floor=None):
    """Split ``snapshots`` (dicts with ``id`` and an aware ``time``) by ``policy``.

    ``policy`` maps rule names (``RULES``) to counts (0 = off). ``floor``
    (``{"newer_than": aware datetime, "last": N}``, optional) keeps more on top.
    Returns ``{"keep": [ids newest first], "remove": [ids newest first],
    "reasons": {id: [rules]}}``. An empty policy keeps everything, as restic does.
    """
    ordered = sorted(snapshots, key=_order_key, reverse=True)
    counts = {rule: int(policy.get(rule) or 0) for rule in RULES}
    if not any(counts.values()):
        reasons = {snap["id"]: ["policy is empty"] for snap in ordered}
    else:
        reasons = _restic_keeps(ordered, counts, keep_oldest)
    if floor:
        _apply_floor(ordered, floor, reasons)
    return {"keep": [snap["id"] for snap in ordered if snap["id"] in reasons],
            "remove": [snap["id"] for snap in ordered if snap["id"] not in reasons],
            "reasons": reasons}


def _order_key(snap):
    return (snap["time"], snap.get("time_ns", 0))


def _tie_groups(ordered):
    """Runs of snapshots with the same time, newest first."""
    groups = []
    for snap in ordered:
        if groups and _order_key(groups[-1][0]) == _order_key(snap):
            groups[-1].append(snap)
        else:
            groups.append([snap])
    return groups


def _restic_keeps(ordered, counts, keep_oldest):
    """``{id: [rules]}`` of every snapshot restic keeps in some order of the ties."""
    rules = [rule for rule in RULES if counts[rule] > 0]
    timed = [rule for rule in rules if rule != "last"]
    states = {(tuple(counts[rule] for rule in rules), (None,) * len(rules))}
    reasons, position, oldest = {}, 0, len(ordered) - 1
    for group in _tie_groups(ordered):
        classes = {}
        for snap in group:
            key = tuple(_BUCKETS[rule](snap["time"]) for rule in timed)
            classes.setdefault(key, []).append(snap)
        sizes = {key: len(members) for key, members in classes.items()}
        if states is None or len(states) * _order_count(sizes) > MAX_STATES:
            states = None  # too many ways to follow: keep this group and everything older
            for snap in group:
                reasons[snap["id"]] = ["tied times: too many orders to follow"]
            continue
        taken, next_states = {}, set()
        for order in _tie_orders(sizes):
            for state in states:
                state, took = _walk(state, order, position, rules, keep_oldest, oldest)
                next_states.add(state)
                for key, rule in took:
                    taken.setdefault(key, set()).add(rule)
        for key, took in taken.items():
            for snap in classes[key]:
                reasons[snap["id"]] = [rule for rule in RULES if rule in took]
        states, position = next_states, position + len(group)
    return reasons


def _walk(state, order, position, rules, keep_oldest, oldest):
    """restic's loop over one order of a tie group from ``state``: the state after it
    and the ``(bucket class, rule)`` pairs that took a snapshot."""
    counts, lasts = list(state[0]), list(state[1])
    took = []
    for offset, key in enumerate(order):
        nr = position + offset
        buckets = iter(key)
        for index, rule in enumerate(rules):
            bucket = nr if rule == "last" else next(buckets)
            if counts[index] <= 0:
                continue
            if bucket != lasts[index] or (keep_oldest and nr == oldest):
                lasts[index] = None if rule == "last" else bucket
                counts[index] -= 1
                took.append((key, rule))
    return (tuple(counts), tuple(lasts)), took


def _order_count(sizes):
    """How many distinct orders ``_tie_orders`` yields (a multinomial coefficient)."""
    count, placed = 1, 0
    for size in sizes.values():
        for step in range(1, size + 1):
            placed += 1
            count = count * placed // step
    return count


def _tie_orders(sizes):
    """Every distinct order of a multiset of bucket classes (``{class: members}``)."""
    if not any(sizes.values()):
        yield ()
        return
    for key in sorted(key for key, size in sizes.items() if size):
        rest = dict(sizes)
        rest[key] -= 1
        for tail in _tie_orders(rest):
            yield (key,) + tail


def _apply_floor(ordered, floor, reasons):
    """Add the floor's reasons: newer than ``floor["newer_than"]``, or among the newest
    ``floor["last"]`` (and every snapshot tied with the last of those)."""
    newer_than, last = floor.get("newer_than"), int(floor.get("last") or 0)
    boundary = _order_key(ordered[min(last, len(ordered)) - 1]) if last and ordered else None
    for snap in ordered:
        why = []
        if newer_than is not None and snap["time"] > newer_than:
            why.append("floor: newer than %s" % newer_than.isoformat(timespec="seconds"))
        if boundary is not None and _order_key(snap) >= boundary:
            why.append("floor: one of the newest %d" % last)
        if why:
            reasons.setdefault(snap["id"], []).extend(why)


def keeps_oldest(version_output):
    """Whether the restic that printed ``version_output`` keeps the oldest snapshot (0.16+).

    An unreadable version counts as yes: that keeps more, never less.
    """
    version = restic_version(version_output)
    return version is None or version >= (0, 16)


def restic_version(version_output):
    """``(major, minor)`` from ``restic version`` output, or None when unreadable."""
    match = re.search(r"restic (\d+)\.(\d+)", version_output or "")
    return (int(match.group(1)), int(match.group(2))) if match else None

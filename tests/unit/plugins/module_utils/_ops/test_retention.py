# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of _ops/retention.py: the planner against an independent model of restic's rules,
and against ``restic forget --dry-run --json`` itself on repositories with forged times."""

from __future__ import annotations

import datetime
import itertools
import json
import os
import shutil
import subprocess
import sys

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
if os.path.join(_REPO, ".collections") not in sys.path:
    sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import backup, retention  # noqa: E402
from restic_keys import cheapen_keys  # noqa: E402

# The restic to compare with: Debian 12's by default; RUNBOOK_OPS_TEST_RESTIC=/path/to/restic
# runs the same tests against another version (e.g. Debian 13's 0.18).
RESTIC = os.environ.get("RUNBOOK_OPS_TEST_RESTIC", "restic")
needs_restic = pytest.mark.skipif(shutil.which(RESTIC) is None, reason="restic not installed")
UTC = datetime.timezone.utc
OFFSETS = [UTC, datetime.timezone(datetime.timedelta(hours=5, minutes=30)),
           datetime.timezone(datetime.timedelta(hours=-4)),
           datetime.timezone(datetime.timedelta(hours=-5)),
           datetime.timezone(datetime.timedelta(hours=14))]


def snaps(times):
    return [{"id": "s%03d" % number, "time": when} for number, when in enumerate(times)]


def daily(count, start=datetime.datetime(2026, 1, 1, 3, tzinfo=UTC)):
    return snaps([start + datetime.timedelta(days=day) for day in range(count)])


# --------------------------------------------------------------------------- the model

KEYS = {
    "hourly": lambda t: (t.year, t.month, t.day, t.hour),
    "daily": lambda t: t.date(),
    "weekly": lambda t: t.isocalendar()[:2],
    "monthly": lambda t: (t.year, t.month),
    "yearly": lambda t: t.year,
}


def model_keep(snapshots, policy, keep_oldest):
    """restic's rules said another way: per rule, the newest snapshot of each of the first
    N runs of equal buckets (newest first), plus (0.16+) the oldest when fewer runs exist."""
    ordered = sorted(snapshots, key=lambda snap: snap["time"], reverse=True)
    if not any(policy.values()):
        return {snap["id"] for snap in ordered}
    kept = {snap["id"] for snap in ordered[:policy.get("last", 0)]}
    for rule, key in KEYS.items():
        count = policy.get(rule, 0)
        if not count:
            continue
        starts = [i for i, snap in enumerate(ordered)
                  if i == 0 or key(snap["time"]) != key(ordered[i - 1]["time"])]
        kept |= {ordered[i]["id"] for i in starts[:count]}
        if keep_oldest and ordered and len(starts) < count:
            kept.add(ordered[-1]["id"])
    return kept


# --------------------------------------------------------------------------- examples

def test_keep_daily_30_over_103_daily_snapshots_keeps_the_newest_30_days():
    plan = retention.plan_retention(daily(103), {"last": 1, "daily": 30})
    assert plan["keep"] == ["s%03d" % day for day in range(102, 72, -1)]
    assert len(plan["remove"]) == 73


def test_two_snapshots_on_one_day_keep_only_the_newer_for_the_daily_rule():
    day = datetime.datetime(2026, 1, 5, tzinfo=UTC)
    plan = retention.plan_retention(snaps([day.replace(hour=2), day.replace(hour=3),
                                           day.replace(hour=3) - datetime.timedelta(days=1)]),
                                    {"daily": 2})
    assert plan["keep"] == ["s001", "s002"] and plan["remove"] == ["s000"]


def test_days_are_the_recorded_offsets_wall_clock_not_utc():
    plus_five = datetime.timezone(datetime.timedelta(hours=5))
    # 2026-01-02 01:00 +05:00 is still January 1 in UTC: two local days, one UTC day
    times = [datetime.datetime(2026, 1, 1, 22, tzinfo=plus_five),
             datetime.datetime(2026, 1, 2, 1, tzinfo=plus_five)]
    assert retention.plan_retention(snaps(times), {"daily": 5})["remove"] == []


def test_weekly_uses_iso_weeks():
    # Sunday 2026-01-04 and Monday 2026-01-05 are in different ISO weeks
    times = [datetime.datetime(2026, 1, 3, tzinfo=UTC), datetime.datetime(2026, 1, 4, tzinfo=UTC),
             datetime.datetime(2026, 1, 5, tzinfo=UTC)]
    assert retention.plan_retention(snaps(times), {"weekly": 5})["keep"] == ["s002", "s001"]


def test_keep_oldest_only_from_restic_0_16():
    policy = {"daily": 5}
    three = daily(3)
    two_on_one_day = snaps([datetime.datetime(2026, 1, 1, 1, tzinfo=UTC),
                            datetime.datetime(2026, 1, 1, 2, tzinfo=UTC)])
    assert retention.plan_retention(three, policy)["remove"] == []
    assert retention.plan_retention(two_on_one_day, policy)["keep"] == ["s001"]
    assert retention.plan_retention(two_on_one_day, policy, keep_oldest=True)["keep"] == \
        ["s001", "s000"]


def test_empty_policy_keeps_everything_like_restic():
    assert retention.plan_retention(daily(4), {})["remove"] == []


@pytest.mark.parametrize("output, expected", [
    ("restic 0.14.0 compiled with go1.19.8 on linux/amd64", False),
    ("restic 0.16.4 compiled with go1.22.2 on linux/amd64", True),
    ("restic 0.18.0 compiled with go1.24.4 on linux/amd64", True),
    ("", True),
], ids=["debian-12", "ubuntu-24.04", "debian-13", "unknown-keeps-more"])
def test_keeps_oldest_follows_the_restic_version(output, expected):
    assert retention.keeps_oldest(output) is expected


# --------------------------------------------------------------------------- properties

POLICIES = st.fixed_dictionaries({rule: st.integers(0, 4) for rule in retention.RULES})


@given(times=st.lists(st.datetimes(min_value=datetime.datetime(2024, 12, 20),
                                   max_value=datetime.datetime(2026, 2, 10),
                                   timezones=st.sampled_from(OFFSETS)),
                      max_size=40, unique_by=lambda when: when.astimezone(UTC)),
       policy=POLICIES, keep_oldest=st.booleans())
def test_plan_equals_the_independent_model(times, policy, keep_oldest):
    snapshots = snaps(times)
    plan = retention.plan_retention(snapshots, policy, keep_oldest=keep_oldest)
    assert set(plan["keep"]) == model_keep(snapshots, policy, keep_oldest)
    assert sorted(plan["keep"] + plan["remove"]) == sorted(snap["id"] for snap in snapshots)
    if snapshots and policy["last"]:
        newest = max(snapshots, key=lambda snap: snap["time"])
        assert plan["keep"][0] == newest["id"]


def restic_apply(order, policy, keep_oldest):
    """restic's ApplyPolicy loop over snapshots already in one order (newest first)."""
    buckets = [[count, KEYS.get(rule, lambda t: None), object()]
               for rule, count in policy.items() if count]
    kept = set()
    for nr, snap in enumerate(order):
        for bucket in buckets:
            if bucket[0] > 0:
                value = nr if bucket[1](snap["time"]) is None else bucket[1](snap["time"])
                if value != bucket[2] or (keep_oldest and nr == len(order) - 1):
                    bucket[2] = value
                    bucket[0] -= 1
                    kept.add(snap["id"])
    return kept


def model_keep_any_order(snapshots, policy, keep_oldest):
    """What restic keeps in some order of snapshots with the same time: its loop over
    every order (the product of every tie group's permutations), united."""
    if not any(policy.values()):
        return {snap["id"] for snap in snapshots}
    ordered = sorted(snapshots, key=lambda snap: snap["time"], reverse=True)
    groups = [list(group) for _t, group in itertools.groupby(ordered, key=lambda s: s["time"])]
    kept = set()
    for orders in itertools.product(*(itertools.permutations(group) for group in groups)):
        kept |= restic_apply([snap for group in orders for snap in group], policy, keep_oldest)
    return kept


INSTANTS = [datetime.datetime(2026, 1, 1, 1, tzinfo=UTC) + datetime.timedelta(hours=hours)
            for hours in (0, 5, 20, 30, 24 * 9, 24 * 40)]


@settings(max_examples=300, deadline=None)
@given(picks=st.lists(st.tuples(st.sampled_from(INSTANTS), st.sampled_from(OFFSETS)),
                      min_size=1, max_size=7),
       policy=POLICIES, keep_oldest=st.booleans())
def test_plan_keeps_what_restic_keeps_in_any_order_of_tied_times(picks, policy, keep_oldest):
    """Snapshots at one instant (recorded in different UTC offsets, so their days can
    differ) come in any order restic loads them: the plan keeps what some order keeps."""
    snapshots = snaps([instant.astimezone(offset) for instant, offset in picks])
    plan = retention.plan_retention(snapshots, policy, keep_oldest=keep_oldest)
    assert set(plan["keep"]) == model_keep_any_order(snapshots, policy, keep_oldest)


def test_a_tie_group_too_big_to_follow_keeps_everything_from_there(monkeypatch):
    monkeypatch.setattr(retention, "MAX_STATES", 2)
    when = datetime.datetime(2026, 1, 5, 12, tzinfo=UTC)
    tied = when - datetime.timedelta(days=2)  # January 3 in UTC, January 4 at +14:00
    times = [when, tied, tied, tied.astimezone(OFFSETS[4])] + [
        when - datetime.timedelta(days=day) for day in (3, 4)]
    plan = retention.plan_retention(snaps(times), {"last": 1, "daily": 1})
    assert plan["keep"][0] == "s000" and plan["remove"] == []


FLOOR_NOW = datetime.datetime(2026, 3, 1, 12, tzinfo=UTC)


@settings(max_examples=200, deadline=None)
@given(times=st.lists(st.datetimes(min_value=datetime.datetime(2026, 2, 20),
                                   max_value=datetime.datetime(2026, 3, 2),
                                   timezones=st.sampled_from(OFFSETS)), max_size=12),
       policy=POLICIES, keep_oldest=st.booleans(), hours=st.integers(0, 96),
       last=st.integers(0, 3))
def test_the_floor_only_ever_keeps_more(times, policy, keep_oldest, hours, last):
    """restic's selection, plus everything newer than the floor's moment and the newest
    ``last`` (and what ties with the last of them); nothing else is kept."""
    snapshots = snaps(times)
    newer_than = FLOOR_NOW - datetime.timedelta(hours=hours)
    plan = retention.plan_retention(snapshots, policy, keep_oldest=keep_oldest,
                                    floor={"newer_than": newer_than, "last": last})
    ordered = sorted(snapshots, key=lambda snap: snap["time"], reverse=True)
    newest = {snap["id"] for snap in ordered if last and snap["time"] >= ordered[
        min(last, len(ordered)) - 1]["time"]}
    expected = model_keep_any_order(snapshots, policy, keep_oldest) | newest | {
        snap["id"] for snap in snapshots if snap["time"] > newer_than}
    assert set(plan["keep"]) == expected
    assert sorted(plan["keep"] + plan["remove"]) == sorted(snap["id"] for snap in snapshots)


# --------------------------------------------------------------------------- real restic

REAL_POLICIES = [
    {"last": 1, "daily": 30},
    {"last": 1, "daily": 7, "weekly": 4, "monthly": 3},
    {"last": 1, "daily": 2},
    {"weekly": 5, "yearly": 1},
    {"last": 3, "hourly": 2, "monthly": 12},
]


def _env(tmp_path, zone):
    return dict(os.environ, RESTIC_REPOSITORY=str(tmp_path / ("repo-" + zone.replace("/", "-"))),
                RESTIC_PASSWORD="pw", XDG_CACHE_HOME=str(tmp_path / "cache"), TZ=zone)


def _restic(env, *argv):
    return subprocess.run([RESTIC] + list(argv), env=env, capture_output=True, text=True,
                          check=True, timeout=600).stdout


def forged_repository(tmp_path, zone, wall_times):
    """A real repository with one snapshot per forged local time in ``zone``; its snapshots."""
    env = _env(tmp_path, zone)
    _restic(env, "init")
    cheapen_keys(env["RESTIC_REPOSITORY"], "pw")
    source = tmp_path / "source"
    source.mkdir(exist_ok=True)
    (source / "f").write_text("data")
    # one at a time: restic's backend retries a lock file it reads half-written with a
    # growing backoff, so parallel backups of cheap-key commands stalled for up to 100 s
    for when in wall_times:
        _restic(env, "backup", "-q", "--host", "h", "--time", when.strftime("%Y-%m-%d %H:%M:%S"),
                str(source))
    return env, backup.parse_snapshots(_restic(env, "snapshots", "--json"))


def restic_keeps(env, policy):
    argv = ["forget", "--dry-run", "--json", "--host", "h", "--group-by", "host"]
    for rule, count in policy.items():
        if count:
            argv += ["--keep-%s" % rule, str(count)]
    groups = json.loads(_restic(env, *argv).splitlines()[0])
    return {snap["id"] for group in groups for snap in group["keep"] or []}


@needs_restic
def test_plan_equals_restic_forget_on_103_daily_snapshots(tmp_path):
    start = datetime.datetime(2026, 1, 1, 3)
    env, snapshots = forged_repository(tmp_path, "UTC",
                                       [start + datetime.timedelta(days=day) for day in range(103)])
    assert len(snapshots) == 103
    keep_oldest = retention.keeps_oldest(_restic(env, "version"))
    for policy in REAL_POLICIES:
        plan = retention.plan_retention(snapshots, policy, keep_oldest=keep_oldest)
        assert set(plan["keep"]) == restic_keeps(env, policy), policy
    assert len(retention.plan_retention(snapshots, REAL_POLICIES[0])["keep"]) == 30


@needs_restic
@settings(max_examples=2, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(zone=st.sampled_from(["UTC", "America/New_York", "Asia/Kolkata"]),
       hours=st.lists(st.integers(0, 24 * 100), min_size=2, max_size=10, unique=True))
def test_plan_equals_restic_forget_on_generated_schedules(tmp_path_factory, zone, hours):
    tmp_path = tmp_path_factory.mktemp("schedule")
    start = datetime.datetime(2026, 2, 20)  # spans the US and EU clock changes of March
    env, snapshots = forged_repository(tmp_path, zone, [start + datetime.timedelta(hours=h)
                                                        for h in hours])
    keep_oldest = retention.keeps_oldest(_restic(env, "version"))
    for policy in REAL_POLICIES:
        plan = retention.plan_retention(snapshots, policy, keep_oldest=keep_oldest)
        assert set(plan["keep"]) == restic_keeps(env, policy), (zone, policy)

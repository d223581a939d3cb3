# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""health_resources.py on real /proc readings, and on files in the kernel's exact format.

The machine's own /proc/meminfo is compared with what `free` (procps-ng) shows, its
/proc/stat with /proc/uptime; thresholds the kernel cannot be made to show here are driven
by files written as fs/proc/meminfo.c and fs/proc/stat.c write them (the injected reader).
Hypothesis checks both parsers and the sustained-CPU rule against independent models.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))
sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))

from fake_telegram import telegram_runtime  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import (  # noqa: E402
    health, health_resources)
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    merge_runtime)

TOKEN = "31337:resources-token"
GIB_KB = 1024 * 1024

# fs/proc/meminfo.c: show_val_kb(m, "MemTotal:       ", ...) writes the 16-column label,
# the value in kB right-aligned to 8 columns, then " kB"; the HugePages_ counts have none.
MEMINFO_ORDER = ["MemTotal", "MemFree", "MemAvailable", "Buffers", "Cached", "SwapCached",
                 "Active", "Inactive", "SwapTotal", "SwapFree", "Dirty", "Shmem", "Slab",
                 "CommitLimit", "Committed_AS", "VmallocTotal", "HugePages_Total",
                 "HugePages_Free", "Hugepagesize"]


def kernel_meminfo(values):
    """/proc/meminfo text for ``{name: kB}`` as the kernel prints it."""
    lines = []
    for name in MEMINFO_ORDER:
        if name not in values:
            continue
        if name.startswith("HugePages_"):
            lines.append("%-15s %5d" % (name + ":", values[name]))  # "HugePages_Total:   %5lu"
        else:
            lines.append("%-16s%8d kB" % (name + ":", values[name]))
    return "\n".join(lines) + "\n"


def kernel_stat(fields, btime, cpus=2):
    """/proc/stat text with the aggregate ``cpu`` line of ``fields`` (10 counters or fewer,
    as older kernels print) and the lines around it (fs/proc/stat.c)."""
    head = "cpu  " + " ".join(str(value) for value in fields)
    per_cpu = ["cpu%d %s" % (n, " ".join(str(value // cpus) for value in fields))
               for n in range(cpus)]
    tail = ["intr 123456 " + " ".join(["0"] * 40), "ctxt 987654",
            "btime %d" % btime, "processes 4321", "procs_running 2", "procs_blocked 0",
            "softirq 5555 0 1 2 3 4 5 6 7 8 9"]
    return "\n".join([head] + per_cpu + tail) + "\n"


def _meminfo_file(tmp_path, used_percent, swap_total_kb=0, swap_used_kb=0, name="meminfo"):
    total = 4 * GIB_KB
    available = total - total * used_percent // 100
    path = tmp_path / name
    path.write_text(kernel_meminfo({
        "MemTotal": total, "MemFree": available // 4, "MemAvailable": available,
        "Buffers": 1024, "Cached": available // 2, "SwapTotal": swap_total_kb,
        "SwapFree": swap_total_kb - swap_used_kb, "HugePages_Total": 0, "HugePages_Free": 0,
        "Hugepagesize": 2048}))
    return str(path)


# --------------------------------------------------------------------------- real /proc

def test_memory_on_this_machine_is_what_free_shows():
    free = subprocess.run(["free", "-b"], capture_output=True, text=True, check=True).stdout
    values = health_resources.read_meminfo()
    memory = health_resources.memory_check(values, 80, 90)
    mem = [line.split() for line in free.splitlines() if line.startswith("Mem:")][0]
    total, used, available = int(mem[1]), int(mem[2]), int(mem[6])
    assert memory["total_bytes"] == total
    assert used == total - available  # procps-ng 4: used is total less available
    # read a moment apart: the figures may move a little, not more
    assert abs(memory["used_percent"] - 100.0 * used / total) < 2.0
    swap = [line.split() for line in free.splitlines() if line.startswith("Swap:")][0]
    assert health_resources.swap_check(values, 50, 80)["total_bytes"] == int(swap[1])


def test_the_cpu_counters_of_this_machine_add_up_and_move():
    with open("/proc/uptime") as handle:
        uptime = float(handle.read().split()[0])
    with open("/proc/stat") as handle:
        text = handle.read()
    first = health_resources.parse_proc_stat(text)
    raw = text.splitlines()[0].split()
    assert raw[0] == "cpu" and len(raw) == 11  # this kernel prints all ten columns
    assert first["total"] == sum(int(value) for value in raw[1:9])
    assert abs(first["btime"] - (time.time() - uptime)) < 5
    subprocess.run([sys.executable, "-c", "sum(range(3_000_000))"], check=True)
    second = health_resources.read_proc_stat()
    assert second["total"] > first["total"] and second["busy"] > first["busy"]
    history = health_resources.update_cpu_history({}, first, 1000.0, 300)
    history = health_resources.update_cpu_history(json.loads(json.dumps(history)), second,
                                                  1300.0, 300)
    result = health_resources.judge_cpu(history, 80, 300)
    assert 0 <= result["busy_percent"] <= 100 and result["measured_seconds"] == 300


def test_the_job_reads_the_real_proc_files(tmp_path):
    config = health.validate_config({})
    runtime = merge_runtime({"host_label": "web1", "state_dir": str(tmp_path)})
    summary = health.run_health_check(config, runtime, notify=lambda *a, **k: {"sent": True},
                                      now=1000.0)
    by_key = {r["key"]: r for r in summary["results"]}
    assert set(by_key) == {"memory:ram", "memory:swap", "cpu:busy"}
    assert by_key["cpu:busy"]["status"] == "measuring"
    saved = json.loads((tmp_path / "health.json").read_text())
    assert saved["cpu"]["btime"] == health_resources.read_proc_stat()["btime"]
    lines = health.format_check_lines(summary)
    assert any(line.startswith("ok       cpu ") and "measuring: 0 of 300 s measured" in line
               for line in lines), lines


# --------------------------------------------------------------------------- thresholds

@pytest.mark.parametrize("used, level, problem", [
    (79, "ok", ""),
    (80, "warning", "80% used (warning at 80%), 819.2 MiB available of 4.0 GiB"),
    (89, "warning", "89% used (warning at 80%), 450.6 MiB available of 4.0 GiB"),
    (90, "critical", "90% used (critical at 90%), 409.6 MiB available of 4.0 GiB"),
], ids=["79", "80", "89", "90"])
def test_memory_levels_from_a_kernel_format_file(tmp_path, used, level, problem):
    result = health_resources.memory_check(
        health_resources.read_meminfo(_meminfo_file(tmp_path, used)), 80, 90)
    assert (result["level"], result["problem"]) == (level, problem)


@pytest.mark.parametrize("total, used, level, status", [
    (0, 0, "ok", "none"),
    (2 * GIB_KB, GIB_KB // 2, "ok", "25% used"),
    (2 * GIB_KB, GIB_KB, "warning", "50% used"),
    (2 * GIB_KB, GIB_KB * 17 // 10, "critical", "85% used"),
], ids=["no-swap", "quarter", "half", "most"])
def test_swap_levels(tmp_path, total, used, level, status):
    result = health_resources.swap_check(
        health_resources.read_meminfo(_meminfo_file(tmp_path, 10, total, used)), 50, 80)
    assert (result["level"], result["status"]) == (level, status)


def test_memory_alert_after_two_runs_then_recovery_through_the_bot_api(tmp_path):
    config = health.validate_config({})
    high, low = _meminfo_file(tmp_path, 93, name="high"), _meminfo_file(tmp_path, 40, name="low")
    stat = tmp_path / "stat"
    stat.write_text(kernel_stat([100, 0, 100, 800, 0, 0, 0, 0, 0, 0], 1_699_000_000))
    with telegram_runtime(tmp_path, TOKEN) as (runtime, fake):
        for minute, meminfo in ((0, high), (5, high), (10, high), (15, low)):
            health.run_health_check(config, runtime, now=1_700_000_000 + minute * 60,
                                    meminfo_path=meminfo, stat_path=str(stat))
        texts = [m["text"] for m in fake.messages]
    assert texts == [
        "🚨 web1 CRITICAL: health check failed (memory: 93% used (critical at 90%), "
        "286.7 MiB available of 4.0 GiB), for 5 min",
        "✅ web1 recovered: memory is back after 15 min"]


def _stat_at(tmp_path, busy, idle, btime=1_699_000_000):
    path = tmp_path / "stat"
    # busy split over user, system and steal; idle over idle and iowait
    path.write_text(kernel_stat([busy // 2, 0, busy - busy // 2 - busy // 10, idle - idle // 5,
                                 idle // 5, 0, 0, busy // 10, 0, 0], btime))
    return str(path)


def test_cpu_busy_for_the_whole_window_warns_one_busy_interval_does_not(tmp_path):
    """Runs every 5 minutes: 95% busy, then 95%, 95%, then a quiet 5 minutes. The first run
    only measures; each later run judges the last 5 minutes."""
    config = health.validate_config({"failures_before_alert": 2})
    meminfo = _meminfo_file(tmp_path, 10)
    runtime = merge_runtime({"host_label": "web1", "state_dir": str(tmp_path / "state")})
    sent = []

    def run(percents, one_cpu_idle):
        """Each run's CPU verdict; 2 CPUs at 100 ticks/s over 5 minutes: 60000 ticks, of which
        ``percents`` are busy (of one CPU only when ``one_cpu_idle``)."""
        seen, busy, idle, share = [], 0, 0, 30000 if one_cpu_idle else 60000
        for minute, percent in zip((0, 5, 10, 15, 20), percents):
            busy += share * percent // 100
            idle += share * (100 - percent) // 100 + (60000 - share)
            summary = health.run_health_check(
                config, runtime, now=1_700_000_000 + minute * 60, meminfo_path=meminfo,
                stat_path=_stat_at(tmp_path, busy, idle),
                notify=lambda rt, key, level, text, now=None: sent.append((key, level, text)) or {
                    "sent": True})
            cpu = [r for r in summary["results"] if r["key"] == "cpu:busy"][0]
            seen.append((cpu["level"], cpu["status"]))
        return seen

    assert run((0, 95, 95, 95, 10), one_cpu_idle=True) == [
        ("ok", "measuring"), ("ok", "48% busy"), ("ok", "48% busy"), ("ok", "48% busy"), ("ok", "5% busy")]
    (tmp_path / "state" / "health.json").unlink()
    seen = run((0, 95, 95, 95, 10), one_cpu_idle=False)
    assert seen == [("ok", "measuring"), ("warning", "95% busy"), ("warning", "95% busy"),
                    ("warning", "95% busy"), ("ok", "10% busy")]
    assert sent == [
        ("health:cpu:busy", "warning", "health check degraded (cpu: 95% busy over the last "
                                       "5 min, above 80% all along), for 5 min"),
        ("health:cpu:busy", "warning", "health check degraded (cpu: 95% busy over the last "
                                       "5 min, above 80% all along), for 10 min"),
        ("health:cpu:busy", "ok", "cpu is back after 15 min")]


def test_cpu_with_a_run_every_minute_needs_every_minute_busy(tmp_path):
    samples = {}
    busy = idle = 0
    history = {}
    levels = []
    for minute, percent in enumerate([0, 90, 90, 90, 90, 50, 90, 90, 90, 90, 90]):
        busy += 6000 * percent // 100
        idle += 6000 * (100 - percent) // 100
        reading = health_resources.parse_proc_stat(kernel_stat(
            [busy, 0, 0, idle, 0, 0, 0, 0, 0, 0], 1_699_000_000))
        history = health_resources.update_cpu_history(history, reading, minute * 60.0, 300)
        samples[minute] = health_resources.judge_cpu(history, 80, 300)
        levels.append(samples[minute]["level"])
    # covered from minute 5 on; the quiet minute 5 spoils every window that reaches it
    assert levels == ["ok"] * 5 + ["ok"] * 5 + ["warning"]
    assert samples[4]["status"] == "measuring"
    assert samples[10]["problem"] == "90% busy over the last 5 min, above 80% all along"


@pytest.mark.parametrize("busy, level", [(80, "ok"), (81, "warning")], ids=["80", "81"])
def test_cpu_must_be_above_the_threshold_not_at_it(busy, level):
    history = {}
    for now, ticks in ((0.0, 0), (300.0, 100)):
        reading = health_resources.parse_proc_stat(kernel_stat(
            [busy * ticks // 100, 0, 0, (100 - busy) * ticks // 100], 1000))
        history = health_resources.update_cpu_history(history, reading, now, 300)
    assert health_resources.judge_cpu(history, 80, 300)["level"] == level


def test_a_reboot_starts_the_cpu_history_over():
    first = health_resources.parse_proc_stat(kernel_stat([900, 0, 0, 100], 1000))
    history = health_resources.update_cpu_history({}, first, 0.0, 300)
    rebooted = health_resources.parse_proc_stat(kernel_stat([90, 0, 0, 10], 2000))
    history = health_resources.update_cpu_history(history, rebooted, 300.0, 300)
    assert history == {"btime": 2000, "samples": [[300.0, 90, 100]]}
    assert health_resources.judge_cpu(history, 80, 300)["status"] == "measuring"


@pytest.mark.parametrize("data, message", [
    ({"memory_warning_percent": 95}, "memory_warning_percent (95) must be below "
                                     "memory_critical_percent (90)"),
    ({"swap_critical_percent": 120}, "swap_critical_percent must be a percentage above 0 and "
                                     "at most 100, got 120"),
    ({"cpu_warning_percent": 100}, "cpu_warning_percent must be a percentage between 0 and 100"),
    ({"cpu_window_seconds": 0}, "cpu_window_seconds must be a positive number"),
    ({"resource_checks": "yes"}, "resource_checks must be true or false"),
], ids=["order", "range", "cpu-range", "window", "flag"])
def test_bad_resource_settings_are_refused(data, message):
    with pytest.raises(OpsError) as caught:
        health.validate_config(data)
    assert message in caught.value.message


def test_resource_checks_off_reads_nothing(tmp_path):
    config = health.validate_config({"resource_checks": False})
    assert health.run_host_checks(config, {}, 1000.0, meminfo_path="/nonexistent") == ([], {})


# --------------------------------------------------------------------------- containers

@pytest.mark.parametrize("memory_stats, figures", [
    ({"usage": 30 << 20, "limit": 32 << 20, "stats": {"total_inactive_file": 2 << 20}},
     (28 << 20, 32 << 20)),
    ({"usage": 30 << 20, "limit": 32 << 20, "stats": {"inactive_file": 4 << 20}},
     (26 << 20, 32 << 20)),
    ({"usage": 30 << 20, "limit": 32 << 20, "stats": {"total_inactive_file": 40 << 20}},
     (30 << 20, 32 << 20)),
    ({"usage": 30 << 20, "limit": 32 << 20}, (30 << 20, 32 << 20)),
    ({}, None),
], ids=["cgroup-v1", "cgroup-v2", "cache-above-usage", "no-stats", "stopped"])
def test_container_memory_is_computed_as_docker_stats_does(memory_stats, figures):
    assert health_resources.container_memory_usage({"memory_stats": memory_stats}) == figures


# --------------------------------------------------------------------------- properties

_NAMES = st.sampled_from([n for n in MEMINFO_ORDER if not n.startswith("HugePages_")])


@settings(max_examples=300, deadline=None)
@given(values=st.dictionaries(_NAMES, st.integers(0, 2 ** 44), min_size=1),
       total=st.integers(1, 2 ** 44), available=st.integers(0, 2 ** 44),
       huge=st.integers(0, 10 ** 6))
def test_meminfo_parser_and_used_percent_match_a_model(values, total, available, huge):
    available = min(available, total)
    values.update(MemTotal=total, MemAvailable=available, HugePages_Total=huge)
    parsed = health_resources.parse_meminfo(kernel_meminfo(values))
    model = {name: kb * (1 if name.startswith("HugePages_") else 1024)
             for name, kb in values.items()}
    assert parsed == model
    used = Fraction(100 * (total - available), total)
    assert abs(health_resources.memory_check(parsed, 80, 90)["used_percent"] - float(used)) <= 0.05
    assert health_resources.memory_check(parsed, 80, 90)["level"] == (
        "critical" if round(float(used), 1) >= 90 else "warning" if round(float(used), 1) >= 80
        else "ok")


@settings(max_examples=300, deadline=None)
@given(fields=st.lists(st.integers(0, 2 ** 50), min_size=4, max_size=10),
       btime=st.integers(0, 2 ** 32), cpus=st.integers(1, 64))
def test_proc_stat_parser_matches_a_model(fields, btime, cpus):
    parsed = health_resources.parse_proc_stat(kernel_stat(fields, btime, cpus))
    padded = fields + [0] * (10 - len(fields))
    user, nice, system, idle, iowait, irq, softirq, steal = padded[:8]
    assert parsed["busy"] == user + nice + system + irq + softirq + steal  # guest is in user
    assert parsed["total"] == parsed["busy"] + idle + iowait
    assert parsed["btime"] == btime


_TICKS = st.one_of(st.integers(0, 10), st.integers(0, 5000))  # small ones hit the threshold
_RUN = st.tuples(st.integers(1, 30),            # gap to the run before, in 1/10 windows
                 _TICKS,                        # busy ticks in that gap
                 _TICKS,                        # idle ticks in that gap
                 st.booleans())                 # the host rebooted in that gap


@settings(max_examples=400, deadline=None)
@given(window_tenths=st.sampled_from([6, 30, 60]), threshold=st.integers(1, 99),
       runs=st.lists(_RUN, min_size=1, max_size=25))
def test_sustained_cpu_matches_a_model_of_the_intervals(window_tenths, threshold, runs):
    """The model keeps each interval's true busy share; the code sees only cumulative
    /proc/stat counters, written as the kernel does and carried through JSON state."""
    window = window_tenths * 10
    now, btime, busy_total, idle_total = 0, 1_000, 0, 0
    history = {}
    intervals = []  # (start, end, Fraction busy share) since the last reboot
    previous = False
    for gap, busy, idle, rebooted in runs:
        start = now
        now += gap * window // 10
        if busy + idle == 0:
            idle = 1
        if rebooted:
            btime += now
            busy_total, idle_total, intervals = busy, idle, []
        else:
            busy_total += busy
            idle_total += idle
            if previous:
                intervals.append((start, now, Fraction(busy, busy + idle)))
        previous = True
        reading = health_resources.parse_proc_stat(kernel_stat(
            [busy_total, 0, 0, idle_total, 0, 0, 0, 0, 0, 0], btime))
        history = health_resources.update_cpu_history(json.loads(json.dumps(history)),
                                                      reading, float(now), window)
        got = health_resources.judge_cpu(history, threshold, window)
        # the model: samples kept for two windows; the window (minus a tenth) must be
        # covered by them, and every interval reaching into it busier than the threshold
        edge = now - window + window // 10
        kept = [iv for iv in intervals if iv[0] >= now - 2 * window]
        covered = any(start <= edge for start, _end, _share in kept)
        inside = [share for _start, end, share in kept if end > edge]
        sustained = covered and all(share * 100 > threshold for share in inside)
        assert got["sustained"] == sustained, (got, kept, edge)
        assert got["level"] == ("warning" if sustained else "ok")
        assert (got["status"] == "measuring") == (not covered)

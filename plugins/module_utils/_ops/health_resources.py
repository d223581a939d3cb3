# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Host and container resources for the health monitor: memory, swap, CPU, container memory.

- Memory: ``/proc/meminfo``, used = MemTotal - MemAvailable (what ``free`` shows as used
  since procps-ng 4, and its ``available`` column): page cache the kernel can drop is not
  counted as used. Swap: SwapTotal - SwapFree.
- CPU: ``/proc/stat``'s first ``cpu`` line. One reading says nothing (the counters run
  since boot), so each run keeps a sample ``[time, busy, total]`` in the monitor's state
  and the CPU is judged on the deltas between samples: *sustained* means every interval
  measured over the last window (the runbook's "> 80% for 5 minutes") was busier than the
  threshold. Busy is everything but ``idle`` and ``iowait`` (``steal`` counts as busy: the
  CPU is not ours then); ``guest``/``guest_nice`` are already inside ``user``/``nice``.
- Containers: the Docker API's stats, usage as ``docker stats`` computes it (the page
  cache the kernel may reclaim, ``inactive_file``, left out), against the container's own
  limit (``HostConfig.Memory``); containers without a limit are not judged.

Functions take text or plain data and return plain data; readers take a path, so a test
can pass a file written in the kernel's format. The pieces every health check shares are
here too: its result (``check_result``), its level against a warning and a critical
threshold (``level_for``), numbers in its messages (``number_text``) and its config entry
(``checked_entry``).
"""

from __future__ import annotations

import operator

from .errors import OpsError
from .units import format_bytes

MEMINFO_PATH = "/proc/meminfo"
STAT_PATH = "/proc/stat"
# /proc/stat's cpu columns, in the kernel's order (fs/proc/stat.c).
CPU_FIELDS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal", "guest",
              "guest_nice")
# A sample a tenth of the window younger than the window still anchors it: cron starts a
# */5 job a second or two late or early, so the previous run is 299 to 301 s old.
CPU_WINDOW_SLACK_DIVISOR = 10
CPU_MAX_SAMPLES = 120


# --------------------------------------------------------------------------- parsers

def parse_meminfo(text):
    """``/proc/meminfo`` as ``{name: value}``: ``kB`` values in bytes, counts as they are.

    Raises ``ValueError`` when ``MemTotal`` is missing or a line is not ``Name: number``.
    """
    values = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        name, sep, rest = line.partition(":")
        parts = rest.split()
        if not sep or not parts or len(parts) > 2 or (len(parts) == 2 and parts[1] != "kB"):
            raise ValueError("not a /proc/meminfo line: %r" % line[:80])
        values[name.strip()] = int(parts[0]) * (1024 if len(parts) == 2 else 1)
    if "MemTotal" not in values:
        raise ValueError("no MemTotal in /proc/meminfo")
    return values


def parse_proc_stat(text):
    """The aggregate ``cpu`` line and ``btime`` of ``/proc/stat``.

    Returns ``{"fields": {name: ticks}, "busy": ticks, "total": ticks, "btime": epoch or
    None}``; columns an old kernel does not have count as 0. Raises ``ValueError``
    without a ``cpu`` line.
    """
    fields = None
    btime = None
    for line in text.splitlines():
        if line.startswith("cpu "):
            numbers = [int(part) for part in line.split()[1:]]
            numbers += [0] * (len(CPU_FIELDS) - len(numbers))
            fields = dict(zip(CPU_FIELDS, numbers))
        elif line.startswith("btime "):
            btime = int(line.split()[1])
    if fields is None:
        raise ValueError("no cpu line in /proc/stat")
    idle = fields["idle"] + fields["iowait"]
    busy = sum(fields[name] for name in CPU_FIELDS[:8]) - idle
    return {"fields": fields, "busy": busy, "total": busy + idle, "btime": btime}


def _read(path):
    with open(path, encoding="ascii") as handle:
        return handle.read()


def read_meminfo(path=MEMINFO_PATH):
    """``parse_meminfo`` of the file at ``path``."""
    return parse_meminfo(_read(path))


def read_proc_stat(path=STAT_PATH):
    """``parse_proc_stat`` of the file at ``path``."""
    return parse_proc_stat(_read(path))


# --------------------------------------------------------------------------- shared by every check

def check_result(key, kind, name, target, level="ok", problem="", **figures):
    """A health result: ``{"key", "kind", "name", "target", "level", "problem"}`` and the
    check's own ``figures``."""
    return dict(key=key, kind=kind, name=name, target=target, level=level, problem=problem, **figures)


def level_for(value, warning, critical, crossed=operator.ge):
    """``(level, limit)``: ``("critical", critical)`` when ``crossed(value, critical)``, else
    ``("warning", warning)`` when ``crossed(value, warning)``, else ``("ok", None)``; a
    ``None`` threshold is never crossed (default: at or above)."""
    for level, limit in (("critical", critical), ("warning", warning)):
        if limit is not None and crossed(value, limit):
            return level, limit
    return "ok", None


def number_text(value):
    """A number in a message: ``%g`` for a float, an int as it is."""
    return ("%g" % value) if isinstance(value, float) else str(value)


def checked_entry(problems, defaults, raw):
    """A config entry: ``raw`` over its ``defaults``; ``OpsError`` listing ``problems`` when
    there are any."""
    if problems:
        raise OpsError("; ".join(problems))
    entry = dict(defaults)
    entry.update(raw)
    return entry


# --------------------------------------------------------------------------- levels

def _percent(part, whole):
    return round(100.0 * part / whole, 1) if whole else 0.0


def _used_result(names, used, warning, critical, status, detail, **figures):
    """A health result for a used percentage: ``names`` is ``(key, kind, name, target)``;
    the level by ``level_for`` (``figures["level"]`` when given), the problem names the limit."""
    level, limit = level_for(used, warning, critical)
    level = figures.pop("level", None) or level
    problem = "" if level == "ok" else "%.0f%% used (%s at %g%%), %s" % (used, level, limit, detail)
    return check_result(*names, level=level, problem=problem, used_percent=used, status=status, detail=detail,
                        **figures)


def memory_check(meminfo, warning, critical):
    """The host's memory as a health result (key ``memory:ram``).

    ``meminfo``: ``parse_meminfo`` output. Used = MemTotal - MemAvailable (MemFree on
    kernels before 3.14, which lack MemAvailable).
    """
    total = meminfo["MemTotal"]
    available = meminfo.get("MemAvailable", meminfo.get("MemFree", 0))
    used = _percent(total - available, total)
    return _used_result(("memory:ram", "memory", "memory", "ram"), used, warning, critical,
                        "%.0f%% used" % used, "%s available of %s" % (format_bytes(available), format_bytes(total)),
                        available_bytes=available, total_bytes=total)


def swap_check(meminfo, warning, critical):
    """Swap as a health result (key ``memory:swap``); a host without swap is ok."""
    total = meminfo.get("SwapTotal", 0)
    used_bytes = max(0, total - meminfo.get("SwapFree", 0))
    used = _percent(used_bytes, total)
    detail = ("%s used of %s" % (format_bytes(used_bytes), format_bytes(total)) if total
              else "no swap configured")
    return _used_result(("memory:swap", "memory", "swap", "swap"), used, warning, critical,
                        ("%.0f%% used" % used) if total else "none", detail,
                        level=None if total else "ok", used_bytes=used_bytes, total_bytes=total)


# --------------------------------------------------------------------------- CPU over time

def update_cpu_history(history, reading, now, window_seconds):
    """The CPU samples to judge and keep: last run's ``history`` plus this ``reading``.

    ``history``: ``{"btime", "samples": [[time, busy, total], ...]}`` (or ``{}``);
    ``reading``: ``parse_proc_stat`` output. The history starts over after a reboot
    (another ``btime``, or counters that went down) or when the clock went back (a sample
    newer than ``now``). Samples older than twice the window are dropped.
    Returns the new history (the reading appended).
    """
    samples = []
    if isinstance(history, dict) and history.get("btime") == reading["btime"]:
        for item in history.get("samples") or []:
            try:
                when, busy, total = float(item[0]), int(item[1]), int(item[2])
            except (TypeError, ValueError, IndexError):
                continue
            samples.append([when, busy, total])
    samples.sort(key=lambda item: item[0])
    if samples and (samples[-1][0] > now or samples[-1][1] > reading["busy"]
                    or samples[-1][2] > reading["total"]):
        samples = []
    samples = [item for item in samples if item[0] >= now - 2 * window_seconds]
    samples.append([now, reading["busy"], reading["total"]])
    return {"btime": reading["btime"], "samples": samples[-CPU_MAX_SAMPLES:]}


def judge_cpu(history, threshold, window_seconds):
    """Whether the CPU was busier than ``threshold`` percent over the whole last window.

    ``history``: from ``update_cpu_history`` (this run's sample last). The window is
    covered from the newest sample at least ``window_seconds`` (less the 10% slack) old;
    sustained means every interval from there on was busier than the threshold.
    Returns a health result (key ``cpu:busy``) with ``busy_percent`` (the average over the
    covered window), ``measured_seconds`` and ``sustained``; a warning when sustained,
    ``ok`` while the window is not covered yet (``measuring``).
    """
    samples = history["samples"]
    now = samples[-1][0]
    edge = now - window_seconds + window_seconds / float(CPU_WINDOW_SLACK_DIVISOR)
    anchors = [index for index, item in enumerate(samples[:-1]) if item[0] <= edge]
    result = check_result("cpu:busy", "cpu", "cpu", "cpu", busy_percent=None, measured_seconds=0,
                          sustained=False)
    if not anchors:
        measured = now - samples[0][0]
        result.update(status="measuring", measured_seconds=round(measured),
                      detail="%d of %d s measured" % (measured, window_seconds))
        return result
    start = anchors[-1]
    rates = []
    for before, after in zip(samples[start:], samples[start + 1:]):
        total = after[2] - before[2]
        if total > 0:
            rates.append(100.0 * (after[1] - before[1]) / total)
    total = samples[-1][2] - samples[start][2]
    average = round(100.0 * (samples[-1][1] - samples[start][1]) / total, 1) if total else 0.0
    measured = now - samples[start][0]
    sustained = bool(rates) and all(rate > threshold for rate in rates)
    span = "%d min" % round(measured / 60.0) if measured >= 60 else "%d s" % measured
    result.update(busy_percent=average, measured_seconds=round(measured), sustained=sustained,
                  status="%.0f%% busy" % average,
                  detail="%.0f%% busy on average over the last %s" % (average, span))
    if sustained:
        result["level"] = "warning"
        result["problem"] = "%.0f%% busy over the last %s, above %g%% all along" % (
            average, span, threshold)
    return result


# --------------------------------------------------------------------------- containers

def container_memory_usage(stats):
    """``(usage_bytes, limit_bytes)`` from one Docker stats answer, as ``docker stats``
    computes them: usage less ``inactive_file`` (cgroup v2) or ``total_inactive_file``
    (cgroup v1) when smaller. ``None`` when the answer has no memory figures (a container
    that stopped meanwhile)."""
    memory = stats.get("memory_stats") or {}
    usage, limit = memory.get("usage"), memory.get("limit")
    if not isinstance(usage, int) or not isinstance(limit, int) or not limit:
        return None
    inner = memory.get("stats") or {}
    for name in ("total_inactive_file", "inactive_file"):
        if inner.get(name, usage) < usage:
            return usage - inner[name], limit
    return usage, limit


def container_memory_check(key, name, usage, limit, warning, critical):
    """One container's memory against its limit as a health result (key
    ``container-memory:<project>/<service>``)."""
    used = _percent(usage, limit)
    return _used_result((key, "container-memory", "%s memory" % name, name), used, warning, critical,
                        "%.0f%% of limit" % used, "%s of its %s limit" % (format_bytes(usage), format_bytes(limit)),
                        usage_bytes=usage, limit_bytes=limit)


def read_container_stats(client, container_id):
    """One stats answer for a container, without waiting for a second CPU sample
    (``one-shot``, API 1.41+): through the SDK's ``one_shot`` where it has it (docker-py
    6+), else by the same request made by hand (Debian 12's python3-docker 5.0 would wait
    a second or two per container for the CPU figures nobody reads here)."""
    try:
        return client.api.stats(container_id, stream=False, one_shot=True)
    except TypeError:
        return read_container_stats_raw(client, container_id)


def read_container_stats_raw(client, container_id):
    """``GET /containers/ID/stats?stream=false&one-shot=true`` through the SDK's own
    session (the way its ``stats`` makes the request)."""
    api = client.api
    url = api._url("/containers/{0}/stats", container_id)  # pylint: disable=protected-access
    response = api._get(url, params={"stream": False, "one-shot": True})  # pylint: disable=protected-access
    return api._result(response, True)  # pylint: disable=protected-access

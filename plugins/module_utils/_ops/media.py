# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Media growth tracking and the photo-cleanup activation gate.

Control flow:

* ``record_baseline`` measures the media directory (``disk.measure_tree``: du -s
  semantics) and appends one JSON line ``{"ts", "path", "bytes", "files"}`` to the
  baseline file (``state.append_jsonl``).
* ``evaluate_gate`` gathers the inputs (a fresh measurement, the baselines, the
  record count, the disk usage and the disk-check history) and hands them to
  ``decide_gate``, a pure function that returns ``{activate, triggers, media_bytes,
  media_files}``. Each trigger is ``{name, value, limit, hit, unit, detail}``.

The runbook's activation triggers (any one fires the gate):

``size``     media directory bytes > ``size_limit`` (default 500MB)
``growth``   bytes per week > ``growth_limit_per_week`` (default 100MB), from the
             baselines: the oldest sample within four weeks of the newest one, or,
             when there is none (monthly samples), the newest older sample; samples
             less than a day before the newest are never the base. A shrinking
             directory gives a negative rate (not a hit); fewer than two usable
             samples make the trigger say so (value ``None``) instead of guessing.
``records``  application record count > ``record_limit`` (default 1000); skipped
             when neither a count nor a command is given.
``disk``     the disk holding ``disk_path`` is at or above ``disk_limit_percent``
             (default 70) now, or the disk-check history's trend reaches it within
             ``disk_trend_days`` (default 90).
"""

from __future__ import annotations

import datetime
import os
import re
from decimal import Decimal, InvalidOperation

from .errors import OpsError
from .options import check_config
from .runner import run_command
from .state import append_jsonl, read_json, read_jsonl
from .timestamps import iso_z, utc
from .units import plural

DEFAULT_BASELINE_FILE = "/var/lib/runbook-ops/media-baseline.jsonl"
DEFAULT_DISK_HISTORY_FILE = "/var/lib/runbook-ops/disk-history.jsonl"
DEFAULT_SIZE_LIMIT = "500MB"
DEFAULT_GROWTH_LIMIT_PER_WEEK = "100MB"
DEFAULT_RECORD_LIMIT = 1000
DEFAULT_DISK_PATH = "/"
DEFAULT_DISK_LIMIT_PERCENT = 70
DEFAULT_DISK_TREND_DAYS = 90
# The gate's options, declared once (argument-spec style): the media_cleanup_gate module's
# argument_spec is built from this table, and a unit test holds the media_cleanup role's
# media_cleanup_<name> variables to it.
GATE_OPTIONS = {
    "media_path": {"type": "path", "required": True},
    "size_limit": {"type": "str", "default": DEFAULT_SIZE_LIMIT},
    "growth_limit_per_week": {"type": "str", "default": DEFAULT_GROWTH_LIMIT_PER_WEEK},
    "baseline_file": {"type": "path", "default": DEFAULT_BASELINE_FILE},
    "record_count": {"type": "int", "only": "module"},
    "record_count_command": {"type": "raw"},
    "record_count_timeout": {"type": "int", "default": 120},
    "record_limit": {"type": "int", "default": DEFAULT_RECORD_LIMIT},
    "chdir": {"type": "path"},
    "disk_path": {"type": "path", "default": DEFAULT_DISK_PATH},
    "disk_limit_percent": {"type": "int", "default": DEFAULT_DISK_LIMIT_PERCENT},
    "disk_trend_days": {"type": "int", "default": DEFAULT_DISK_TREND_DAYS},
    "disk_history_file": {"type": "path", "default": DEFAULT_DISK_HISTORY_FILE},
}
GROWTH_WINDOW_DAYS = 28
MIN_GROWTH_SPAN_SECONDS = 86400
WEEK_SECONDS = 7 * 86400

_UNITS = {
    "B": 1,
    "kB": 10 ** 3, "KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "TB": 10 ** 12,
    "KiB": 2 ** 10, "MiB": 2 ** 20, "GiB": 2 ** 30, "TiB": 2 ** 40,
}
_SIZE_RE = re.compile(r"^\s*(?P<num>[0-9]+(?:\.[0-9]+)?)\s*(?P<unit>[A-Za-z]*)\s*$")
_UNITS_TEXT = "B, kB/KB, MB, GB, TB (powers of 1000) or KiB, MiB, GiB, TiB (powers of 1024)"


# ---------------------------------------------------------------------------- sizes


def parse_size(value, name="size"):
    """Return the number of bytes in ``value``: an int, or a string like ``500MB``.

    Decimal units are powers of 1000 (``MB`` = 10^6), binary units powers of 1024
    (``MiB`` = 2^20); a bare number is bytes. Units are case-sensitive apart from
    ``kB``/``KB`` (``mb`` would be millibits). Fractions are allowed with a unit and
    rounded down to whole bytes. Raises ``OpsError`` naming ``name`` for anything else
    (negative numbers, unknown units, fractional bytes, booleans).
    """
    if isinstance(value, bool):
        raise OpsError("%s: %r is not a size; use a number of bytes or e.g. 500MB, 1.5GiB"
                       % (name, value))
    if isinstance(value, int):
        if value < 0:
            raise OpsError("%s: %d is negative; sizes are 0 or more bytes" % (name, value))
        return value
    if not isinstance(value, str):
        raise OpsError("%s: %r is not a size; use a number of bytes or e.g. 500MB, 1.5GiB"
                       % (name, value))
    match = _SIZE_RE.match(value)
    if not match:
        raise OpsError("%s: %r is not a size; write a number and a unit, e.g. 500MB or "
                       "1.5GiB (units: %s)" % (name, value, _UNITS_TEXT))
    unit = match.group("unit") or "B"
    if unit not in _UNITS:
        raise OpsError("%s: unknown unit %r in %r; use %s" % (name, unit, value, _UNITS_TEXT))
    try:
        number = Decimal(match.group("num"))
    except InvalidOperation:  # pragma: no cover - the regex only lets digits through
        raise OpsError("%s: %r is not a number" % (name, value))
    if unit == "B" and number != number.to_integral_value():
        raise OpsError("%s: %r has a fraction of a byte; give whole bytes or a unit"
                       % (name, value))
    return int(number * _UNITS[unit])


def format_size(num_bytes):
    """Return ``num_bytes`` as a short human string in decimal units (``47.0 MB``)."""
    if num_bytes is None:
        return "n/a"
    sign = "-" if num_bytes < 0 else ""
    value = float(abs(num_bytes))
    for unit in ("B", "kB", "MB", "GB"):
        if value < 1000:
            return "%s%d %s" % (sign, value, unit) if unit == "B" else "%s%.1f %s" % (
                sign, value, unit)
        value /= 1000.0
    return "%s%.1f TB" % (sign, value)


# ---------------------------------------------------------------------------- time


def utc_now():
    """Return the current time as an aware UTC datetime (whole seconds)."""
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


# ---------------------------------------------------------------------------- baselines


def measure_media(media_path, timeout=None):
    """Measure ``media_path`` with ``disk.measure_tree`` (du -s bytes, file count).

    Returns ``{"path", "bytes", "files", "partial", "unreadable"}`` (``unreadable``: how
    many entries could not be read). Raises ``OpsError``
    when the path is missing or not a directory.
    """
    from .disk import measure_tree

    path = os.path.abspath(media_path)
    if not os.path.isdir(path):
        raise OpsError("media_path %s does not exist or is not a directory; set the directory "
                       "the application stores its uploads in" % path)
    tree = measure_tree(path, one_file_system=True, timeout=timeout)
    return {
        "path": path,
        "bytes": int(tree["bytes"]),
        "files": int(tree["files"]),
        "partial": bool(tree.get("partial")),
        "unreadable": len(tree.get("unreadable") or ()),
    }


def make_baseline_sample(measurement, now=None):
    """Return the baseline line for a measurement: ``{"ts", "path", "bytes", "files"}``.

    A measurement that missed unreadable entries gets ``"partial": true`` so the growth
    rate can leave it out.
    """
    sample = {
        "ts": iso_z(now or utc_now()),
        "path": measurement["path"],
        "bytes": measurement["bytes"],
        "files": measurement["files"],
    }
    if measurement.get("partial"):
        sample["partial"] = True
    return sample


def record_baseline(media_path, baseline_file=DEFAULT_BASELINE_FILE, now=None, timeout=None,
                    dry_run=False):
    """Measure ``media_path`` and append the sample to ``baseline_file``.

    Returns ``{"sample", "written", "partial", "unreadable", "growth"}`` where ``growth``
    is ``growth_per_week`` over the baselines including the new sample. ``written`` is
    False in ``dry_run`` and when the append failed (full disk): the caller reports it.
    """
    measurement = measure_media(media_path, timeout=timeout)
    sample = make_baseline_sample(measurement, now=now)
    written = False
    if not dry_run:
        parent = os.path.dirname(os.path.abspath(baseline_file))
        if parent and not os.path.isdir(parent):
            os.makedirs(parent, mode=0o755, exist_ok=True)
        written = bool(append_jsonl(baseline_file, sample))
    samples = read_baselines(baseline_file, sample["path"])
    if not written:
        samples.append(sample)
    return {
        "sample": sample,
        "written": written,
        "partial": measurement["partial"],
        "unreadable": measurement["unreadable"],
        "growth": growth_per_week(samples),
    }


def read_baselines(baseline_file, media_path=None):
    """Return the usable baseline samples of ``baseline_file``, oldest first.

    A missing file is no samples. Lines without a parseable ``ts`` or an integer
    ``bytes`` are skipped; with ``media_path`` only that directory's samples are kept
    (the file can hold several directories, or an old path after a move).
    """
    if not os.path.exists(baseline_file):
        return []
    wanted = os.path.abspath(media_path) if media_path else None
    samples = []
    for record in read_jsonl(baseline_file) or []:
        if not isinstance(record, dict):
            continue
        if wanted is not None and record.get("path") not in (None, wanted):
            continue
        samples.append(record)
    return _usable_samples(samples)


def _usable_samples(samples):
    usable = []
    for record in samples:
        moment = utc(record.get("ts"))
        size = record.get("bytes")
        if moment is None or isinstance(size, bool) or not isinstance(size, int):
            continue
        usable.append((moment, record))
    usable.sort(key=lambda item: item[0])
    return [record for _moment, record in usable]


def growth_per_week(samples, window_days=GROWTH_WINDOW_DAYS,
                    min_span_seconds=MIN_GROWTH_SPAN_SECONDS):
    """Return the media growth rate from baseline ``samples`` (any order).

    The newest sample is compared with a base: the oldest sample within ``window_days``
    of it, else the newest sample before that window (a month gap is fine: the rate is
    per elapsed time). Samples less than ``min_span_seconds`` before the newest one and
    ``partial`` samples are never used. Returns ``{"status": "ok", "bytes_per_week",
    "method": "window"|"previous", "from_ts", "to_ts", "from_bytes", "to_bytes", "days",
    "samples"}``, or ``{"status": "insufficient", "bytes_per_week": None, "samples",
    "detail"}`` when there is no usable pair.
    """
    usable = [s for s in _usable_samples(samples) if not s.get("partial")]
    count = len(usable)
    if count < 2:
        return {"status": "insufficient", "bytes_per_week": None, "samples": count,
                "detail": "%s; growth needs 2 samples at least a day apart"
                          % plural(count, "baseline sample")}
    newest = usable[-1]
    newest_ts = utc(newest["ts"])
    window_start = newest_ts - datetime.timedelta(days=window_days)
    latest_base = newest_ts - datetime.timedelta(seconds=min_span_seconds)
    candidates = [s for s in usable[:-1] if utc(s["ts"]) <= latest_base]
    if not candidates:
        return {"status": "insufficient", "bytes_per_week": None, "samples": count,
                "detail": "%d baseline samples, all within a day of the newest; growth "
                          "needs 2 samples at least a day apart" % count}
    in_window = [s for s in candidates if utc(s["ts"]) >= window_start]
    if in_window:
        base, method = in_window[0], "window"
    else:
        base, method = candidates[-1], "previous"
    seconds = (newest_ts - utc(base["ts"])).total_seconds()
    delta = newest["bytes"] - base["bytes"]
    return {
        "status": "ok",
        "bytes_per_week": int(round(delta * WEEK_SECONDS / seconds)),
        "method": method,
        "from_ts": base["ts"],
        "to_ts": newest["ts"],
        "from_bytes": base["bytes"],
        "to_bytes": newest["bytes"],
        "days": round(seconds / 86400.0, 2),
        "samples": count,
    }


# ---------------------------------------------------------------------------- record count


def parse_record_count(output):
    """Return the integer the record-count command printed (its last non-empty line).

    Raises ``OpsError`` quoting the start of the output when that line is not a
    non-negative integer.
    """
    lines = [line.strip() for line in (output or "").splitlines() if line.strip()]
    if lines and re.match(r"^[0-9]+$", lines[-1]):
        return int(lines[-1])
    shown = (output or "").strip()[:200] or "(nothing)"
    raise OpsError("record_count_command must print the record count as an integer on its "
                   "last line; it printed: %s" % shown)


def count_records(command, chdir=None, timeout=120):
    """Run ``command`` and return the integer it prints.

    ``command`` is an argv list, or a string run with ``/bin/sh -c`` (so ``cd`` and
    pipes work). ``chdir`` is the working directory (the Compose project directory).
    Raises ``OpsError`` when it fails, times out or prints no integer.
    """
    if isinstance(command, str):
        argv = ["/bin/sh", "-c", command]
    elif isinstance(command, (list, tuple)) and command and all(
            isinstance(part, str) for part in command):
        argv = list(command)
    else:
        raise OpsError("record_count_command must be a command line string or a non-empty "
                       "list of strings")
    if chdir and not os.path.isdir(chdir):
        raise OpsError("chdir %s does not exist; set it to the application's directory"
                       % chdir)
    result = run_command(argv, timeout=timeout, cwd=chdir or None)
    if result.timed_out:
        raise OpsError("record_count_command did not finish within %s s; raise "
                       "record_count_timeout or fix the command" % timeout)
    if result.rc != 0:
        tail = (result.stderr or result.stdout or "").strip().splitlines()[-3:]
        raise OpsError("record_count_command exited with status %d%s" % (
            result.rc, (": " + " | ".join(tail)) if tail else ""))
    return parse_record_count(result.stdout)


# ---------------------------------------------------------------------------- disk


def disk_state(disk_path, history_file, limit_percent):
    """Return the disk inputs of the gate for the filesystem holding ``disk_path``.

    ``{"mount", "samples", "used_percent", "bytes_per_day", "days_to_limit"}``: usage as
    ``df`` shows it (``disk.filesystem_usage``) and the trend of the disk check's history
    (``disk.read_history`` + ``disk.compute_trend``, least squares over samples spanning at
    least a day): days until ``limit_percent`` (0 when already there, ``None`` when not
    growing or without history).
    """
    from .disk import compute_trend, filesystem_usage, read_history

    usage = filesystem_usage(disk_path)
    samples = read_history(history_file, usage["mount"])
    trend = compute_trend(samples, usage, limit_percent, 100)
    return {
        "mount": usage["mount"],
        "samples": len(samples),
        "used_percent": usage["used_percent"],
        "bytes_per_day": trend["growth_bytes_per_day"] if trend else None,
        "days_to_limit": trend["days_until_warn"] if trend else None,
    }


# ---------------------------------------------------------------------------- gate


def _trigger(name, value, limit, hit, unit, detail):
    return {"name": name, "value": value, "limit": limit, "hit": bool(hit), "unit": unit,
            "detail": detail}


def decide_gate(media, growth, records, disk, limits):
    """Return the gate decision from gathered inputs (pure: no I/O).

    ``media``: ``{"bytes", "files"}``; ``growth``: a ``growth_per_week`` result;
    ``records``: an int or ``None`` (not configured); ``disk``: ``{"used_percent",
    "bytes_per_day", "days_to_limit"}``; ``limits``: ``{"size_limit", "growth_limit_per_week",
    "record_limit", "disk_limit_percent", "disk_trend_days"}`` (sizes in bytes).
    Returns ``{"activate", "triggers", "media_bytes", "media_files", "growth"}``.
    """
    triggers = []
    size_limit = limits["size_limit"]
    triggers.append(_trigger(
        "size", media["bytes"], size_limit, media["bytes"] > size_limit, "bytes",
        "media is %s, limit %s" % (format_size(media["bytes"]), format_size(size_limit))))

    growth_limit = limits["growth_limit_per_week"]
    rate = growth.get("bytes_per_week")
    if rate is None:
        triggers.append(_trigger("growth", None, growth_limit, False, "bytes/week",
                                 "not enough baselines: %s" % growth.get("detail", "")))
    else:
        triggers.append(_trigger(
            "growth", rate, growth_limit, rate > growth_limit, "bytes/week",
            "media grows %s/week (%s to %s, %.1f days), limit %s/week" % (
                format_size(rate), growth["from_ts"], growth["to_ts"], growth["days"],
                format_size(growth_limit))))

    record_limit = limits["record_limit"]
    if records is None:
        triggers.append(_trigger("records", None, record_limit, False, "records",
                                 "no record count configured"))
    else:
        triggers.append(_trigger("records", records, record_limit, records > record_limit,
                                 "records", "%s, limit %d" % (plural(records, "record"),
                                                              record_limit)))

    disk_limit = limits["disk_limit_percent"]
    horizon = limits["disk_trend_days"]
    days = disk.get("days_to_limit")
    now_hit = disk["used_percent"] >= disk_limit
    trend_hit = days is not None and days <= horizon
    if now_hit:
        detail = "disk %s%% used, limit %s%%" % (disk["used_percent"], disk_limit)
    elif days is not None:
        detail = "disk %s%% used, trend reaches %s%% in %.0f days (horizon %d)" % (
            disk["used_percent"], disk_limit, days, horizon)
    elif disk.get("bytes_per_day") is None:
        detail = ("disk %s%% used, limit %s%%; no trend yet: the disk-check history has %s "
                  "of %s, a trend needs 2 samples at least a day apart" % (
                      disk["used_percent"], disk_limit, plural(disk.get("samples", 0), "sample"),
                      disk.get("mount") or "this filesystem"))
    else:
        detail = "disk %s%% used, limit %s%%; not growing" % (disk["used_percent"], disk_limit)
    disk_trigger = _trigger("disk", disk["used_percent"], disk_limit, now_hit or trend_hit,
                            "percent", detail)
    disk_trigger["days_to_limit"] = None if days is None else round(days, 1)
    triggers.append(disk_trigger)

    return {
        "activate": any(t["hit"] for t in triggers),
        "triggers": triggers,
        "media_bytes": media["bytes"],
        "media_files": media["files"],
        "growth": growth,
    }


def check_limits(size_limit=DEFAULT_SIZE_LIMIT, growth_limit_per_week=DEFAULT_GROWTH_LIMIT_PER_WEEK,
                 record_limit=DEFAULT_RECORD_LIMIT, disk_limit_percent=DEFAULT_DISK_LIMIT_PERCENT,
                 disk_trend_days=DEFAULT_DISK_TREND_DAYS):
    """Return the gate limits parsed and checked (sizes in bytes); ``OpsError`` if bad."""
    for name, value in (("record_limit", record_limit), ("disk_trend_days", disk_trend_days)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise OpsError("%s must be a whole number of 0 or more, not %r" % (name, value))
    if isinstance(disk_limit_percent, bool) or not isinstance(disk_limit_percent, (int, float)) \
            or not 0 < disk_limit_percent <= 100:
        raise OpsError("disk_limit_percent must be a number above 0 and at most 100, not %r"
                       % (disk_limit_percent,))
    return {
        "size_limit": parse_size(size_limit, "size_limit"),
        "growth_limit_per_week": parse_size(growth_limit_per_week, "growth_limit_per_week"),
        "record_limit": record_limit,
        "disk_limit_percent": disk_limit_percent,
        "disk_trend_days": disk_trend_days,
    }


def evaluate_gate(media_path, size_limit=DEFAULT_SIZE_LIMIT,
                  growth_limit_per_week=DEFAULT_GROWTH_LIMIT_PER_WEEK,
                  baseline_file=DEFAULT_BASELINE_FILE, record_count=None,
                  record_count_command=None, record_limit=DEFAULT_RECORD_LIMIT,
                  disk_path=DEFAULT_DISK_PATH, disk_limit_percent=DEFAULT_DISK_LIMIT_PERCENT,
                  disk_trend_days=DEFAULT_DISK_TREND_DAYS,
                  disk_history_file=DEFAULT_DISK_HISTORY_FILE, chdir=None,
                  record_count_timeout=GATE_OPTIONS["record_count_timeout"]["default"],
                  measure_timeout=None):
    """Measure, read the baselines and history, and return ``decide_gate``'s result.

    Read-only. ``record_count`` wins over ``record_count_command``; with neither the
    records trigger is skipped. Raises ``OpsError`` on bad limits, a missing media or
    disk path, or a record-count command that fails or prints no integer.
    """
    limits = check_limits(size_limit, growth_limit_per_week, record_limit, disk_limit_percent,
                          disk_trend_days)
    if record_count is not None and (isinstance(record_count, bool)
                                     or not isinstance(record_count, int) or record_count < 0):
        raise OpsError("record_count must be a whole number of 0 or more, not %r"
                       % (record_count,))
    media = measure_media(media_path, timeout=measure_timeout)
    growth = growth_per_week(read_baselines(baseline_file, media["path"]))
    records = record_count
    if records is None and record_count_command:
        records = count_records(record_count_command, chdir=chdir, timeout=record_count_timeout)
    disk = disk_state(disk_path, disk_history_file, limits["disk_limit_percent"])
    result = decide_gate(media, growth, records, disk, limits)
    result["media_path"] = media["path"]
    result["media_partial"] = media["partial"]
    return result


def summarize_gate(result):
    """Return a short multi-line text of a gate result (alerts and logs)."""
    head = "media cleanup gate %s for %s (%s, %s)" % (
        "FIRED" if result["activate"] else "quiet", result.get("media_path", "media"),
        format_size(result["media_bytes"]), plural(result["media_files"], "file"))
    lines = [head]
    for trig in result["triggers"]:
        lines.append("%s %s: %s" % ("[HIT]" if trig["hit"] else "[ok] ", trig["name"],
                                    trig["detail"]))
    return "\n".join(lines)


# ---------------------------------------------------------------------------- job configs


def _require_paths(config, keys, where, unset=(None,)):
    """Each of ``keys`` an absolute path unless unset (a value of ``unset``)."""
    for key in keys:
        if config[key] not in unset and not config[key].startswith("/"):
            raise OpsError("%s: %s must be an absolute path, not %r" % (where, key, config[key]))


def _check_command(value, key, where):
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, list) and value and all(isinstance(p, str) and p for p in value):
        return value
    raise OpsError("%s: %s must be a command line string or a non-empty list of strings"
                   % (where, key))


def _check_timeout(config, key, where):
    if config[key] is not None and config[key] <= 0:
        raise OpsError("%s: %s must be a whole number of seconds above 0, not %r"
                       % (where, key, config[key]))


_UNKNOWN = "unknown setting(s) %s; allowed: %s"
# The jobs' options, declared once (argument-spec style): their config checks are built from
# these tables, and a unit test holds the media_baseline role's variables to BASELINE_OPTIONS.
BASELINE_OPTIONS = {
    "media_path": {"type": "path", "required": True},
    "baseline_file": {"type": "path", "default": DEFAULT_BASELINE_FILE},
    "timeout_seconds": {"type": "int"},
}
# media-gate: the module's options but record_count; sizes may be numbers of bytes
# (check_limits parses them), and the CLI puts the disk history in the runtime's state_dir.
GATE_CONFIG_OPTIONS = dict(GATE_OPTIONS, size_limit=dict(GATE_OPTIONS["size_limit"], type="raw"),
                           growth_limit_per_week=dict(GATE_OPTIONS["growth_limit_per_week"], type="raw"),
                           disk_history_file={"type": "path"})
DEFAULT_STATE_FILE = "/var/lib/runbook-ops/media-cleanup.json"
CLEANUP_OPTIONS = {
    "command": {"type": "raw"}, "chdir": {"type": "path"}, "timeout_seconds": {"type": "int"},
    "media_path": {"type": "path"}, "approved_report": {"type": "raw"},
    "state_file": {"type": "path", "default": DEFAULT_STATE_FILE},
}
REMINDER_OPTIONS = {
    "state_file": {"type": "path", "default": DEFAULT_STATE_FILE},
    "alert_key": {"type": "str", "default": "media-cleanup"}, "host": {"type": "str"}, "job_name": {"type": "str"},
}
REPORT_ID_RE = re.compile(r"^mc-[0-9a-f]{12}$")


def check_baseline_config(config, where="media-baseline config"):
    """Return the media-baseline job config with defaults filled in (``BASELINE_OPTIONS``);
    ``OpsError`` if bad."""
    config = check_config(BASELINE_OPTIONS, config, where, _UNKNOWN)
    _require_paths(config, ("media_path", "baseline_file"), where)
    _check_timeout(config, "timeout_seconds", where)
    return config


def check_gate_config(config, where="media-gate config"):
    """Return ``evaluate_gate`` keyword arguments from a media-gate config
    (``GATE_CONFIG_OPTIONS``); ``OpsError`` if bad.

    ``disk_history_file`` stays unset when not given: the CLI takes it from the runtime's
    ``state_dir``.
    """
    config = check_config(GATE_CONFIG_OPTIONS, config, where, _UNKNOWN)
    _require_paths(config, ("media_path", "baseline_file", "disk_path", "disk_history_file", "chdir"), where)
    try:
        check_limits(config["size_limit"], config["growth_limit_per_week"],
                     config["record_limit"], config["disk_limit_percent"],
                     config["disk_trend_days"])
    except OpsError as exc:
        raise OpsError("%s: %s" % (where, exc.message))
    if config["record_count_command"] is not None:
        _check_command(config["record_count_command"], "record_count_command", where)
    _check_timeout(config, "record_count_timeout", where)
    return config


def check_cleanup_config(config, where="media-cleanup config"):
    """Return the weekly cleanup job config checked (``CLEANUP_OPTIONS``); ``OpsError`` if bad.

    Keys: ``command`` (string run with /bin/sh -c, or argv list; required), ``chdir``
    (the application's directory), ``timeout_seconds``, ``media_path`` (measured before
    and after, for the log), ``approved_report`` (the dry-run report id the cleanup was
    approved for; required) and ``state_file`` (the activation state that must still
    name it, default ``/var/lib/runbook-ops/media-cleanup.json``).
    """
    config = check_config(CLEANUP_OPTIONS, config, where, _UNKNOWN)
    approved = config["approved_report"]
    if not isinstance(approved, str) or not REPORT_ID_RE.match(approved):
        raise OpsError("%s: approved_report must be the id of the approved dry-run report "
                       "(mc- and 12 hex digits), not %r; a job armed before approvals named a "
                       "report runs no more: run the media_cleanup role to review it again"
                       % (where, approved))
    _check_command(config["command"], "command", where)
    _require_paths(config, ("chdir", "media_path"), where, (None, ""))
    _require_paths(config, ("state_file",), where)
    _check_timeout(config, "timeout_seconds", where)
    return config


def armed_refusal(config):
    """Why the weekly cleanup must not run now, or ``None`` when its approval still holds.

    The job runs only while the activation state (``state_file``) is ``active`` for the
    report the job was armed with (``approved_report``). The role removes the cron job when
    a settings change sends the cleanup back to review; this check keeps a job that is
    still there (a play that stopped half-way, a copied cron file) from deleting anything.
    """
    state = read_json(config["state_file"])
    if not isinstance(state, dict):
        return "no activation state in %s (disarmed or unreadable)" % config["state_file"]
    if state.get("state") != "active":
        return "the cleanup is %s, not active (%s): approve the current dry-run report first" % (
            state.get("state"), config["state_file"])
    if state.get("report_id") != config["approved_report"]:
        return ("this job was approved for report %s but the active report is %s: run the "
                "media_cleanup role" % (config["approved_report"], state.get("report_id")))
    return None


def run_cleanup(config, dry_run=False):
    """Run the configured cleanup command once (the weekly job); return a plain result.

    Returns ``{"rc", "stdout", "stderr", "seconds", "timed_out", "before_bytes",
    "after_bytes", "refused"}``; sizes are measured when ``media_path`` is set. The command
    does not run (``rc`` is ``None``) with ``dry_run``, or when ``armed_refusal`` says why
    not (``refused``).
    """
    command = config["command"]
    argv = ["/bin/sh", "-c", command] if isinstance(command, str) else list(command)
    refused = armed_refusal(config)
    before = measure_media(config["media_path"])["bytes"] if config.get("media_path") else None
    if dry_run or refused:
        return {"rc": None, "stdout": "", "stderr": "", "seconds": 0.0, "timed_out": False,
                "before_bytes": before, "after_bytes": before, "argv": argv,
                "refused": refused}
    if config.get("chdir") and not os.path.isdir(config["chdir"]):
        raise OpsError("chdir %s does not exist; set it to the application's directory"
                       % config["chdir"])
    result = run_command(argv, timeout=config.get("timeout_seconds"),
                         cwd=config.get("chdir") or None)
    after = measure_media(config["media_path"])["bytes"] if config.get("media_path") else None
    return {"rc": result.rc, "stdout": result.stdout, "stderr": result.stderr,
            "seconds": round(result.seconds, 1), "timed_out": result.timed_out,
            "before_bytes": before, "after_bytes": after, "argv": argv, "refused": None}


def check_reminder_config(config, where="media-cleanup-reminder config"):
    """Return the review reminder job config checked; ``OpsError`` if bad.

    Keys: ``state_file`` (the activation state, default
    ``/var/lib/runbook-ops/media-cleanup.json``), ``alert_key`` (the role's alert key prefix,
    default ``media-cleanup``; the reminder goes out on ``<alert_key>:<report id>``, the key of
    the report's own alert, so the cooldown is that key's), ``host`` (the inventory name the
    approval is given for) and ``job_name`` (the weekly job that was removed).
    """
    config = check_config(REMINDER_OPTIONS, config, where, _UNKNOWN)
    _require_paths(config, ("state_file",), where)
    for key in ("alert_key", "host", "job_name"):
        if not (config[key] or "").strip():
            raise OpsError("%s: %s must be a non-empty string, not %r" % (where, key, config[key]))
    return config


def review_reminder(config):
    """What to remind the team of while a disarmed host waits in review, or ``None``.

    A host is *disarmed* when its state is ``reviewed`` with ``disarmed_at`` set: it had the
    weekly cleanup, a settings change (or a changed dry-run) took it back to review and the
    job was removed. Returns ``{"key", "text", "report_id"}`` for ``alerts.notify``.
    """
    state = read_json(config["state_file"])
    if not isinstance(state, dict) or state.get("state") != "reviewed" or not state.get("disarmed_at"):
        return None
    report = state.get("report_id") or "(no report id)"
    host = config["host"]
    text = ("media cleanup is still OFF: the weekly job %s was removed at %s (%s) and stays off "
            "until report %s is approved. Read %s on %s, then run the play with -l %s -e "
            "media_cleanup_approve=%s (or media_cleanup_state: absent to end it)." % (
                config["job_name"], state["disarmed_at"], state.get("reason") or "back to review",
                report, state.get("report_path") or "the dry-run report", host, host, report))
    return {"key": "%s:%s" % (config["alert_key"], report), "text": text, "report_id": report}

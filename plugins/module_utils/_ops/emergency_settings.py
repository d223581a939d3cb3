# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The emergency procedure's settings, checked before its first step (on the controller by
the ``runbook.ops.emergency_disk_settings`` filter, on the host by the module).

``check_emergency_settings(given)`` takes the ``emergency_disk_*`` variables a host has
(names with the prefix, as the play sees them) and returns ``{"settings", "problems",
"warnings"}``: ``settings`` every setting by its short name with the default filled in
and the value normalised (``"85%"`` -> 85, ``"yes"`` -> True); ``problems`` one line
per bad value, naming the variable, its value and the rule; ``warnings`` one line per
``emergency_disk_*`` variable the playbook does not know, with the closest known name.
The playbook stops the host before its first step when ``problems`` is not empty.

The rules reuse the ones of the code that reads each value later (``docker_cleanup``'s
Go durations, ``media``'s sizes, imported only when such a value is given), so a value
that passes here is not refused later. Kept apart from ``emergency`` so the filter, which
every host's worker on the controller loads, compiles this file alone.
"""

from __future__ import annotations

import difflib
import math
import re

from .errors import OpsError

PREFIX = "emergency_disk_"
# short name -> (kind, default); an empty string or null means the default
SETTINGS = {
    "path": ("abs_path", "/"),
    "crit_percent": ("percent", 85),
    "target_percent": ("percent", 70),
    "escalate_percent": ("percent", 80),
    "force": ("bool", False),
    "until": ("go_duration", "168h"),
    "containers_until": ("go_duration", "168h"),
    "docker_host": ("docker_host", ""),
    "keep_label": ("label", "runbook.ops.keep"),
    "state_dir": ("abs_path", "/var/lib/runbook-ops"),
    "log_dir": ("abs_path", "/var/log"),
    "log_retention_days": ("count", 14),
    "journal_vacuum": ("bool", True),
    "journal_vacuum_time": ("age", "7d"),
    "media_path": ("abs_path_or_empty", ""),
    "media_size_limit": ("size", "500MB"),
    "media_dry_run_command": ("text", ""),
    "largest_count": ("positive_count", 10),
    "scan_timeout": ("seconds", 120),
    "telegram": ("bool", True),
}
# read elsewhere (the play's host pattern) or written by the play (its summary fact)
NOT_SETTINGS = ("hosts", "summary")
_TRUE = ("true", "yes", "on", "1")
_FALSE = ("false", "no", "off", "0")
_PERCENT = re.compile(r"^\s*(\d+)\s*%?\s*$")
_AGE = re.compile(r"^\d+[smhdw]?$")
_DOCKER_HOST = re.compile(r"^((unix|tcp|ssh|http|https|npipe)://\S+|/\S*)$")


def _percent(value):
    if isinstance(value, bool):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        number = value
    else:
        match = _PERCENT.match(str(value))
        number = int(match.group(1)) if match else None
    return number if number is not None and 1 <= number <= 100 else None


def _bool(value):
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    return True if text in _TRUE else False if text in _FALSE else None


def _number(value, minimum, integer):
    if isinstance(value, bool):
        return None
    try:
        number = int(str(value).strip()) if integer else float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number >= minimum else None


def _abs_path(value, empty_ok=False):
    ok = isinstance(value, str) and (value.startswith("/") or (empty_ok and not value))
    return value if ok else None


def _go_duration(value, name):
    from .docker_cleanup import parse_duration  # not imported by the settings filter for defaults

    parse_duration(value, name)
    return str(value).strip()


def _size(value, name):
    from .media import parse_size

    parse_size(value, name)
    return value


# kind -> (convert: value -> normalised or None, the rule in words); or, for rules that
# live elsewhere, (convert: (value, name) -> normalised, raising OpsError, None)
_RULES = {
    "percent": (_percent, 'a whole percentage from 1 to 100 (85 or "85%")'),
    "bool": (_bool, "a boolean (true/false, yes/no, on/off, 1/0)"),
    "count": (lambda v: _number(v, 0, True), "a whole number of days, 0 or more"),
    "positive_count": (lambda v: _number(v, 1, True), "a whole number, 1 or more"),
    "seconds": (lambda v: _number(v, 0.001, False), "a number of seconds above 0"),
    "abs_path": (_abs_path, "an absolute path"),
    "abs_path_or_empty": (lambda v: _abs_path(v, True), "an absolute path, or empty"),
    "age": (lambda v: str(v).strip() if _AGE.match(str(v).strip()) else None,
            "an age as journalctl --vacuum-time and find read it: a number and s, m, h, d "
            "or w (7d, 12h, 2w)"),
    "docker_host": (lambda v: v if isinstance(v, str) and (not v or _DOCKER_HOST.match(v))
                    else None, "empty (DOCKER_HOST, else the local socket) or an engine "
                               "address such as unix:///var/run/docker.sock or tcp://host:2376"),
    "label": (lambda v: v.strip() if isinstance(v, str) and v.strip() else None,
              "a label key such as runbook.ops.keep"),
    "text": (lambda v: v if isinstance(v, str) else None, "a string"),
    "go_duration": (_go_duration, None),
    "size": (_size, None),
}


def _check(kind, name, value):
    """``(normalised value, None)`` or ``(None, problem line)``."""
    convert, rule = _RULES[kind]
    if rule is None:
        try:
            return convert(value, name), None
        except OpsError as exc:
            return None, exc.message
    result = convert(value)
    if result is None:
        return None, "%s: %r is not %s" % (name, value, rule)
    return result, None


def check_emergency_settings(given) -> dict:
    """Check and normalise the ``emergency_disk_*`` variables in ``given`` (see the module
    docstring). Never raises for a bad value: every problem is one line in ``problems``."""
    given = dict(given or {})
    settings, problems, warnings = {}, [], []
    for short, (kind, default) in SETTINGS.items():
        name = PREFIX + short
        raw = given.get(name)
        if raw is None or (isinstance(raw, str) and not raw.strip() and kind != "text"):
            settings[short] = default
            continue
        settings[short], problem = _check(kind, name, raw)
        if problem:
            problems.append(problem)
    percents = [settings[k] for k in ("target_percent", "crit_percent", "escalate_percent")]
    if None not in percents:
        target, crit, escalate = percents
        if not target < crit:
            problems.append("emergency_disk_target_percent: %d must be below "
                            "emergency_disk_crit_percent (%d): the steps stop once usage is "
                            "below the target" % (target, crit))
        if not target <= escalate:
            problems.append("emergency_disk_target_percent: %d must be at most "
                            "emergency_disk_escalate_percent (%d)" % (target, escalate))
    known = list(SETTINGS) + list(NOT_SETTINGS)
    for name in sorted(given):
        if name.startswith(PREFIX) and name[len(PREFIX):] not in known:
            close = difflib.get_close_matches(name[len(PREFIX):], known, n=1, cutoff=0.75)
            warnings.append("%s is not a setting of emergency-disk.yml%s" % (
                name, "; did you mean %s%s?" % (PREFIX, close[0]) if close else ""))
    return {"settings": settings, "problems": problems, "warnings": warnings}

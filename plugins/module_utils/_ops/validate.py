# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Every role's variables checked in one pass, before anything changes on a host.

The rules are each role's ``meta/argument_specs.yml`` (the source of truth: types,
element types, choices, required options and sub-options, read as ansible-core's role
validation reads them) plus the semantic rules below (``RULES``): cron fields as cron
reads them, thresholds in order, absolute paths, durations, sizes, job names, timeouts.

``check_roles`` takes the specs and the values and returns data: one line per problem
(``VAR: VALUE RULE``), warnings for unknown variables with a role's prefix, and the paths
that must exist on the host (the caller looks them up there; ``missing_paths`` turns the
answer into problems). ``runbook.ops.validate_vars`` is its Ansible face.
"""

from __future__ import annotations

import ast
import difflib
import json
import re
from decimal import Decimal

from . import cron_field
from .backup import _valid_subset as valid_read_data_subset
from .docker_cleanup import parse_duration
from .errors import OpsError
from .health_certs import certificate_problems
from .health_commands import command_problems
from .media import parse_size
from .runtime import job_name_reason, timeout_reason
from .units import show

BASE_ROLE = "base"
BASE_PREFIX = "runbook_ops_"
_TRUE = ("y", "yes", "on", "1", "true", "t", 1)
_FALSE = ("n", "no", "off", "0", "false", "f", 0)


def prefix(role) -> str:
    """The prefix of a role's public variables (``runbook_ops_`` for base)."""
    return BASE_PREFIX if role == BASE_ROLE else role + "_"


# ------------------------------------------------------------------ argument-spec types
# As ansible.module_utils.common.validation's check_type_* convert (conversions included).

def _kept(kind, convert):
    """``convert``, for a value that is not of type ``kind`` already (kept as it is)."""
    return lambda value: value if isinstance(value, kind) else convert(value)


def _to_int(value):
    number = Decimal(value)  # as ansible-core: "5", 5.0, " 7 ", "1e3" are whole numbers
    if number != int(number):
        raise ValueError
    return int(number)


def _to_bool(value):
    if isinstance(value, str):
        value = value.lower().strip()
    elif not isinstance(value, (int, float)):
        raise ValueError
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError


def _to_list(value):
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, (int, float)):
        return [str(value)]
    raise ValueError


def _to_dict(value):
    if isinstance(value, str) and value.startswith("{"):
        try:
            loaded = json.loads(value)
        except ValueError:
            loaded = ast.literal_eval(value)
        if isinstance(loaded, dict):
            return loaded
    elif isinstance(value, str) and "=" in value:  # key=value pairs
        return dict(part.split("=", 1) for part in re.split(r"[\s,]+", value.strip()) if part)
    raise ValueError


_CONVERT = {"str": _kept(str, str), "path": _kept(str, str), "int": _kept(int, _to_int),
            "float": _kept(float, float), "bool": _kept(bool, _to_bool), "list": _kept(list, _to_list),
            "dict": _kept(dict, _to_dict), "raw": lambda value: value}
_WHAT = {"int": "a whole number", "float": "a number", "bool": "true or false",
         "list": "a list", "dict": "a mapping (dict)", "str": "a string", "path": "a path"}


def _convert(kind, value):
    """``(converted, "")`` or ``(None, why)`` for one value of argument-spec type ``kind``."""
    try:
        return _CONVERT[kind or "str"](value), ""
    except (ValueError, TypeError, ArithmeticError, SyntaxError, MemoryError, RecursionError):
        return None, "is not %s" % _WHAT.get(kind, kind)


def spec_problems(name, spec, value, secret=False):
    """``(converted value, [problems])`` of one option against its argument spec."""
    secret = secret or bool(spec.get("no_log"))
    if value is None:
        if spec.get("required"):
            return None, ["%s: is required (%s)" % (name, _first_line(spec))]
        return None, []
    converted, why = _convert(spec.get("type"), value)
    if why:
        return None, ["%s: %s %s" % (name, show(value, secret), why)]
    if spec.get("choices") and converted not in spec["choices"]:
        choices = ", ".join(map(str, spec["choices"]))
        return None, ["%s: %s is not one of %s" % (name, show(value, secret), choices)]
    if spec.get("type") == "list" and spec.get("elements"):
        converted, problems = _elements(name, spec, converted, secret)
        if problems:
            return None, problems
    return converted, []


def _elements(name, spec, items, secret):
    result, problems = [], []
    for index, item in enumerate(items):
        where = "%s[%d]" % (name, index)
        converted, why = _convert(spec["elements"], item)
        if why:
            problems.append("%s: %s %s" % (where, show(item, secret), why))
        elif spec["elements"] == "dict" and spec.get("options"):
            converted, sub = _suboptions(where, spec["options"], converted, secret)
            problems.extend(sub)
        result.append(converted)
    return result, problems


def _suboptions(where, options, item, secret):
    problems = ["%s.%s: is not an option here (known: %s)" % (where, key, ", ".join(sorted(options)))
                for key in sorted(set(item) - set(options))]
    converted = dict(item)
    for key, sub in options.items():
        value, sub_problems = spec_problems("%s.%s" % (where, key), sub, item.get(key), secret)
        problems.extend(sub_problems)
        if value is not None:
            converted[key] = value
    return converted, problems


def _first_line(spec):
    description = spec.get("description") or ""
    if isinstance(description, list):
        description = description[0] if description else ""
    text = re.sub(r"[A-Z]\(([^)]*)\)", r"\1", str(description))
    return re.split(r"\.\s+(?=[A-Z])", text)[0].rstrip(".")


# ------------------------------------------------------------------ semantic rules
# Each rule takes the converted value and returns "" or why it is refused.

def _cron_rule(field):
    return lambda value: cron_field.problem(field, value if isinstance(value, str) else None)


def _rule(holds, why):
    """The rule that ``holds(value)`` is true; ``why`` when not."""
    return lambda value: "" if holds(value) else why


def _absolute(value):
    if not isinstance(value, list):
        return "is not an absolute path" if value and not str(value).startswith("/") else ""
    bad = [item for item in value if not str(item).startswith("/")]
    return "holds %s, which is not an absolute path" % show(bad[0]) if bad else ""


_percent = _rule(lambda value: value is not None and 0 <= value <= 100, "is not a percentage (0-100)")


def _at_least(low):
    return _rule(lambda value: value is not None and value >= low, "is below %s" % low)


def _parses(parse, rule):
    """The rule that ``parse`` (raising ``OpsError``) accepts the value; ``rule`` when not."""
    def problem(value):
        try:
            parse(value)
        except OpsError:
            return rule
        return ""
    return problem


_duration = _parses(parse_duration, "is not a duration (a Go duration such as 168h, 24h, 90m or 0s)")
_size = _parses(parse_size, "is not a size (a number of bytes or e.g. 500MB, 1.5GiB)")
_target_percent = _rule(lambda value: 0 < value < 100,
                        "is not a percentage between 0 and 100 (exclusive); leave it unset to run every step")
_read_data_subset = _rule(valid_read_data_subset, "is not a restic subset (e.g. 5%, 1/10 or 500M)")
_not_empty = _rule(bool, "is empty; give at least one")


_CRON = re.compile(r"_cron_(minute|hour|day|month|weekday)$")

# (variable, rule) for single variables; variables named *_cron_<field> and *_job_name,
# and every option of type path, get their rule from the name and spec (see _rules_for).
RULES = {
    "runbook_ops_alert_cooldown_hours": [_at_least(0)],
    "disk_monitor_paths": [_not_empty],
    "disk_monitor_warn_percent": [_percent],
    "disk_monitor_crit_percent": [_percent],
    "disk_monitor_inode_warn_percent": [_percent],
    "disk_monitor_inode_crit_percent": [_percent],
    "disk_monitor_largest_count": [_at_least(0)],
    "disk_monitor_alert_largest": [_at_least(0)],
    "disk_monitor_scan_timeout_seconds": [_at_least(0)],
    "disk_monitor_timeout_seconds": [timeout_reason],
    "docker_cleanup_until": [_duration],
    "docker_cleanup_target_percent": [_target_percent],
    "docker_cleanup_timeout_seconds": [timeout_reason],
    "health_monitor_job_timeout_seconds": [timeout_reason],
    "health_monitor_memory_warning_percent": [_percent],
    "health_monitor_memory_critical_percent": [_percent],
    "health_monitor_swap_warning_percent": [_percent],
    "health_monitor_swap_critical_percent": [_percent],
    "health_monitor_cpu_warning_percent": [_percent],
    "health_monitor_cpu_window_seconds": [_at_least(1)],
    "health_monitor_container_memory_warning_percent": [_percent],
    "health_monitor_container_memory_critical_percent": [_percent],
    "health_monitor_command_timeout_seconds": [timeout_reason],
    "health_monitor_certificate_warning_days": [_at_least(1)],
    "health_monitor_certificate_critical_days": [_at_least(1)],
    "health_monitor_certificate_interval_seconds": [_at_least(300)],
    "media_baseline_timeout_seconds": [timeout_reason],
    "media_cleanup_command_timeout_seconds": [timeout_reason],
    "media_cleanup_size_limit": [_size],
    "media_cleanup_growth_limit_per_week": [_size],
    "media_cleanup_disk_limit_percent": [_percent],
    "backup_timeout_seconds": [timeout_reason],
    "backup_check_timeout_seconds": [timeout_reason],
    "backup_check_read_data_subset": [_read_data_subset],
    "backup_freshness_max_age_hours": [_at_least(1)],
    "backup_size_drop_percent": [_percent, _at_least(1)],
    "backup_keep_daily": [_at_least(0)],
    "backup_keep_weekly": [_at_least(0)],
    "backup_keep_monthly": [_at_least(0)],
}

# (lower, higher): the first must be below the second.
ORDER = [
    ("disk_monitor_warn_percent", "disk_monitor_crit_percent"),
    ("disk_monitor_inode_warn_percent", "disk_monitor_inode_crit_percent"),
    ("health_monitor_memory_warning_percent", "health_monitor_memory_critical_percent"),
    ("health_monitor_swap_warning_percent", "health_monitor_swap_critical_percent"),
    ("health_monitor_container_memory_warning_percent",
     "health_monitor_container_memory_critical_percent"),
    ("health_monitor_certificate_critical_days", "health_monitor_certificate_warning_days"),
]

# Variables whose paths must exist on the host (each job reads them on every run).
EXISTING = ["disk_monitor_paths", "disk_monitor_largest_under", "media_baseline_path",
            "backup_paths", "backup_compose_project_dir", "media_cleanup_media_path",
            "media_cleanup_chdir", "media_cleanup_disk_path"]


def _rules_for(name, spec):
    rules = list(RULES.get(name, ()))
    cron = _CRON.search(name)
    if cron:
        rules.append(_cron_rule(cron.group(1)))
    if name.endswith("_job_name"):
        rules.append(job_name_reason)
    if "path" in (spec.get("type"), spec.get("elements")) and _absolute not in rules:
        rules.append(_absolute)
    return rules


def _role_rules(role, values):
    """Rules between variables of one role, on converted values of valid variables."""
    problems = []
    for low, high in ORDER:
        if low.startswith(prefix(role)) and values.get(low) is not None \
                and values.get(high) is not None and not values[low] < values[high]:
            problems.append("%s: %s is not below %s (%s)" % (low, show(values[low]), high,
                                                             show(values[high])))
    if role == BASE_ROLE and isinstance(values.get("runbook_ops_job_ping_urls"), dict):
        problems.extend("runbook_ops_job_ping_urls: key %s %s" % (show(key), job_name_reason(key))
                        for key in values["runbook_ops_job_ping_urls"] if job_name_reason(key))
    if role == "backup":
        problems.extend(_backup_rules(values))
    if role == "health_monitor":
        problems.extend(_health_monitor_rules(values))
    if role == "media_cleanup":
        problems.extend(_derived_job_name_problems(values, "media_cleanup_job_name", "-review",
                                                   "the review reminder's cron file"))
    return problems


def _health_monitor_rules(values):
    """The command and certificate entries by the core's own rules (``health_commands``,
    ``health_certs``: what the host's config check refuses), and commands that cannot
    all finish before the wrapper stops the run."""
    problems = []
    for variable, entry_problems in (("health_monitor_commands", command_problems),
                                     ("health_monitor_certificates", certificate_problems)):
        for index, entry in enumerate(values.get(variable) or []):
            item = {k: v for k, v in entry.items() if v is not None} if isinstance(entry, dict) else entry
            problems.extend(entry_problems(item, "%s[%d]" % (variable, index)))
    commands = values.get("health_monitor_commands") or []
    default = values.get("health_monitor_command_timeout_seconds")
    limit = values.get("health_monitor_job_timeout_seconds")
    if commands and not problems and isinstance(default, (int, float)) and isinstance(limit, int):
        total = sum(check.get("timeout_seconds") or default for check in commands)
        if total >= limit:
            problems.append("health_monitor_commands: their timeouts add up to %g s, not below "
                            "health_monitor_job_timeout_seconds (%d): the wrapper would stop the "
                            "run before the last command ends" % (total, limit))
    return problems


def _role_paths(role, values):
    """Paths inside list entries that must exist on the host: each certificate's ``ca_file``."""
    if role != "health_monitor":
        return {}
    files = [cert["ca_file"] for cert in values.get("health_monitor_certificates") or []
             if isinstance(cert, dict) and cert.get("ca_file")]
    return {"health_monitor_certificates": files} if files else {}


def _derived_job_name_problems(values, variable, suffix, what):
    """A job name that passes alone but not with the suffix of a second job or cron file."""
    if variable not in values or job_name_reason(values[variable]):
        return []
    derived = values[variable] + suffix
    reason = job_name_reason(derived)
    return ["%s: %s is too long for %s %s (%s)" % (variable, show(values[variable]), what, derived, reason)] if reason else []


def _backup_rules(values):
    problems = []
    if values.get("backup_engine") == "restic":
        for name in ("backup_repository", "backup_password"):
            if values.get(name) == "":
                problems.append("%s: \"\" must be set when backup_engine is restic" % name)
    problems.extend(_derived_job_name_problems(values, "backup_job_name", "-freshness", "the freshness job"))
    sources = ("backup_paths", "backup_volumes", "backup_hooks", "backup_compose_project_dir")
    if all(name in values for name in sources) and not any(values[name] for name in sources):
        problems.append("backup_paths: [] leaves nothing to back up: set backup_paths, "
                        "backup_volumes, backup_compose_project_dir or backup_hooks")
    return problems


# ------------------------------------------------------------------ the one pass

def check_roles(specs, values, names=(), internal=None):
    """Check every role of ``specs`` (role -> argument-spec options) in one pass.

    ``values``: each variable's value as the play sees it (the role's default when the
    user set nothing; a missing or ``None`` value counts as unset). ``names``: every
    variable name the host has, for the unknown-variable warnings. ``internal``: role ->
    names that are the role's own but not options (its vars/ and defaults/ files).

    Returns ``{"problems": [line...], "warnings": [line...], "paths": {var: [path...]}}``:
    the paths of valid ``EXISTING`` variables the caller must find on the host.
    """
    problems, warnings, paths = [], [], {}
    for role in specs:
        converted = {}
        for name, spec in specs[role].items():
            value, found = spec_problems(name, spec, values.get(name))
            if not found and value is not None:
                found = ["%s: %s %s" % (name, show(values.get(name), spec.get("no_log")), why)
                         for why in (rule(value) for rule in _rules_for(name, spec)) if why]
            problems.extend(found)
            if not found:
                converted[name] = value
                if name in EXISTING and value:
                    paths[name] = value if isinstance(value, list) else [value]
        if converted.get("media_cleanup_state") == "absent":  # disarming needs no media
            paths = {name: items for name, items in paths.items() if not name.startswith("media_cleanup_")}
        problems.extend(_role_rules(role, converted))
        paths.update(_role_paths(role, converted))
        warnings.extend(unknown_names(role, set(specs[role]) | set((internal or {}).get(role, ())),
                                      names))
    return {"problems": problems, "warnings": warnings, "paths": paths}


def unknown_names(role, known, names):
    """A warning per name with the role's prefix that the role does not know, naming the
    closest known one (compared without the prefix, which they all share)."""
    start = len(prefix(role))
    public = {name[start:]: name for name in known if name.startswith(prefix(role))}
    lines = []
    for name in sorted(name for name in names if name.startswith(prefix(role)) and name not in known):
        close = difflib.get_close_matches(name[start:], sorted(public), n=1)
        where = "not a variable of runbook.ops.%s, ignored" % role
        lines.append("%s: did you mean %s? (%s)" % (name, public[close[0]], where) if close
                     else "%s: %s" % (name, where))
    return lines


def missing_paths(paths, existing):
    """Problems for the paths of ``paths`` (var -> [path]) that ``existing`` does not hold."""
    return ["%s: %s does not exist on the host" % (name, path)
            for name, items in paths.items() for path in items if path not in existing]

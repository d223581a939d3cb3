# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Generic command checks of the health monitor: a team's own probe, no new code.

Each check runs one command through ``runner.run_command`` (the one subprocess gateway)
with a timeout, in a session of its own so a timeout kills everything it started:

- ``command`` as a list is an argv, run as it is (no shell);
- ``command`` as a string is run by ``/bin/sh -c`` (pipes, ``$(cat file)``, ``&&``): the
  user writes it in their own inventory, as they would in a crontab.

It is judged by its exit code (``expected_exit``, 0 by default), then, when set, by
``expected_text`` in its output and by its output read as one number against
``warn_above``/``crit_above`` (queue depth, DB connections). Results carry the check's
name, the exit code, the number and, for a failure, the last line of output; never the
command (a password given on a command line would land in alerts and logs).
"""

from __future__ import annotations

import operator
import re

from .errors import OpsError
from .health_resources import check_result, checked_entry, level_for, number_text
from .units import show

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
COMMAND_DEFAULTS = {
    "expected_exit": 0,
    "expected_text": "",
    "warn_above": None,
    "crit_above": None,
    "timeout_seconds": 10,
}
OUTPUT_LIMIT = 120
_NUMBER = re.compile(r"^[-+]?(\d+(\.\d*)?|\.\d+)([eE][-+]?\d+)?$")


def _number(value):
    return not isinstance(value, bool) and isinstance(value, (int, float))


def command_problems(raw, where):
    """Why ``raw`` is not a valid command check: one line per problem, ``where.key: VALUE
    rule`` (``where`` names it, e.g. ``health_monitor_commands[0]``); ``[]`` when valid.

    Shared by the host's config check (``validate_command``) and the role's variable
    check (``validate.py``), so both refuse the same things with the same words.
    """
    if not isinstance(raw, dict):
        return ["%s: is not a mapping with name and command" % where]
    problems = ["%s.%s: is not an option here (known: %s)" % (
        where, key, ", ".join(sorted(set(COMMAND_DEFAULTS) | {"name", "command"})))
        for key in sorted(set(raw) - set(COMMAND_DEFAULTS) - {"name", "command"})]
    name = raw.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        problems.append("%s.name: %s is not a short name of letters, digits, '.', '_' or '-'"
                        % (where, show(name)))
    command = raw.get("command")
    if isinstance(command, list):
        if not command or not all(isinstance(part, str) for part in command) or not command[0]:
            problems.append("%s.command: is not a non-empty list of strings (an argv)" % where)
    elif not isinstance(command, str) or not command.strip():
        problems.append("%s.command: is not a shell command (a string) nor an argv (a list)"
                        % where)
    for key in ("warn_above", "crit_above"):
        if raw.get(key) is not None and not _number(raw[key]):
            problems.append("%s.%s: %s is not a number" % (where, key, show(raw[key])))
    warn, crit = raw.get("warn_above"), raw.get("crit_above")
    if _number(warn) and _number(crit) and not warn < crit:
        problems.append("%s.warn_above: %g is not below crit_above (%g)" % (where, warn, crit))
    expected = raw.get("expected_exit", 0)
    if not (isinstance(expected, int) and not isinstance(expected, bool) and 0 <= expected <= 255):
        problems.append("%s.expected_exit: %s is not an exit code (0-255)" % (
            where, show(expected)))
    if not isinstance(raw.get("expected_text", ""), str):
        problems.append("%s.expected_text: %s is not a string" % (
            where, show(raw["expected_text"])))
    timeout = raw.get("timeout_seconds", COMMAND_DEFAULTS["timeout_seconds"])
    if not _number(timeout) or timeout <= 0:
        problems.append("%s.timeout_seconds: %s is not a number of seconds greater than 0"
                        % (where, show(timeout)))
    return problems


def validate_command(raw, index):
    """One ``commands`` entry with defaults filled in; ``OpsError`` listing its problems."""
    return checked_entry(command_problems(raw, "commands[%d]" % index), COMMAND_DEFAULTS, raw)


def command_argv(check):
    """The argv of a check: its list as it is, a string through ``/bin/sh -c``."""
    command = check["command"]
    return list(command) if isinstance(command, list) else ["/bin/sh", "-c", command]


def _last_line(text):
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return lines[-1][:OUTPUT_LIMIT] if lines else ""


def judge_output(check, rc, stdout, stderr, timed_out):
    """``(level, problem, value)`` of one finished run (pure: tests feed it directly)."""
    if timed_out:
        return "critical", "no result within %g s (stopped)" % check["timeout_seconds"], None
    if rc != check["expected_exit"]:
        tail = _last_line(stderr) or _last_line(stdout)
        return "critical", "exit code %s, expected %s%s" % (
            rc, check["expected_exit"], (": " + tail) if tail else ""), None
    if check["expected_text"] and check["expected_text"] not in stdout:
        return "critical", "output does not contain %r (got %r)" % (
            check["expected_text"], _last_line(stdout)), None
    if check["warn_above"] is None and check["crit_above"] is None:
        return "ok", "", None
    text = (stdout or "").strip()
    if not _NUMBER.match(text):
        return "critical", "output is not a number: %r" % text[:OUTPUT_LIMIT], None
    value = float(text)
    value = int(value) if value.is_integer() and abs(value) < 2 ** 53 else value
    level, limit = level_for(value, check["warn_above"], check["crit_above"], operator.gt)
    if limit is None:
        return "ok", "", value
    return level, "%s, above %g" % (number_text(value), limit), value


def run_check_command(check, runner=None):
    """Run one command check and judge it; return a health result.

    ``{"key": "command:NAME", "kind": "command", "name", "target", "level", "problem",
    "rc", "value", "seconds", "timed_out"}``. A command that cannot start (not found,
    not executable) is critical.
    """
    if runner is None:
        from .runner import run_command as runner
    result = check_result("command:" + check["name"], "command", check["name"], "command",
                          rc=None, value=None, seconds=None, timed_out=False)
    try:
        done = runner(command_argv(check), timeout=check["timeout_seconds"], kill_group=True)
    except OpsError as exc:
        result.update(level="critical", problem=exc.message)
        return result
    level, problem, value = judge_output(check, done.rc, done.stdout or "", done.stderr or "",
                                         done.timed_out)
    result.update(level=level, problem=problem, value=value, rc=None if done.timed_out else done.rc,
                  seconds=round(done.seconds, 2), timed_out=done.timed_out)
    return result


def describe_command_result(result):
    """``(status, detail)`` of a command result for the job log and the morning check."""
    if result.get("timed_out"):
        status = "timed out"
    elif result.get("value") is not None:
        status = "value %s" % number_text(result["value"])
    elif result.get("rc") is not None:
        status = "exit %s" % result["rc"]
    else:
        status = "not run"
    seconds = result.get("seconds")
    detail = result.get("problem") or ("in %.1f s" % seconds if seconds is not None else "")
    return status, detail

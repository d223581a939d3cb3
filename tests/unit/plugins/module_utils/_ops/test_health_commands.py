# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""health_commands.py: real commands through the real gateway (runner.run_command).

A queue depth printed by ``sh -c 'echo 42'``, a command that exits 1, a PING answered by
``printf PONG``, one that hangs past its timeout with a child of its own (killed with its
whole group), one that does not exist; the alert goes through the job and the fake Bot API.
"""

from __future__ import annotations

import json
import os
import sys
import time

import pytest

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))
sys.path.insert(0, os.path.join(_REPO, "tests", "fakes"))

from fake_telegram import telegram_runtime  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import (  # noqa: E402
    health, health_commands)
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    merge_runtime)

TOKEN = "424242:commands-token"


def _check(command, **extra):
    raw = {"name": "queue", "command": command}
    raw.update(extra)
    return health_commands.validate_command(raw, 0)


@pytest.mark.parametrize("command, extra, level, problem, value", [
    ("echo 42", {"warn_above": 40, "crit_above": 100}, "warning", "42, above 40", 42),
    (["sh", "-c", "echo 42"], {"warn_above": 10, "crit_above": 41}, "critical", "42, above 41", 42),
    ("echo 7", {"warn_above": 40, "crit_above": 100}, "ok", "", 7),
    ("echo 0.75", {"crit_above": 0.5}, "critical", "0.75, above 0.5", 0.75),
    ("echo '  12 '", {"warn_above": 12}, "ok", "", 12),
    ("echo lots", {"warn_above": 1}, "critical", "output is not a number: 'lots'", None),
    ("echo starting; exit 1", {}, "critical", "exit code 1, expected 0: starting", None),
    ("echo oops >&2; exit 3", {"expected_exit": 3}, "ok", "", None),
    ("exit 0", {"expected_exit": 1}, "critical", "exit code 0, expected 1", None),
    ("printf PONG", {"expected_text": "PONG"}, "ok", "", None),
    ("printf 'NOAUTH Authentication required.'", {"expected_text": "PONG"}, "critical",
     "output does not contain 'PONG' (got 'NOAUTH Authentication required.')", None),
    (["/bin/true"], {}, "ok", "", None),
], ids=["warn", "crit-argv", "below", "float", "spaces", "not-a-number", "exit-1",
        "expected-exit", "wrong-exit", "ping", "ping-refused", "argv-no-shell"])
def test_a_real_command_is_judged_by_exit_output_and_number(command, extra, level, problem, value):
    result = health_commands.run_check_command(_check(command, **extra))
    assert (result["level"], result["problem"], result["value"]) == (level, problem, value)
    assert result["key"] == "command:queue"


def test_a_string_runs_through_sh_and_a_list_runs_as_it_is():
    assert health_commands.command_argv(_check("echo $HOME | wc -c")) == [
        "/bin/sh", "-c", "echo $HOME | wc -c"]
    assert health_commands.command_argv(_check(["redis-cli", "ping"])) == ["redis-cli", "ping"]
    # a list is an argv: no shell reads "$(echo 5)", so it is printed as it is, not a number
    result = health_commands.run_check_command(_check(["echo", "$(echo 5)"], warn_above=1))
    assert result["problem"] == "output is not a number: '$(echo 5)'"


def test_a_hung_command_is_stopped_at_its_timeout_with_everything_it_started(tmp_path):
    pid_file = tmp_path / "child.pid"
    check = _check("sleep 60 & echo $! > %s; wait" % pid_file, timeout_seconds=1)
    started = time.monotonic()
    result = health_commands.run_check_command(check)
    elapsed = time.monotonic() - started
    assert elapsed < 5, elapsed
    assert (result["level"], result["problem"], result["timed_out"], result["rc"]) == (
        "critical", "no result within 1 s (stopped)", True, None)
    child = int(pid_file.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # killed: gone, or a zombie until its reaper runs
        try:
            with open("/proc/%d/stat" % child) as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            break
        if state == "Z":
            break
        time.sleep(0.05)
    else:
        raise AssertionError("the command's child %d still runs" % child)


def test_a_hung_command_whose_child_left_the_group_still_ends_in_time():
    """A daemonised child (setsid) keeps the output pipe open and outlives the group kill:
    the check still ends within the timeout plus the read grace."""
    check = _check("setsid sleep 30 & sleep 60", timeout_seconds=1)
    started = time.monotonic()
    result = health_commands.run_check_command(check)
    assert result["timed_out"] and time.monotonic() - started < 6


def test_a_missing_program_is_critical_and_named():
    result = health_commands.run_check_command(_check(["/nonexistent/redis-cli", "ping"]))
    assert (result["level"], result["problem"]) == (
        "critical", "command not found: /nonexistent/redis-cli; install it or fix PATH")


def test_the_command_never_appears_in_results_nor_in_the_log_lines(tmp_path):
    secret = "s3cret-pa55"
    config = health.validate_config({
        "resource_checks": False, "failures_before_alert": 1,
        "commands": [{"name": "db", "command": "PGPASSWORD=%s false" % secret}]})
    runtime = merge_runtime({"host_label": "web1", "state_dir": str(tmp_path)})
    summary = health.run_health_check(config, runtime, notify=lambda *a, **k: {"sent": True},
                                      now=1000)
    everything = json.dumps(summary) + "\n".join(health.format_check_lines(summary))
    everything += (tmp_path / "health.json").read_text()
    assert secret not in everything
    assert summary["results"][0]["problem"] == "exit code 1, expected 0"


def test_a_command_alert_follows_the_debounce_cooldown_and_recovery(tmp_path):
    flag = tmp_path / "depth"
    command = "cat %s" % flag
    config = health.validate_config({"resource_checks": False, "cooldown_seconds": 3600,
                                     "commands": [{"name": "queue", "command": command,
                                                   "warn_above": 1000}]})
    with telegram_runtime(tmp_path, TOKEN) as (runtime, fake):
        counts = []
        for minute, depth in ((0, 1500), (5, 1800), (10, 2500), (15, 12)):
            flag.write_text("%d\n" % depth)
            health.run_health_check(config, runtime, now=1_700_000_000 + minute * 60)
            counts.append(fake.message_count())
        texts = [m["text"] for m in fake.messages]
    assert counts == [0, 1, 1, 2]
    assert texts == ["⚠️ web1 WARNING: health check degraded (queue: 1800, above 1000), for 5 min",
                     "✅ web1 recovered: queue is back after 15 min"]


@pytest.mark.parametrize("raw, line", [
    ({"name": "q"}, "commands[0].command: is not a shell command (a string) nor an argv (a list)"),
    ({"name": "q", "command": []}, "commands[0].command: is not a non-empty list of strings (an argv)"),
    ({"name": "a b", "command": "true"},
     "commands[0].name: \"a b\" is not a short name of letters, digits, '.', '_' or '-'"),
    ({"name": "q", "command": "true", "warn_above": "lots"}, "commands[0].warn_above: lots is not a number"),
    ({"name": "q", "command": "true", "warn_above": 10, "crit_above": 5},
     "commands[0].warn_above: 10 is not below crit_above (5)"),
    ({"name": "q", "command": "true", "expected_exit": 256},
     "commands[0].expected_exit: 256 is not an exit code (0-255)"),
    ({"name": "q", "command": "true", "timeout_seconds": 0},
     "commands[0].timeout_seconds: 0 is not a number of seconds greater than 0"),
    ({"name": "q", "command": "true", "timeout": 5},
     "commands[0].timeout: is not an option here (known: command, crit_above, expected_exit, "
     "expected_text, name, timeout_seconds, warn_above)"),
], ids=["no-command", "empty-argv", "bad-name", "not-number", "order", "exit-range", "timeout",
        "typo"])
def test_a_bad_command_entry_is_refused_in_one_line(raw, line):
    with pytest.raises(OpsError) as caught:
        health_commands.validate_command(raw, 0)
    assert caught.value.message == line


def test_names_must_be_unique():
    with pytest.raises(OpsError) as caught:
        health.validate_config({"commands": [{"name": "q", "command": "true"},
                                             {"name": "q", "command": "false"}]})
    assert caught.value.message == "command names must be unique; repeated: q"

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""emergency.py: emergency-disk.yml's settings, checked before its first step.

Values come as a play sees them: ints and bools from YAML or JSON ``-e``, strings from
``-e key=value`` (``-e emergency_disk_crit_percent=85%`` is the string ``"85%"``).
"""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import emergency  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402


def check(**given):
    return emergency.check_emergency_settings(
        dict(("emergency_disk_" + key, value) for key, value in given.items()))


def test_nothing_given_is_every_default_and_no_problem():
    result = check()
    assert result["problems"] == [] and result["warnings"] == []
    assert result["settings"] == dict((k, default) for k, (_kind, default) in emergency.SETTINGS.items())
    assert result["settings"]["containers_until"] == "168h"


@pytest.mark.parametrize("value,expected", [
    (85, 85), ("85", 85), ("85%", 85), (" 85 % ", 85), (85.0, 85), ("100%", 100), (1, 1)])
def test_percents_are_whole_numbers_with_or_without_a_percent_sign(value, expected):
    assert check(crit_percent=value, escalate_percent=99)["settings"]["crit_percent"] == expected


@pytest.mark.parametrize("value", ["85.5%", 85.5, "eighty", "0", 0, 101, "-5", True, "%", "85%%"])
def test_other_percents_are_refused_on_one_line(value):
    problems = check(crit_percent=value)["problems"]
    assert problems == ['emergency_disk_crit_percent: %r is not a whole percentage from 1 to 100 '
                        '(85 or "85%%")' % (value,)]


@given(st.integers(1, 100), st.sampled_from(["{}", "{}%", " {} %", "{} "]), st.booleans())
def test_any_whole_percent_written_any_accepted_way_is_that_number(number, form, as_int):
    value = number if as_int else form.format(number)
    result = check(escalate_percent=value, target_percent=1, crit_percent=100)
    assert result["settings"]["escalate_percent"] == number and result["problems"] == []


@given(st.text(max_size=8))
def test_a_percent_string_is_accepted_exactly_when_it_is_digits_and_an_optional_sign(text):
    stripped = text.strip()
    digits = stripped[:-1].strip() if stripped.endswith("%") else stripped
    model = digits.isascii() and digits.isdigit() and 1 <= int(digits) <= 100
    result = check(escalate_percent=text, target_percent=1, crit_percent=100)
    if text.strip() == "":
        return  # empty means the default
    assert (result["problems"] == []) is model


@pytest.mark.parametrize("given,problem", [
    ({"until": "7d"}, "emergency_disk_until: '7d' is not a duration; use a Go duration, numbers with a "
                      "unit h, m, s, ms, us or ns (168h, 24h, 1h30m, 90m, 0s); no days in Go: 7d is 168h"),
    ({"containers_until": "3000000h"}, "emergency_disk_containers_until: '3000000h' is longer than Docker "
                                       "accepts (Go durations end at 2562047h47m16s, about 292 years); "
                                       "use a shorter one such as 168h"),
    ({"force": "maybe"}, "emergency_disk_force: 'maybe' is not a boolean (true/false, yes/no, on/off, 1/0)"),
    ({"journal_vacuum_time": "7 days"}, "emergency_disk_journal_vacuum_time: '7 days' is not an age as "
                                        "journalctl --vacuum-time and find read it: a number and s, m, h, "
                                        "d or w (7d, 12h, 2w)"),
    ({"path": "var/lib"}, "emergency_disk_path: 'var/lib' is not an absolute path"),
    ({"log_retention_days": "two"}, "emergency_disk_log_retention_days: 'two' is not a whole number of "
                                    "days, 0 or more"),
    ({"largest_count": 0}, "emergency_disk_largest_count: 0 is not a whole number, 1 or more"),
    ({"scan_timeout": "soon"}, "emergency_disk_scan_timeout: 'soon' is not a number of seconds above 0"),
    ({"scan_timeout": "inf"}, "emergency_disk_scan_timeout: 'inf' is not a number of seconds above 0"),
    ({"media_size_limit": "5 parsecs"}, "emergency_disk_media_size_limit: unknown unit 'parsecs' in "
                                        "'5 parsecs'; use B, kB/KB, MB, GB, TB (powers of 1000) or KiB, "
                                        "MiB, GiB, TiB (powers of 1024)"),
    ({"docker_host": "docker.local:2375"}, "emergency_disk_docker_host: 'docker.local:2375' is not empty "
                                           "(DOCKER_HOST, else the local socket) or an engine address such "
                                           "as unix:///var/run/docker.sock or tcp://host:2376"),
    ({"target_percent": 85, "escalate_percent": 90},
     "emergency_disk_target_percent: 85 must be below emergency_disk_crit_percent "
     "(85): the steps stop once usage is below the target"),
    ({"target_percent": "75%", "escalate_percent": 72, "crit_percent": 90},
     "emergency_disk_target_percent: 75 must be at most emergency_disk_escalate_percent (72)"),
], ids=["days", "beyond-go", "bool", "vacuum-time", "relative-path", "days-count", "largest-0",
        "timeout", "timeout-inf", "size", "docker-host", "target-at-crit", "target-over-escalate"])
def test_each_bad_value_is_one_line_naming_variable_value_and_rule(given, problem):
    assert check(**given)["problems"] == [problem]


def test_every_problem_is_reported_at_once():
    result = check(until="7d", crit_percent="85.5%", force="maybe")
    assert [p.split(":")[0] for p in result["problems"]] == [
        "emergency_disk_crit_percent", "emergency_disk_force", "emergency_disk_until"]


@pytest.mark.parametrize("value,expected", [(True, True), ("yes", True), ("TRUE", True), ("on", True),
                                            (1, True), ("1", True), (False, False), ("no", False),
                                            ("off", False), (0, False)])
def test_booleans_as_ansible_writes_them(value, expected):
    assert check(force=value)["settings"]["force"] is expected


def test_empty_strings_mean_the_default_as_before():
    settings = check(path="", until="", docker_host="", media_path="")["settings"]
    assert (settings["path"], settings["until"], settings["docker_host"]) == ("/", "168h", "")


def test_an_unknown_emergency_disk_variable_is_named_with_the_closest_known_one():
    result = emergency.check_emergency_settings({
        "emergency_disk_unitl": "0s", "emergency_disk_crit_precent": 90, "emergency_disk_xyz": 1,
        "emergency_disk_hosts": "web", "emergency_disk_summary": {}, "other_variable": 1})
    assert result["problems"] == []
    assert result["warnings"] == [
        "emergency_disk_crit_precent is not a setting of emergency-disk.yml; did you mean "
        "emergency_disk_crit_percent?",
        "emergency_disk_unitl is not a setting of emergency-disk.yml; did you mean emergency_disk_until?",
        "emergency_disk_xyz is not a setting of emergency-disk.yml"]


def test_the_modules_variables_are_the_run_settings_checked_with_the_unknown_names_as_warnings():
    """The playbook hands the module every emergency_disk_* variable as given: the module
    runs with the checked values (not the playbook's own telegram), warns about unknown
    names, and refuses a bad value with the same one line per problem."""
    settings, warnings = emergency.settings_from_variables({
        "emergency_disk_crit_percent": "90%", "emergency_disk_telegram": False,
        "emergency_disk_unitl": "0s", "emergency_disk_hosts": "web"})
    assert settings["crit_percent"] == 90 and settings["until"] == "168h"
    assert set(settings) == set(emergency.RUN_SETTINGS)
    assert warnings == ["emergency_disk_unitl is not a setting of emergency-disk.yml; did you mean emergency_disk_until?"]
    with pytest.raises(OpsError) as caught:
        emergency.settings_from_variables({"emergency_disk_until": "7d", "emergency_disk_force": "maybe"})
    assert caught.value.message == "; ".join(check(until="7d", force="maybe")["problems"])


def test_a_short_name_in_the_modules_variables_is_refused_not_ignored():
    """``variables: {path: /data, force: true}`` (the module's other options are short names)
    would otherwise run on / with every default: refused before anything changes."""
    with pytest.raises(OpsError) as caught:
        emergency.settings_from_variables({"path": "/data", "force": True, "emergency_disk_crit_percent": 90})
    assert caught.value.message == ("variables: 'force' is not an emergency_disk_* name; use emergency_disk_force; "
                                    "variables: 'path' is not an emergency_disk_* name; use emergency_disk_path")


def test_a_table_that_cannot_be_built_still_returns_the_summary_and_fails_the_host():
    """The table is built after the cleanup ran: a bug there must not lose the record of
    what was removed, nor the verdict (a failed step still fails the host)."""
    settings = emergency.check_run_settings({})
    summary = {"host": "web1", "failed_steps": ["Docker images: engine gone"], "escalate": False}
    result = emergency._result(settings, True, [], summary)  # pylint: disable=protected-access
    assert result["summary"] == summary
    assert result["lines"][0].startswith("web1: the summary table could not be built (KeyError: ")
    assert result["verdict"] == "web1: Docker images: engine gone"
    assert emergency._result(settings, False, [], dict(summary, failed_steps=[]))["verdict"] == ""  # pylint: disable=protected-access

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""validate.py: every role's variables in one pass, one line per problem, on the real specs.

The specs and defaults are the roles' own files. Drift tests keep every job name, every
``--timeout`` variable and every cron field of every role under the core's rules, every
role's preflight dependency first, and the argument-spec conversions in step with
ansible-core's own role validation (so bad input never reaches it and its spec dump).
"""

from __future__ import annotations

import os
import re
import sys

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible.module_utils.common.arg_spec import ArgumentSpecValidator  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import validate  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    JOB_NAME_RULE, TIMEOUT_RULE)

ROLES = os.path.join(_REPO, "roles")
JOB_ROLES = ["backup", "disk_monitor", "docker_cleanup", "health_monitor", "media_baseline",
             "media_cleanup"]
# What the specs require, and what provision.yml needs to turn a role on.
REQUIRED = {"media_baseline_path": "/srv/media", "media_cleanup_media_path": "/srv/media",
            "media_cleanup_chdir": "/srv/app", "backup_repository": "/srv/restic",
            "backup_password": "secret-pw", "backup_paths": ["/srv/app"]}


def _load(role, *parts):
    path = os.path.join(ROLES, role, *parts)
    if not os.path.exists(path):
        return {}
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


def _specs(roles=("base",) + tuple(JOB_ROLES)):
    return {role: _load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
            for role in roles}


def _values(**overrides):
    """The roles' defaults (templated ones left out: the action plugin templates them)."""
    values = {}
    for role in ("base",) + tuple(JOB_ROLES):
        values.update({k: v for k, v in _load(role, "defaults", "main.yml").items()
                       if "{{" not in str(v)})
    values.update(REQUIRED)
    values.update(overrides)
    return values


def _check(**overrides):
    values = _values(**overrides)
    return validate.check_roles(_specs(), values, names=set(values))


def test_the_defaults_of_every_role_are_valid():
    result = _check()
    assert result["problems"] == [] and result["warnings"] == []
    assert result["paths"]["disk_monitor_paths"] == ["/"]
    assert result["paths"]["backup_paths"] == ["/srv/app"]


def test_the_issue_examples_are_one_line_each_and_all_at_once():
    result = _check(disk_monitor_cron_hour=25, docker_cleanup_cron_hour="3am", backup_password="",
                    disk_monitor_warn_percent=90, disk_monitor_crit_percent="abc",
                    docker_cleanup_until="7d", disk_monitor_job_name="disk.monitor",
                    backup_timeout_seconds=0)
    assert result["problems"] == [
        "backup_timeout_seconds: 0 is not a valid timeout: use %s" % TIMEOUT_RULE,
        'backup_password: "" must be set when backup_engine is restic',
        "disk_monitor_crit_percent: abc is not a whole number",
        "disk_monitor_cron_hour: 25 is not an hour (0-23, */N, lists and ranges as cron reads them)",
        "disk_monitor_job_name: disk.monitor is not a valid job name: use %s (no dot: Debian's cron "
        "silently ignores /etc/cron.d files with one)" % JOB_NAME_RULE,
        "docker_cleanup_until: 7d is not a duration (a Go duration such as 168h, 24h, 90m or 0s)",
        "docker_cleanup_cron_hour: 3am is not an hour (0-23, */N, lists and ranges as cron reads them)",
    ]
    assert all("\n" not in line for line in result["problems"])


def test_thresholds_must_be_in_order():
    assert _check(disk_monitor_warn_percent=90)["problems"] == [
        "disk_monitor_warn_percent: 90 is not below disk_monitor_crit_percent (85)"]
    assert _check(disk_monitor_inode_warn_percent="85")["problems"] == [
        "disk_monitor_inode_warn_percent: 85 is not below disk_monitor_inode_crit_percent (85)"]


@pytest.mark.parametrize("name, value, line", [
    ("disk_monitor_paths", ["/", "srv"], 'disk_monitor_paths: ["/", "srv"] holds srv, which is not an absolute path'),
    ("disk_monitor_paths", [], "disk_monitor_paths: [] is empty; give at least one"),
    ("disk_monitor_warn_percent", 120, "disk_monitor_warn_percent: 120 is not a percentage (0-100)"),
    ("disk_monitor_logrotate_frequency", "hourly",
     "disk_monitor_logrotate_frequency: hourly is not one of daily, weekly, monthly, yearly"),
    ("disk_monitor_alert", "maybe", "disk_monitor_alert: maybe is not true or false"),
    ("media_cleanup_size_limit", "lots", "media_cleanup_size_limit: lots is not a size (a number of bytes or e.g. 500MB, 1.5GiB)"),
    ("backup_check_read_data_subset", "half", "backup_check_read_data_subset: half is not a restic subset (e.g. 5%, 1/10 or 500M)"),
    ("docker_cleanup_target_percent", "85%", "docker_cleanup_target_percent: 85% is not a number"),
    ("docker_cleanup_target_percent", "", 'docker_cleanup_target_percent: "" is not a number'),
    ("docker_cleanup_target_percent", 100,
     "docker_cleanup_target_percent: 100 is not a percentage between 0 and 100 (exclusive); leave it unset to run every step"),
    ("runbook_ops_textfile_dir", "var/lib/prometheus/node-exporter",
     "runbook_ops_textfile_dir: var/lib/prometheus/node-exporter is not an absolute path"),
    ("runbook_ops_job_ping_urls", {"a.b": "http://x"},
     "runbook_ops_job_ping_urls: key a.b is not a valid job name: use %s (no dot: Debian's cron silently "
     "ignores /etc/cron.d files with one)" % JOB_NAME_RULE),
    ("health_monitor_endpoints", [{"name": "app"}],
     "health_monitor_endpoints[0].url: is required (http:// or https:// URL, e.g. http://127.0.0.1:8000/health/)"),
    ("health_monitor_endpoints", [{"name": "app", "url": "http://x", "expected_status": "ok"}],
     "health_monitor_endpoints[0].expected_status: ok is not a whole number"),
    ("health_monitor_memory_warning_percent", 95,
     "health_monitor_memory_warning_percent: 95 is not below health_monitor_memory_critical_percent (90)"),
    ("health_monitor_swap_critical_percent", 120, "health_monitor_swap_critical_percent: 120 is not a percentage (0-100)"),
    ("health_monitor_cpu_warning_percent", "busy", "health_monitor_cpu_warning_percent: busy is not a whole number"),
    ("health_monitor_certificate_critical_days", 30,
     "health_monitor_certificate_critical_days: 30 is not below health_monitor_certificate_warning_days (21)"),
    ("health_monitor_certificate_interval_seconds", 60, "health_monitor_certificate_interval_seconds: 60 is below 300"),
    ("health_monitor_command_timeout_seconds", 0,
     "health_monitor_command_timeout_seconds: 0 is not a valid timeout: use %s" % TIMEOUT_RULE),
    ("health_monitor_commands", [{"name": "queue"}],
     "health_monitor_commands[0].command: is required (An argv (list of strings), or a shell command line (string) "
     "run by /bin/sh -c)"),
    ("health_monitor_commands", [{"name": "queue", "command": "redis-cli llen q", "warn_above": 5000, "crit_above": "1000"}],
     "health_monitor_commands[0].warn_above: 5000 is not below crit_above (1000)"),
    ("health_monitor_commands", [{"name": "queue", "command": "x", "warn_above": "many"}],
     "health_monitor_commands[0].warn_above: many is not a number"),
    ("health_monitor_commands", [{"name": "q q", "command": ["redis-cli", "ping"]}],
     "health_monitor_commands[0].name: \"q q\" is not a short name of letters, digits, '.', '_' or '-'"),
    ("health_monitor_commands", [{"name": "a", "command": "sleep 1", "timeout_seconds": 115},
                                 {"name": "b", "command": "sleep 1"}],
     "health_monitor_commands: their timeouts add up to 125 s, not below health_monitor_job_timeout_seconds (120): "
     "the wrapper would stop the run before the last command ends"),
    ("health_monitor_certificates", [{"host": "shop.example", "port": 70000}],
     "health_monitor_certificates[0].port: 70000 is not a port (1-65535)"),
    ("health_monitor_certificates", [{"host": "shop.example", "ca_file": "ca.pem"}],
     "health_monitor_certificates[0].ca_file: ca.pem is not an absolute path"),
    ("backup_job_name", "b" * 95,
     "backup_job_name: %s is too long for the freshness job %s-freshness (is not a valid job name: use %s)"
     % ("b" * 95, "b" * 95, JOB_NAME_RULE)),
    ("media_cleanup_job_name", "m" * 95,
     "media_cleanup_job_name: %s is too long for the review reminder's cron file %s-review (is not a valid job name: use %s)"
     % ("m" * 95, "m" * 95, JOB_NAME_RULE)),
    ("backup_paths", [], "backup_paths: [] leaves nothing to back up: set backup_paths, backup_volumes, "
     "backup_compose_project_dir or backup_hooks"),
])
def test_each_rule_names_the_variable_its_value_and_the_rule(name, value, line):
    assert _check(**{name: value})["problems"] == [line]


def test_certificate_ca_files_must_exist_on_the_host():
    result = _check(health_monitor_certificates=[{"host": "a.example", "ca_file": "/etc/ssl/internal-ca.pem"},
                                                 {"host": "b.example"}])
    assert result["problems"] == []
    assert result["paths"]["health_monitor_certificates"] == ["/etc/ssl/internal-ca.pem"]
    assert validate.missing_paths({"health_monitor_certificates": ["/etc/ssl/internal-ca.pem"]}, set()) == [
        "health_monitor_certificates: /etc/ssl/internal-ca.pem does not exist on the host"]


def test_archive_backups_need_no_repository_nor_password():
    assert _check(backup_engine="archive", backup_repository="", backup_password="")["problems"] == []


def test_a_secret_never_shows():
    assert validate.spec_problems("backup_password", {"type": "int", "no_log": True}, "hunter2")[1] == [
        "backup_password: (secret) is not a whole number"]


def test_paths_of_valid_variables_are_looked_up_and_missing_ones_refused():
    result = _check(disk_monitor_paths=["/", "/srv/data"])
    assert result["paths"]["disk_monitor_paths"] == ["/", "/srv/data"]
    assert validate.missing_paths(result["paths"], {"/", "/srv/app", "/srv/media"}) == [
        "disk_monitor_paths: /srv/data does not exist on the host"]


def test_a_misspelt_variable_gets_the_closest_known_one():
    values = _values()
    names = set(values) | {"disk_monitor_warn_precent", "disk_monitor_zzz", "__disk_monitor_x",
                           "runbook_ops_stat_dir", "provision_backup_enabled", "backup_dirs", "backup_keep_dayly"}
    internal = {"base": set(_load("base", "vars", "main.yml"))}
    assert validate.check_roles(_specs(), values, names, internal)["warnings"] == [
        "runbook_ops_stat_dir: did you mean runbook_ops_state_dir? (not a variable of runbook.ops.base, ignored)",
        "backup_dirs: not a variable of runbook.ops.backup, ignored",
        "backup_keep_dayly: did you mean backup_keep_daily? (not a variable of runbook.ops.backup, ignored)",
        "disk_monitor_warn_precent: did you mean disk_monitor_warn_percent? "
        "(not a variable of runbook.ops.disk_monitor, ignored)",
        "disk_monitor_zzz: not a variable of runbook.ops.disk_monitor, ignored",
    ]


# --- drift: every role keeps its job names, timeouts and cron fields under the rules ------

# what each job role passes to runbook.ops.job, which puts it on the cron line's --timeout
_TIMEOUT_VARIABLE = re.compile(r"job_timeout_seconds:\s*\"\{\{\s*(\w+)\s*\}\}\"")


def _role_texts(role):
    for part in ("tasks", "templates"):
        for folder, _dirs, files in os.walk(os.path.join(ROLES, role, part)):
            for name in files:
                with open(os.path.join(folder, name), encoding="utf-8") as handle:
                    yield handle.read()


def _timeout_variables():
    found = sorted({(role, v) for role in JOB_ROLES for text in _role_texts(role)
                    for v in _TIMEOUT_VARIABLE.findall(text)})
    assert {role for role, _v in found} == set(JOB_ROLES), found  # never an empty, silent test
    return found


def test_every_role_with_a_cron_job_runs_preflight_first_for_itself_and_base():
    with_jobs = {role for role in os.listdir(ROLES)
                 if any(re.search(r"name: runbook\.ops\.job\n", text) for text in _role_texts(role))}
    assert with_jobs == set(JOB_ROLES)
    for role in JOB_ROLES:
        first = _load(role, "meta", "main.yml")["dependencies"][0]
        assert first == {"role": "runbook.ops.preflight", "preflight_roles": ["base", role]}
    assert _load("base", "meta", "main.yml")["dependencies"] == [
        {"role": "runbook.ops.preflight", "preflight_roles": ["base"]}]


@pytest.mark.parametrize("role, variable", _timeout_variables(), ids=[v for _r, v in _timeout_variables()])
def test_every_timeout_on_a_cron_line_is_checked_and_its_spec_says_the_rule(role, variable):
    assert _check(**{variable: 0})["problems"] == [
        "%s: 0 is not a valid timeout: use %s" % (variable, TIMEOUT_RULE)]
    spec = _specs((role,))[role][variable]
    assert TIMEOUT_RULE in " ".join(spec["description"]).lower()


def _options(suffix):
    return [(role, name) for role, options in _specs().items() for name in options
            if re.search(suffix, name)]


@pytest.mark.parametrize("role, variable", _options(r"_job_name$"), ids=[v for _r, v in _options(r"_job_name$")])
def test_every_job_name_is_checked_and_its_spec_says_the_rule(role, variable):
    assert _check(**{variable: "nightly.job"})["problems"][0].startswith(
        "%s: nightly.job is not a valid job name: use %s" % (variable, JOB_NAME_RULE))
    description = " ".join(_specs((role,))[role][variable]["description"])
    said = re.sub(r"C\((.)\)", r"'\1'", re.sub(r"\s+", " ", description)).lower()
    assert JOB_NAME_RULE.lower() in said


@pytest.mark.parametrize("role, variable", _options(validate._CRON), ids=[v for _r, v in _options(validate._CRON)])
def test_every_cron_field_is_read_as_cron_reads_it(role, variable):
    assert _check(**{variable: "99"})["problems"][0].startswith("%s: 99 is not " % variable)
    assert _check(**{variable: "1,2"})["problems"] == []


# --- the argument-spec conversions agree with ansible-core's role validation --------------

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-10 ** 6, 10 ** 6),
                    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8),
                    st.sampled_from(["yes", "Off", " 7 ", "1e3", "2.0", "2.5", "0x10", "1_000", "t"]))
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=3), st.dictionaries(st.text(max_size=3), SCALARS, max_size=2))


@given(st.sampled_from(["int", "float", "bool", "list", "str", "path", "raw"]), VALUES)
def test_conversions_agree_with_ansible_core(kind, value):
    ours = validate.spec_problems("x", {"type": kind}, value)[1]
    theirs = ArgumentSpecValidator({"x": {"type": kind}}).validate({"x": value}).errors
    theirs = [error.msg for error in theirs]
    assert bool(ours) == bool(theirs), (ours, theirs)


@given(st.one_of(st.dictionaries(st.text(max_size=3), SCALARS, max_size=2), st.integers(), st.lists(SCALARS),
                 st.sampled_from(['{"a": 1}', "{'a': 1}", "a=1 b=2", "{nope", "plain"])))
def test_dict_conversions_agree_with_ansible_core(value):
    ours = validate.spec_problems("x", {"type": "dict"}, value)[1]
    theirs = ArgumentSpecValidator({"x": {"type": "dict"}}).validate({"x": value}).errors
    theirs = [error.msg for error in theirs]
    assert bool(ours) == bool(theirs), (ours, theirs)


def test_disarming_the_media_cleanup_needs_no_media_paths_on_the_host():
    present = _check()["paths"]
    assert present["media_cleanup_media_path"] == ["/srv/media"]
    absent = _check(media_cleanup_state="absent")["paths"]
    assert not [name for name in absent if name.startswith("media_cleanup_")]
    assert absent["disk_monitor_paths"] == ["/"]


@pytest.mark.parametrize("name", ["media_baseline_path", "media_cleanup_media_path", "media_cleanup_chdir"])
def test_a_required_path_left_unset_is_refused_by_name(name):
    """The roles give required variables no default, so leaving one out is refused in one line."""
    values = _values()
    del values[name]
    assert [line.split(" (")[0] for line in validate.check_roles(_specs(), values, names=set(values))["problems"]] \
        == ["%s: is required" % name]

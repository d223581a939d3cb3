# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The job_name_problem filter, and a drift test: every role checks its job name first,
with the core's rule, and says the same rule in its argument spec."""

from __future__ import annotations

import os
import re
import sys

import pytest
import yaml

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 4))
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.filter.job_name_problem import (  # noqa: E402
    FilterModule)
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    JOB_NAME_RULE, job_name_problem)

ROLES = os.path.join(_REPO, "roles")
job_name_filter = FilterModule().filters()["job_name_problem"]


@pytest.mark.parametrize("name", ["backup", "health-monitor", "meal-photos-cleanup", "a_1",
                                  "_private", "x" * 100])
def test_good_names_have_no_problem(name):
    assert job_name_filter(name, "backup_job_name") == ""


@pytest.mark.parametrize("name", ["backup.daily", "-x", "", "a b", "a/b", "x" * 101,
                                  "backup\n", None, 7])
def test_bad_names_get_one_line_naming_variable_value_and_rule(name):
    problem = job_name_filter(name, "backup_job_name")
    assert problem == job_name_problem(name, "backup_job_name")
    assert problem.startswith("backup_job_name %r is not a valid job name: use %s"
                              % (name, JOB_NAME_RULE))
    assert "\n" not in problem.replace(repr(name), "")


def test_a_dot_is_explained_by_what_cron_does_with_it():
    assert job_name_filter("backup.daily", "backup_job_name").endswith(
        "(no dot: Debian's cron silently ignores /etc/cron.d files with one)")


def _job_name_options():
    """``(role, variable, spec)`` for every role option named ``<role>_job_name``."""
    found = []
    for role in sorted(os.listdir(ROLES)):
        path = os.path.join(ROLES, role, "meta", "argument_specs.yml")
        if not os.path.exists(path):
            continue
        with open(path, encoding="utf-8") as handle:
            options = yaml.safe_load(handle)["argument_specs"]["main"]["options"]
        for variable, spec in options.items():
            if variable.endswith("_job_name"):
                found.append((role, variable, spec))
    return found


def _roles_with_cron_jobs():
    """Roles whose tasks or templates install a ``runbook-ops run --job`` line."""
    roles = set()
    for role in os.listdir(ROLES):
        for part in ("tasks", "templates"):
            for folder, _dirs, files in os.walk(os.path.join(ROLES, role, part)):
                for name in files:
                    with open(os.path.join(folder, name), encoding="utf-8") as handle:
                        if "/usr/local/bin/runbook-ops run --job" in handle.read():
                            roles.add(role)
    return roles


def test_every_role_with_a_cron_job_has_a_job_name_option():
    assert _roles_with_cron_jobs() == {role for role, _var, _spec in _job_name_options()}
    assert len(_job_name_options()) == 6


@pytest.mark.parametrize("role, variable, spec", _job_name_options(),
                         ids=[v for _r, v, _s in _job_name_options()])
def test_role_spec_and_first_task_agree_with_the_core_rule(role, variable, spec):
    assert job_name_problem(spec["default"], variable) == ""
    description = " ".join(spec["description"] if isinstance(spec["description"], list)
                           else [spec["description"]])
    said = re.sub(r"C\((.)\)", r"'\1'", re.sub(r"\s+", " ", description)).lower()
    assert JOB_NAME_RULE.lower() in said, "the spec must state the core's rule"
    with open(os.path.join(ROLES, role, "tasks", "main.yml"), encoding="utf-8") as handle:
        first = yaml.safe_load(handle)[0]
    check = "{{ %s | runbook.ops.job_name_problem('%s') }}" % (variable, variable)
    assert list((first.get("vars") or {}).values()) == [check], "the first task checks it"
    assert first["ansible.builtin.assert"]["fail_msg"] == "{{ %s }}" % list(first["vars"])[0]

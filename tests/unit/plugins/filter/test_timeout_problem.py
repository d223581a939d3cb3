# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The timeout_problem filter, and a drift test: every variable a role passes to
``runbook-ops run --timeout`` is checked by the role's second task with the core's rule,
and its argument spec says that rule."""

from __future__ import annotations

import os
import re
import sys

import pytest
import yaml

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 4))
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.filter.timeout_problem import (  # noqa: E402
    FilterModule)
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    TIMEOUT_RULE, timeout_problem)

ROLES = os.path.join(_REPO, "roles")
timeout_filter = FilterModule().filters()["timeout_problem"]
_TIMEOUT_VARIABLE = re.compile(r"--timeout\s+\{\{\s*(\w+)\s*\}\}")


@pytest.mark.parametrize("value", [120, 3600, 0.5, "21600"])
def test_good_timeouts_have_no_problem(value):
    assert timeout_filter(value, "backup_timeout_seconds") == ""


@pytest.mark.parametrize("value", [0, -5, "-1", "soon", None])
def test_bad_timeouts_get_the_core_line(value):
    assert timeout_filter(value, "backup_timeout_seconds") == timeout_problem(
        value, "backup_timeout_seconds") != ""


def _timeout_variables():
    """``(role, variable)`` for every ``--timeout {{ variable }}`` a role writes."""
    found = set()
    for role in sorted(os.listdir(ROLES)):
        for part in ("tasks", "templates"):
            for folder, _dirs, files in os.walk(os.path.join(ROLES, role, part)):
                for name in files:
                    with open(os.path.join(folder, name), encoding="utf-8") as handle:
                        found.update((role, v) for v in _TIMEOUT_VARIABLE.findall(handle.read()))
    return sorted(found)


def test_every_role_with_a_cron_job_passes_a_timeout_variable():
    assert {role for role, _variable in _timeout_variables()} == {
        "backup", "disk_monitor", "docker_cleanup", "health_monitor", "media_baseline",
        "media_cleanup"}


@pytest.mark.parametrize("role, variable", _timeout_variables(),
                         ids=[v for _r, v in _timeout_variables()])
def test_the_second_task_checks_each_timeout_and_the_spec_says_the_rule(role, variable):
    with open(os.path.join(ROLES, role, "tasks", "main.yml"), encoding="utf-8") as handle:
        second = yaml.safe_load(handle)[1]
    checks = " ".join(str(value) for value in (second.get("vars") or {}).values())
    assert "%s | runbook.ops.timeout_problem('%s')" % (variable, variable) in checks
    assert "runbook.ops.timeout_problem" in checks and "ansible.builtin.assert" in second
    with open(os.path.join(ROLES, role, "meta", "argument_specs.yml"), encoding="utf-8") as handle:
        spec = yaml.safe_load(handle)["argument_specs"]["main"]["options"][variable]
    assert timeout_problem(spec["default"], variable) == ""
    description = " ".join(spec["description"] if isinstance(spec["description"], list)
                           else [spec["description"]])
    assert TIMEOUT_RULE.lower() in re.sub(r"\s+", " ", description).lower()

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options declared once per domain: the role's variables agree with the core's table on
name, type, default and choices, and the role's settings file carries every option."""

from __future__ import annotations

import os
import re
import sys

import pytest
import yaml

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import (  # noqa: E402
    disk, docker_cleanup, health, media)

# domain table, role, its settings template, options the role does not expose (the base
# runtime's state_dir; the gate's one-off record count and its command's time limit, which the
# role sets from its own command timeout; the disk_check module's own), the role's value where
# the core has none (its spelling of "unset", which its settings template turns into null, or
# the wrapper's time limit, which media_baseline also gives the measurement), and the role's
# names that are not <role>_<option>
DOMAINS = [
    (docker_cleanup.OPTIONS, "docker_cleanup", "docker-cleanup.json.j2", {"state_dir"}, {"docker_host": ""}, {}),
    (media.GATE_OPTIONS, "media_cleanup", None, {"record_count", "record_count_timeout"},
     {"record_count_command": ""}, {}),
    (disk.OPTIONS, "disk_monitor", "disk-monitor.json.j2", {"fail_on", "host_label"},
     {"scan_timeout": 0, "history_file": ""}, {"scan_timeout": "scan_timeout_seconds"}),
    (media.BASELINE_OPTIONS, "media_baseline", "media-baseline.json.j2", set(), {"timeout_seconds": 3600},
     {"media_path": "path", "baseline_file": "file"}),
    (health.OPTIONS, "health_monitor", "health-monitor.json.j2", set(), {},
     {"resource_checks": "resources_enabled"}),
    # the role's defaults for each endpoint's own settings
    (health.ENDPOINT_OPTIONS, "health_monitor", None, {"name", "url", "host_header", "expected_text", "validate_certs"},
     {}, {}),
]


def _role(role, *parts):
    with open(os.path.join(_REPO, "roles", role, *parts), encoding="utf-8") as handle:
        return handle.read()


@pytest.mark.parametrize("table, role, template, internal, unset, renamed", DOMAINS, ids=[d[1] for d in DOMAINS])
def test_the_role_declares_each_option_as_the_core_does(table, role, template, internal, unset, renamed):
    options = yaml.safe_load(_role(role, "meta", "argument_specs.yml"))["argument_specs"]["main"]["options"]
    for name, spec in table.items():
        if name in internal:
            continue
        variable = "%s_%s" % (role, renamed.get(name, name))
        declared = options.get(variable)
        assert declared is not None, "%s is missing from the role's argument_specs.yml" % variable
        assert declared["type"] == spec["type"] or (spec["type"] == "raw" and name in unset), name
        assert declared.get("default", unset.get(name)) == spec.get("default", unset.get(name)), name
        assert declared.get("choices") == spec.get("choices"), name
        assert declared.get("elements") == spec.get("elements"), name


# media_cleanup passes the gate's options to the module task by task: no settings file
@pytest.mark.parametrize("table, role, template, internal, unset, renamed", [d for d in DOMAINS if d[2]],
                         ids=[d[1] for d in DOMAINS if d[2]])
def test_the_roles_settings_file_carries_every_option(table, role, template, internal, unset, renamed):
    text = _role(role, "templates", "etc", "runbook-ops", template)
    text = text[text.rindex("{{ {"):]  # the settings, not the entries built before them
    keys = set(re.findall(r'^\s*"(\w+)":', text, re.M)) - {"_comment"}
    assert keys == set(table) - internal

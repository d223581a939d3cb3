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

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_cleanup, media  # noqa: E402

# domain table, role, its settings template, options the role does not expose (the base
# runtime's state_dir; the gate's one-off record count and its command's time limit, which the
# role sets from its own command timeout), and the role's spelling of "unset" where its
# settings template turns it into null
DOMAINS = [
    (docker_cleanup.OPTIONS, "docker_cleanup", "docker-cleanup.json.j2", {"state_dir"}, {"docker_host": ""}),
    (media.GATE_OPTIONS, "media_cleanup", None, {"record_count", "record_count_timeout"},
     {"record_count_command": ""}),
]


def _role(role, *parts):
    with open(os.path.join(_REPO, "roles", role, *parts), encoding="utf-8") as handle:
        return handle.read()


@pytest.mark.parametrize("table, role, template, internal, unset", DOMAINS, ids=[d[1] for d in DOMAINS])
def test_the_role_declares_each_option_as_the_core_does(table, role, template, internal, unset):
    options = yaml.safe_load(_role(role, "meta", "argument_specs.yml"))["argument_specs"]["main"]["options"]
    for name, spec in table.items():
        if name in internal:
            continue
        declared = options.get("%s_%s" % (role, name))
        assert declared is not None, "%s_%s is missing from the role's argument_specs.yml" % (role, name)
        assert declared["type"] == spec["type"] or (spec["type"] == "raw" and name in unset), name
        assert declared.get("default", unset.get(name)) == spec.get("default", unset.get(name)), name
        assert declared.get("choices") == spec.get("choices"), name


# media_cleanup passes the gate's options to the module task by task: no settings file
@pytest.mark.parametrize("table, role, template, internal, unset", [d for d in DOMAINS if d[2]],
                         ids=[d[1] for d in DOMAINS if d[2]])
def test_the_roles_settings_file_carries_every_option(table, role, template, internal, unset):
    text = _role(role, "templates", "etc", "runbook-ops", template)
    keys = set(re.findall(r'^\s*"(\w+)":', text, re.M)) - {"_comment"}
    assert keys == set(table) - internal

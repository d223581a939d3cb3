# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""options.py: a module's argument_spec and a job's config check from one table."""

from __future__ import annotations

import os
import sys

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.options import (  # noqa: E402
    check_config, module_spec)

TABLE = {
    "paths": {"type": "list", "elements": "path", "default": ["/"]},
    "percent": {"type": "int", "default": 70},
    "timeout": {"type": "float"},
    "mode": {"type": "str", "default": "a", "choices": ["a", "b"]},
    "alert": {"type": "bool", "default": True, "only": "cli"},
    "host": {"type": "str", "only": "module"},
    "src": {"type": "path", "required": True},
}


def test_the_module_gets_its_options_with_ansible_keys_only_and_its_own_defaults():
    spec = module_spec(TABLE, timeout=30.0)
    assert set(spec) == {"paths", "percent", "timeout", "mode", "host", "src"}
    assert spec["timeout"] == {"type": "float", "default": 30.0}
    assert spec["host"] == {"type": "str"}
    assert "default" not in TABLE["timeout"]  # the table itself is left alone


def test_the_config_gets_the_defaults_and_keeps_what_it_says():
    config = check_config(TABLE, {"_comment": "managed", "src": "/srv", "percent": 80.0, "mode": None})
    assert config == {"paths": ["/"], "percent": 80, "timeout": None, "mode": "a", "alert": True, "src": "/srv"}
    assert isinstance(config["percent"], int)
    config["paths"].append("/data")
    assert TABLE["paths"]["default"] == ["/"]


@pytest.mark.parametrize("data, message", [
    ([], "job.json: the config must be a JSON object"),
    ({"src": "/s", "prcent": 1}, "job.json: unknown key(s) prcent; known keys: alert, mode, paths, percent, src, timeout"),
    ({"src": "/s", "host": "web1"}, "unknown key(s) host"),
    ({}, "job.json: src is required"),
    ({"src": "/s", "percent": 70.5}, "job.json: percent must be a whole number, got 70.5"),
    ({"src": "/s", "percent": True}, "percent must be a whole number, got True"),
    ({"src": "/s", "timeout": "5"}, "timeout must be a number, got '5'"),
    ({"src": "/s", "alert": "yes"}, "alert must be true or false, got 'yes'"),
    ({"src": "/s", "paths": "/"}, "paths must be a list of paths, got '/'"),
    ({"src": "/s", "paths": ["/", ""]}, "paths must be a list of paths"),
    ({"src": "/s", "mode": "c"}, "job.json: mode: 'c' is not one of a, b"),
], ids=["not-a-mapping", "unknown", "module-only", "required", "fraction", "bool-int", "str-number",
        "str-bool", "str-list", "empty-path", "choice"])
def test_a_bad_config_is_refused_naming_the_key_and_the_rule(data, message):
    with pytest.raises(OpsError) as caught:
        check_config(TABLE, data, "job.json")
    assert message in caught.value.message

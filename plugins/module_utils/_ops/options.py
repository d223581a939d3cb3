# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options declared once per domain, in argument-spec style (``{name: {"type",
"default", "choices", "elements", "required"}}``), with ``"only": "module"`` or
``"only": "cli"`` on an option of one front-end.

``module_spec`` builds a module's ``argument_spec`` from such a table; ``check_config``
checks a job's JSON config against it (JSON values as they are: no conversions) and fills
in the defaults. A unit test (test_options_once.py) holds each role's
``meta/argument_specs.yml`` to the tables.
"""

from __future__ import annotations

import copy

from .errors import OpsError

_ANSIBLE_KEYS = ("type", "default", "choices", "elements", "required", "no_log")
_NUMBER = (int, float)
_FITS = {
    "bool": lambda value: isinstance(value, bool),
    "int": lambda value: not isinstance(value, bool) and (
        isinstance(value, int) or isinstance(value, float) and value.is_integer()),
    "float": lambda value: isinstance(value, _NUMBER) and not isinstance(value, bool),
    "str": lambda value: isinstance(value, str),
    "path": lambda value: isinstance(value, str),
    "dict": lambda value: isinstance(value, dict),
    "raw": lambda value: True,
}
_WHAT = {"bool": "true or false", "int": "a whole number", "float": "a number", "str": "a string",
         "path": "a path", "dict": "a mapping"}


def module_spec(table, **defaults):
    """The ``argument_spec`` of a module: the table's options but the job's own, each with
    its Ansible keys only; ``defaults`` replace the defaults of the options they name."""
    spec = dict((name, dict((key, value) for key, value in option.items() if key in _ANSIBLE_KEYS))
                for name, option in table.items() if option.get("only") != "cli")
    for name, default in defaults.items():
        spec[name]["default"] = default
    return spec


def config_defaults(table):
    """``{name: default}`` of a job's config (module-only options left out)."""
    return dict((name, option.get("default")) for name, option in table.items()
                if option.get("only") != "module")


def _fits(option, value):
    if option["type"] == "list":
        return isinstance(value, list) and (option.get("elements") not in ("str", "path") or all(
            isinstance(item, str) and item for item in value))
    return _FITS[option["type"]](value)


def _what(option):
    if option["type"] == "list":
        return "a list of %ss" % option["elements"] if option.get("elements") in ("str", "path") else "a list"
    return _WHAT[option["type"]]


def check_config(table, data, where="", unknown="unknown key(s) %s; known keys: %s"):
    """Return the job's config ``data`` with the table's defaults filled in.

    Keys starting with ``_`` (the managed-file comment) are dropped. Raises ``OpsError``,
    prefixed with ``where:`` when given, for data that is not a mapping, for keys the
    table does not know (``unknown`` % (the keys, the known keys)), a value of the wrong
    type (``KEY must be WHAT, got VALUE``) or not one of its choices; ``None`` (JSON null)
    is unset: the default.
    A whole number written as a float (``80.0``) is read as an int.
    """
    prefix = "%s: " % where if where else ""
    if not isinstance(data, dict):
        raise OpsError("%sthe config must be a JSON object" % prefix)
    known = config_defaults(table)
    data = dict((key, value) for key, value in data.items() if not str(key).startswith("_"))
    strange = sorted(set(data) - set(known))
    if strange:
        raise OpsError(prefix + unknown % (", ".join(strange), ", ".join(sorted(known))))
    config = copy.deepcopy(known)
    config.update((key, value) for key, value in data.items() if value is not None)
    for name in known:
        option, value = table[name], config[name]
        if value is None:
            if option.get("required"):
                raise OpsError("%s%s is required" % (prefix, name))
            continue
        if not _fits(option, value):
            raise OpsError("%s%s must be %s, got %r" % (prefix, name, _what(option), value))
        if option.get("choices") and value not in option["choices"]:
            raise OpsError("%s%s must be one of %s, got %r" % (prefix, name, ", ".join(option["choices"]), value))
        if option["type"] == "int":
            config[name] = int(value)
    return config

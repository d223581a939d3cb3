# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Options declared once per domain, as argument-spec tables (``{name: {"type", "default",
"choices", "elements", "required"}}``; ``"only": "module"`` or ``"cli"`` marks an option of
one front-end). ``module_spec`` builds a module's ``argument_spec`` from a table,
``check_config`` checks a job's JSON config against it; test_options_once.py holds each
role's ``meta/argument_specs.yml`` to the tables.
"""

from __future__ import annotations

import copy

from .errors import OpsError

_ANSIBLE_KEYS = ("type", "default", "choices", "elements", "required", "no_log")
# type -> (whether a JSON value is one, what the message asks for); JSON is not converted,
# but a whole number written as a float (80.0) is an int
_TYPES = {
    "bool": (lambda value: isinstance(value, bool), "true or false"),
    "int": (lambda value: not isinstance(value, bool) and (
        isinstance(value, int) or isinstance(value, float) and value.is_integer()), "a whole number"),
    "float": (lambda value: isinstance(value, (int, float)) and not isinstance(value, bool), "a number"),
    "str": (lambda value: isinstance(value, str), "a string"),
    "path": (lambda value: isinstance(value, str), "a path"),
    "dict": (lambda value: isinstance(value, dict), "a mapping"),
    "raw": (lambda value: True, "anything"),
    "list": (lambda value: isinstance(value, list), "a list"),
}


def module_spec(table, **defaults):
    """A module's ``argument_spec``: the table's options but the job's own, with their Ansible
    keys only; ``defaults`` replace the defaults of the options they name."""
    spec = dict((name, dict((key, value) for key, value in option.items() if key in _ANSIBLE_KEYS))
                for name, option in table.items() if option.get("only") != "cli")
    for name, default in defaults.items():
        spec[name]["default"] = default
    return spec


def config_defaults(table):
    """``{name: default}`` of a job's config (the module's own options left out)."""
    return dict((name, option.get("default")) for name, option in table.items() if option.get("only") != "module")


def _problem(option, value):
    """What ``value`` should be, or ``""`` when it fits the option's type."""
    if option.get("elements") in ("str", "path"):  # lists of names or paths: no empty ones
        fits = isinstance(value, list) and all(isinstance(item, str) and item for item in value)
        return "" if fits else "a list of %ss" % option["elements"]
    fits, what = _TYPES[option["type"]]
    return "" if fits(value) else what


def check_config(table, data, where="", unknown="unknown key(s) %s; known keys: %s"):
    """Return the job's config ``data`` with the table's defaults filled in.

    Keys starting with ``_`` (the managed-file comment) are dropped; ``None`` (JSON null)
    takes the default. Raises ``OpsError``, prefixed with ``where:`` when given, for data
    that is not a mapping, for keys the table does not know (``unknown`` % (the keys, the
    known keys)), for a required option left out, a value of another type (``KEY must be
    WHAT, got VALUE``) or outside its choices.
    """
    prefix = "%s: " % where if where else ""
    if not isinstance(data, dict):
        raise OpsError("%sthe config must be a JSON object" % prefix)
    config = copy.deepcopy(config_defaults(table))
    data = dict((key, value) for key, value in data.items() if not str(key).startswith("_"))
    strange = sorted(set(data) - set(config))
    if strange:
        raise OpsError(prefix + unknown % (", ".join(strange), ", ".join(sorted(config))))
    config.update((key, value) for key, value in data.items() if value is not None)
    for name, value in list(config.items()):
        option = table[name]
        if value is None:
            if option.get("required"):
                raise OpsError("%s%s is required" % (prefix, name))
            continue
        what = _problem(option, value)
        if what:
            raise OpsError("%s%s must be %s, got %r" % (prefix, name, what, value))
        if option.get("choices") and value not in option["choices"]:
            raise OpsError("%s%s: %r is not one of %s" % (prefix, name, value, ", ".join(option["choices"])))
        if option["type"] == "int":
            config[name] = int(value)
    return config

# -*- coding: utf-8 -*-
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``runbook.ops.validate_vars`` action: every role's variables checked before any change.

Reads each role's ``meta/argument_specs.yml`` and ``defaults/main.yml`` from the
collection, templates the values the play would give the role, hands them to the core
(``_ops/validate.py``) and looks up on the host, with ``ansible.builtin.stat``, the paths
that must exist there. Changes nothing; the same in check mode.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleError
from ansible.plugins.action import ActionBase

from ansible_collections.runbook.ops.plugins.module_utils._ops.validate import (
    check_roles, missing_paths)

ROLES_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "roles")


class ActionModule(ActionBase):
    """Validate the variables of the roles named in ``roles``."""

    TRANSFERS_FILES = False
    _requires_connection = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        task_vars = task_vars or {}
        roles = self._task.args.get("roles") or []
        unknown = [role for role in roles if not os.path.isfile(self._role_file(role, "meta", "argument_specs.yml"))]
        if isinstance(roles, str) or unknown:
            return dict(result, failed=True, msg="roles: %s is not a list of runbook.ops roles (known: %s)"
                        % (unknown or roles, ", ".join(self._known_roles())))
        specs, defaults, internal = {}, {}, {}
        for role in roles:
            specs[role] = self._load(role, "meta", "argument_specs.yml")["argument_specs"]["main"]["options"]
            role_defaults = self._load(role, "defaults", "main.yml")
            defaults.update(role_defaults)
            internal[role] = set(role_defaults) | set(self._load(role, "vars", "main.yml"))
        values, problems = self._values(specs, defaults, task_vars)
        checked = check_roles(specs, values, names=set(task_vars), internal=internal)
        problems.extend(checked["problems"])
        problems.extend(missing_paths(checked["paths"], self._existing(checked["paths"], task_vars)))
        result.update(changed=False, roles=list(roles), problems=problems)
        if checked["warnings"]:
            result["warnings"] = checked["warnings"]
        if problems:
            # each problem on its own line in the default callback's output
            result.update(failed=True, msg="; ".join(problems), _ansible_verbose_always=True)
        else:
            result["msg"] = "the variables of %s are valid" % ", ".join("runbook.ops." + role for role in roles)
        return result

    def _role_file(self, role, *parts):
        return os.path.join(ROLES_DIR, role, *parts)

    def _known_roles(self):
        return sorted(name for name in os.listdir(ROLES_DIR)
                      if os.path.isfile(self._role_file(name, "meta", "argument_specs.yml")))

    def _load(self, role, *parts):
        path = self._role_file(role, *parts)
        if not os.path.isfile(path):
            return {}
        return self._loader.load_from_file(path, cache="none", trusted_as_template=True) or {}

    def _values(self, specs, defaults, task_vars):
        """Each option's value as the role would see it: the user's, else the role default, templated."""
        available = dict(defaults)
        available.update(task_vars)
        templar = self._templar.copy_with_new_env(available_variables=available)
        values, problems = {}, []
        for options in specs.values():
            for name in options:
                if name not in available:
                    continue
                try:
                    values[name] = templar.template(available[name])
                except AnsibleError as exc:
                    problems.append("%s: cannot be templated: %s" % (name, str(exc.message).splitlines()[0]))
        return values, problems

    def _existing(self, paths, task_vars):
        """The paths of ``paths`` (var -> [path]) that exist on the host."""
        existing = set()
        for path in sorted({path for items in paths.values() for path in items}):
            answer = self._execute_module(
                module_name="ansible.legacy.stat", task_vars=task_vars,
                module_args={"path": path, "get_checksum": False, "get_mime": False, "get_attributes": False})
            if answer.get("stat", {}).get("exists"):
                existing.add(path)
        return existing

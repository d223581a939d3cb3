# -*- coding: utf-8 -*-
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``runbook.ops.env_line`` filter: one ``KEY=VALUE`` line of an env file, quoted as
Docker Compose reads it.

It is the core's one env-file writer (``plugins/module_utils/_ops/env_file.py``,
``format_env_line``), so the files the roles write read back exactly through the core's
reader and through ``docker compose`` (``.env``, ``env_file:``).
"""

from __future__ import annotations

from ansible.errors import AnsibleFilterError

from ansible_collections.runbook.ops.plugins.module_utils._ops.env_file import format_env_line
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError


def env_line(value, key):
    """``KEY='value'`` or ``KEY="escaped"``; a key no reader takes is a filter error."""
    try:
        return format_env_line(key, value)
    except OpsError as exc:
        raise AnsibleFilterError(str(exc)) from None


class FilterModule:
    """Env file filters."""

    def filters(self):
        return {"env_line": env_line}

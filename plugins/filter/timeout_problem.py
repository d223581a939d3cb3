# -*- coding: utf-8 -*-
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``runbook.ops.timeout_problem`` filter: the core's timeout rule for roles.

Roles check the timeouts they pass to ``runbook-ops run --timeout`` with it, so the rule
and its message live in one place (``plugins/module_utils/_ops/runtime.py``), shared with
the ``runbook-ops`` CLI.
"""

from __future__ import annotations

from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import timeout_problem


class FilterModule:
    """Timeout filters."""

    def filters(self):
        return {"timeout_problem": timeout_problem}

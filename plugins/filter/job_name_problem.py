# -*- coding: utf-8 -*-
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``runbook.ops.job_name_problem`` filter: the core's job-name rule for roles.

Roles check their ``<role>_job_name`` with it, so the rule and its message live in one
place (``plugins/module_utils/_ops/runtime.py``), shared with the ``runbook-ops`` CLI.
"""

from __future__ import annotations

from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import job_name_problem


class FilterModule:
    """Job-name filters."""

    def filters(self):
        return {"job_name_problem": job_name_problem}

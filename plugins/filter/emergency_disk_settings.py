# -*- coding: utf-8 -*-
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``runbook.ops.emergency_disk_settings`` filter: emergency-disk.yml's settings, checked.

The playbook passes every ``emergency_disk_*`` variable a host has and stops the host
before its first step on any problem; the rules live in
``plugins/module_utils/_ops/emergency_settings.py`` (loaded alone: the filter runs in every
host's worker), shared with the module ``runbook.ops.emergency_disk``.
"""

from __future__ import annotations

from ansible_collections.runbook.ops.plugins.module_utils._ops.emergency_settings import (
    check_emergency_settings,
)


class FilterModule:
    """Emergency-disk settings filters."""

    def filters(self):
        return {"emergency_disk_settings": check_emergency_settings}

# -*- coding: utf-8 -*-
# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``runbook.ops.iec_bytes`` filter: sizes in IEC units for playbooks and templates.

``ansible.builtin.human_readable`` divides by 1024 but writes ``GB``; this filter uses
the core's one size formatter (``plugins/module_utils/_ops/units.py``), so playbooks,
job logs and alerts read alike: ``12.5 GiB``.
"""

from __future__ import annotations

from ansible_collections.runbook.ops.plugins.module_utils._ops.units import format_bytes


class FilterModule:
    """Size filters."""

    def filters(self):
        return {"iec_bytes": format_bytes}

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared C(attributes) documentation of the collection's modules."""

from __future__ import annotations


class ModuleDocFragment:
    """Attributes of the modules that only read and report (C(disk_check), C(media_cleanup_gate))."""

    DOCUMENTATION = r"""
options: {}
"""

    READ_ONLY = r"""
options: {}
attributes:
  check_mode:
    support: full
    description: The module never changes anything; it runs the same in check mode.
  diff_mode:
    support: none
    description: Nothing changes, so there is nothing to diff.
  idempotent:
    support: full
    description: Read-only; running it again reports the state of the moment and never changes it.
"""

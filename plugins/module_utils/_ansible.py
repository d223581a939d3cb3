# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The only module_utils file that touches Ansible: runs a core call for a module.

Modules build their options, call ``run_core(module, func, **kwargs)`` and get the
core's plain result back; an ``OpsError`` becomes ``fail_json`` with its message and
details, and a missing optional library becomes a clear ``missing_required_lib``.
"""

from __future__ import annotations

import traceback

from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError


def run_core(module, func, *args, **kwargs):
    """Call ``func``; turn ``OpsError`` into ``module.fail_json`` (never a traceback)."""
    try:
        return func(*args, **kwargs)
    except OpsError as exc:
        module.fail_json(msg=exc.message, **exc.details)
    except ImportError as exc:
        module.fail_json(msg=missing_library_text(exc), exception=traceback.format_exc())


def missing_library_text(exc):
    """Ansible's words for a library the host lacks (``missing_required_lib``), for an
    ``ImportError`` raised by the core."""
    from ansible.module_utils.basic import missing_required_lib

    return missing_required_lib(getattr(exc, "name", None) or str(exc))

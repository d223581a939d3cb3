# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The runbook.ops core: plain Python shared by the modules, the host CLI and the tests.

Nothing in this package imports Ansible. It needs the standard library only at import
time; the Docker SDK is imported lazily by the functions that need it.
Imports inside the package are relative, so the same files run as
``ansible_collections.runbook.ops.plugins.module_utils._ops`` (modules) and as
``runbook_ops`` (the ``runbook-ops`` CLI installed by the base role).
"""

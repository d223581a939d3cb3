# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared pytest setup: make tests/harness importable and register its fixtures."""

from __future__ import annotations

import os
import sys

_TESTS = os.path.dirname(os.path.abspath(__file__))
# The checkout as ansible_collections.runbook.ops (through .collections/), and the harness.
sys.path.insert(0, os.path.join(os.path.dirname(_TESTS), ".collections"))
sys.path.insert(0, os.path.join(_TESTS, "harness"))

pytest_plugins = ("isolated_engine", "collection_build")

try:  # property-based tests: no per-example deadline on a busy 2-core CI machine
    from hypothesis import HealthCheck, settings

    settings.register_profile("runbook-ops", deadline=None, print_blob=True,
                              suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("runbook-ops")
except ImportError:  # the run-only venv has no hypothesis; only the test venv needs it
    pass

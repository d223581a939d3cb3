# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Polling for what another process makes true (a lock taken, a file written, a service up)."""

from __future__ import annotations

import time


def wait_for(predicate, seconds=10.0, interval=0.05):
    """True as soon as ``predicate()`` is, False when ``seconds`` pass first."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False

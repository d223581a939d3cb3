# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Review of #15: ``until`` values Go's ParseDuration (the engine's /build/prune filter)
rejects are accepted here, so a real run fails at the engine with a 500 and a raw
exception instead of a one-line refusal before anything changes."""

from __future__ import annotations

import os
import sys

import pytest

_REPO = os.path.join(os.path.dirname(__file__), *[".."] * 5)
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_cleanup as dc  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402


@pytest.mark.parametrize("text", ["3000000h", "9999999999s"])
def test_parse_duration_refuses_what_the_engine_cannot_parse(text):
    """Go durations end at 2562047h47m16.854775807s (int64 nanoseconds)."""
    with pytest.raises(OpsError):
        dc.parse_duration(text)

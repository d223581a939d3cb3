# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The emergency-disk end-to-end tests of test_emergency_disk.py on Debian 13's Docker 26.

The same full data root, the same playbook runs and the same assertions, on an engine of
API 1.45: ``volume prune`` spares named volumes there, anonymous volumes carry the engine's
label, and ``/system/df`` answers per type. Nothing here is copied: this module asks for the
other module's fixtures and tests, and its ``isolated_engine_factory`` starts Docker 26.
"""

from __future__ import annotations

import pytest

from test_emergency_disk import full_engine  # noqa: F401 pylint: disable=unused-import
from test_emergency_disk import (
    test_emergency_disk_frees_below_target_and_keeps_what_is_used as _frees_below_target,
    test_emergency_keeps_a_database_that_just_crashed_and_says_so as _keeps_crashed_database)


@pytest.fixture
def isolated_engine_factory(isolated_engine_factory):  # pylint: disable=redefined-outer-name
    """The harness factory, every engine Docker 26."""
    def factory(name="test", **kwargs):
        kwargs["version"] = "26"
        engine = isolated_engine_factory(name, **kwargs)
        assert engine.api().api_version == "1.45"
        return engine
    return factory


def test_docker_26_emergency_frees_below_target_and_keeps_what_is_used(
        full_engine):  # pylint: disable=redefined-outer-name
    _frees_below_target(full_engine)


def test_docker_26_emergency_keeps_a_database_that_just_crashed_and_says_so(
        isolated_engine_factory, tmp_path):  # pylint: disable=redefined-outer-name
    _keeps_crashed_database(isolated_engine_factory, tmp_path)

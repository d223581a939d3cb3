# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The key compose_env_sync end-to-end tests of test_compose_env_sync.py on Docker 26.

Debian 13's engine (API 1.45) runs the same projects, module and playbook runs and
assertions: recreating stale services, a healthcheck that never passes, values with dollars.
Not the secrets-file rotation: under the chroot, a file bind-mounted into a container vanishes
from it (ENOENT) once the file is renamed over on this side, which the test reads before the
sync; that is the harness's mount layout, not the engine's behaviour. This module's ``engine`` is a Docker 26 isolated engine; the
projects, helpers and tests come from the other module unchanged. The engine runs in a chroot
that sees only its own directory from this machine, so the projects live there
(``tmp_path``): compose's secrets are bind mounts of files in the project directory.
"""

from __future__ import annotations

import itertools
import os
import pathlib

import pytest

from images import build_busybox_image
from isolated_engine import start_isolated_engine
from test_compose_env_sync import IMAGE, pytestmark  # noqa: F401 pylint: disable=unused-import
from test_compose_env_sync import project_factory  # noqa: F401 pylint: disable=unused-import
from test_compose_env_sync import (
    test_a_recreated_service_whose_healthcheck_never_passes_fails_the_task as _healthcheck,
    test_incident_stale_services_are_recreated_and_the_second_run_changes_nothing as _incident,
    test_values_with_dollars_are_not_drift_and_a_changed_hash_recreates_once as _dollars)


@pytest.fixture(scope="module")
def engine():
    """A Docker 26 isolated engine for this module, with the busybox image the projects run."""
    started = start_isolated_engine("envsync26", version="26")
    try:
        assert started.api().api_version == "1.45"
        build_busybox_image(started, IMAGE)
        yield started
    finally:
        started.stop()


_PROJECT_DIRS = itertools.count(1)


@pytest.fixture
def tmp_path(engine):  # pylint: disable=redefined-outer-name
    """A fresh directory inside the engine's directory, which its chroot sees at the same path."""
    path = pathlib.Path(engine.dir, "projects", str(next(_PROJECT_DIRS)))
    os.makedirs(path)
    return path


def test_docker_26_incident_stale_services_are_recreated_and_the_second_run_changes_nothing(
        project_factory, tmp_path):  # pylint: disable=redefined-outer-name
    _incident(project_factory, tmp_path)


def test_docker_26_a_recreated_service_whose_healthcheck_never_passes_fails_the_task(
        project_factory, tmp_path):  # pylint: disable=redefined-outer-name
    _healthcheck(project_factory, tmp_path)


def test_docker_26_values_with_dollars_are_not_drift_and_a_changed_hash_recreates_once(
        project_factory, tmp_path):  # pylint: disable=redefined-outer-name
    _dollars(project_factory, tmp_path)

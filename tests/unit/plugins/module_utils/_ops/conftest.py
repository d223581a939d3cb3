# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures shared by the core's tests."""

from __future__ import annotations

import subprocess

import pytest


@pytest.fixture
def tmpfs(tmp_path):
    """Mount real tmpfs file systems: ``tmpfs(name, options)`` mounts one at ``tmp_path/name``
    (``name`` may be an absolute path, e.g. inside another test mount) and returns that path
    as given; all are unmounted after the test. Disk tests get exact small filesystems; an
    in-place restore moves files aside to the top of their filesystem, so restore tests get
    one of their own instead of the machine's root."""
    mounted = []

    def mount(name="fs", options="size=1m"):
        directory = tmp_path / name
        directory.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(directory)],
                              capture_output=True, text=True, check=False)
        if proc.returncode != 0:
            pytest.skip("cannot mount tmpfs here: %s" % proc.stderr.strip())
        mounted.append(directory)
        return directory

    yield mount
    for directory in reversed(mounted):
        subprocess.run(["umount", "-l", str(directory)], check=False)

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for the core's tests: real small filesystems and real restic repositories."""

from __future__ import annotations

import os
import subprocess

import pytest

@pytest.fixture
def mount_tmpfs(tmp_path):
    """``mount_tmpfs(path, size="64m")`` mounts a real tmpfs at ``path`` (made if missing).

    An in-place restore moves files aside to the top of their own filesystem; a tmpfs
    gives each test one of its own instead of the machine's root. Unmounted afterwards.
    """
    mounted = []

    def mount(path, size="64m"):
        path = str(path)
        os.makedirs(path, exist_ok=True)
        if os.geteuid() != 0:
            pytest.skip("mounting a tmpfs needs root")
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=%s,mode=0755" % size,
                               "tmpfs", path], capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip("cannot mount a tmpfs here: %s" % done.stderr.strip())
        mounted.append(path)
        return path

    yield mount
    for path in reversed(mounted):
        subprocess.run(["umount", "-l", path], capture_output=True, check=False)


@pytest.fixture
def restic_env(tmp_path, monkeypatch):
    """restic's cache inside the test's directory and times in UTC."""
    monkeypatch.setenv("TZ", "UTC")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "restic-cache"))
    return tmp_path

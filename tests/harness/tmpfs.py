# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A small private tmpfs: a real file system a test can fill, remount read-only or measure
(df's figures on tmpfs have no reserved blocks, so 700 KiB of 1 MiB is 69%)."""

from __future__ import annotations

import contextlib
import os
import subprocess

import pytest


@contextlib.contextmanager
def mounted_tmpfs(path, options="size=1m"):
    """Mount a tmpfs with ``options`` on ``path`` (made when missing), yield ``path`` and
    unmount it at the end, always (lazily: a test's open file does not keep it). Skips the
    test where mounting is not allowed (not root, no CAP_SYS_ADMIN)."""
    os.makedirs(str(path), exist_ok=True)
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount tmpfs here: %s" % proc.stderr.strip())
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, check=False)

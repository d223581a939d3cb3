# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""mounts.unescape_mount against the kernel's own escaping and a real mount table."""

from __future__ import annotations

import os
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tmpfs import mounted_tmpfs

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
if os.path.join(_REPO, ".collections") not in sys.path:
    sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops import disk, restore_plan  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.mounts import unescape_mount  # noqa: E402


def kernel_escape(path):
    """What fs/proc_namespace.c's mangle() writes: space, tab, newline and backslash as
    three octal digits."""
    return "".join("\\%03o" % ord(c) if c in " \t\n\\" else c for c in path)


@given(st.text(alphabet=st.sampled_from("ab/ \t\n\\0147-")))
def test_every_path_the_kernel_escapes_reads_back(path):
    assert unescape_mount(kernel_escape(path)) == path


def test_a_backslash_not_followed_by_three_octal_digits_stays():
    assert unescape_mount("/srv/a\\9b\\04") == "/srv/a\\9b\\04"


@pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs")
def test_a_mount_point_with_a_space_tab_and_backslash_is_found_as_named(tmp_path):
    """The disk check's filesystem and the restore's mount points read the real table."""
    with mounted_tmpfs(tmp_path / "photo uploads\tnew\\2026") as point:
        assert str(point) in restore_plan.mount_points()
        assert disk.filesystem_usage(str(point))["mount"] == str(point)


@pytest.mark.parametrize("table", ["missing", "."])
def test_a_mount_table_that_cannot_be_read_stops_the_walks_that_need_it(tmp_path, table):
    """Restores and the emptying of a dump directory stop at mount points: without the table
    they refuse rather than go on as if nothing were mounted."""
    path = str(tmp_path / table)
    with pytest.raises(OpsError, match="^cannot read the mount table %s " % path):
        restore_plan.mount_points(path)

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""private_dir.py on real directories, with another real user (nobody) making the traps."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import threading

import pytest

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5))
sys.path.insert(0, os.path.join(_REPO, ".collections"))

from ansible_collections.runbook.ops.plugins.module_utils._ops.private_dir import (  # noqa: E402
    open_private_dir, open_private_file, private_dir_problem)

NOBODY = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
NOBODY_UID = int(subprocess.run(["id", "-u", "nobody"], capture_output=True, text=True,
                                check=True).stdout)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="the traps are another user's")


@pytest.fixture
def sticky():
    """A world-writable sticky directory, as /run/lock and /tmp are (1777), in /tmp so that
    nobody can reach it (pytest's own directories are 0700)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="rbo-private-dir-", dir="/tmp"))
    path.chmod(0o1777)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_a_missing_directory_is_made_0755_and_owned_by_this_user(tmp_path):
    target = tmp_path / "run" / "runbook-ops" / "locks"
    fd, problem = open_private_dir(target, create=True)
    assert problem == "" and fd is not None
    os.close(fd)
    assert oct(target.stat().st_mode & 0o777) == "0o755"
    assert target.stat().st_uid == os.geteuid()


def test_a_directory_below_a_sticky_one_is_private_when_this_user_made_it(sticky):
    assert private_dir_problem(sticky / "runbook-ops", create=True) == ""


def test_a_directory_another_user_made_first_in_a_sticky_one_is_refused(sticky):
    subprocess.run(NOBODY + ["mkdir", str(sticky / "runbook-ops")], check=True)
    assert private_dir_problem(sticky / "runbook-ops", create=True) == (
        "%s is owned by uid %d, not %d" % (sticky / "runbook-ops", NOBODY_UID, os.geteuid()))


def test_the_sticky_directory_itself_is_refused(sticky):
    assert "is writable by group or others (mode 1777)" in private_dir_problem(sticky)


@pytest.mark.parametrize("mode", [0o775, 0o757])
def test_a_parent_writable_by_group_or_others_is_refused(tmp_path, mode):
    parent = tmp_path / "open"
    parent.mkdir()
    parent.chmod(mode)
    assert private_dir_problem(parent / "locks", create=True) == (
        "%s is writable by group or others (mode %04o)" % (parent, mode))
    assert not (parent / "locks").exists(), "nothing made below a parent others can change"


def test_a_symbolic_link_anywhere_on_the_way_is_refused(tmp_path):
    real = tmp_path / "real"
    (real / "locks").mkdir(parents=True)
    (tmp_path / "link").symlink_to(real)
    assert private_dir_problem(tmp_path / "link" / "locks") == (
        "%s is a symbolic link or not a directory" % (tmp_path / "link"))
    (tmp_path / "last").symlink_to(real / "locks")
    assert "is a symbolic link" in private_dir_problem(tmp_path / "last", create=True)


def test_a_missing_directory_without_create_is_said(tmp_path):
    assert private_dir_problem(tmp_path / "nope") == "%s does not exist" % (tmp_path / "nope")
    assert open_private_file(tmp_path / "nope" / "x.lock") == (
        None, "%s does not exist" % (tmp_path / "nope"))


def test_a_lock_file_is_created_0644_and_never_truncated_by_opening(tmp_path):
    path = tmp_path / "locks" / "backup.lock"
    fd, problem = open_private_file(path, create=True)
    assert problem == ""
    os.write(fd, b"note")
    os.close(fd)
    fd, _problem = open_private_file(path, create=True)
    os.close(fd)
    assert path.read_bytes() == b"note"
    assert oct(path.stat().st_mode & 0o777) == "0o644"


def test_a_planted_symlink_is_refused_and_its_target_untouched(tmp_path):
    victim = tmp_path / "precious"
    victim.write_text("root:$y$hash\n")
    (tmp_path / "locks").mkdir()
    (tmp_path / "locks" / "backup.lock").symlink_to(victim)
    for create in (True, False):
        assert open_private_file(tmp_path / "locks" / "backup.lock", create=create) == (
            None, "%s is a symbolic link" % (tmp_path / "locks" / "backup.lock"))
    assert victim.read_text() == "root:$y$hash\n"


def test_a_fifo_is_refused_at_once_without_blocking(tmp_path):
    fifo = tmp_path / "job.lock"
    os.mkfifo(fifo)
    done = []
    worker = threading.Thread(target=lambda: done.append(open_private_file(fifo)))
    worker.start()
    worker.join(5)
    assert done and done[0] == (None, "%s is not a regular file owned by uid %d"
                                % (fifo, os.geteuid()))


def test_a_file_owned_by_another_user_is_refused(tmp_path):
    path = tmp_path / "job.lock"
    path.write_text("")
    os.chown(path, NOBODY_UID, -1)
    assert open_private_file(path, create=True)[1] == (
        "%s is not a regular file owned by uid %d" % (path, os.geteuid()))


def test_a_missing_file_without_create_is_no_problem(tmp_path):
    assert open_private_file(tmp_path / "job.lock") == (None, "")


def test_descriptors_do_not_leak_into_child_processes(tmp_path):
    fd, _problem = open_private_file(tmp_path / "job.lock", create=True)
    try:
        assert os.get_inheritable(fd) is False
        assert os.get_blocking(fd) is False
    finally:
        os.close(fd)

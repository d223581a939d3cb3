# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""hostkey.py: the per-host fingerprint key on real files (a racing second process, a
read-only mount), and fingerprints that give a weak secret away to nobody without the key."""

from __future__ import annotations

import hashlib
import hmac
import multiprocessing
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import pytest

COLLECTIONS = os.path.abspath(os.path.join(os.path.dirname(__file__), *[".."] * 5, ".collections"))
sys.path.insert(0, COLLECTIONS)

from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.hostkey import (  # noqa: E402
    create_key, fingerprint, host_key, key_id, key_path)


def _sha256_prefix(value):
    return hashlib.sha256(value.encode()).hexdigest()[:12]


def test_first_run_creates_a_0600_random_key_and_later_runs_read_the_same(tmp_path):
    state_dir = tmp_path / "state"
    key, warnings = host_key(str(state_dir))
    assert warnings == []
    path = key_path(str(state_dir))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    text = open(path).read()
    assert len(text.strip()) == 64 and int(text, 16) >= 0 and key == text.strip().encode()
    assert host_key(str(state_dir)) == (key, [])
    assert sorted(os.listdir(state_dir)) == ["fingerprint.key"]  # no temporary file left
    assert host_key(str(tmp_path / "other"))[0] != key


def _race(state_dir, queue):
    queue.put(host_key(state_dir)[0])


def test_runs_racing_to_create_the_key_end_with_one_key(tmp_path):
    queue = multiprocessing.Queue()
    workers = [multiprocessing.Process(target=_race, args=(str(tmp_path), queue)) for _n in range(6)]
    for worker in workers:
        worker.start()
    keys = {queue.get(timeout=30) for _worker in workers}
    for worker in workers:
        worker.join(30)
    assert keys == {open(key_path(str(tmp_path)), "rb").read().strip()}


def test_create_key_never_replaces_an_existing_key(tmp_path):
    path = key_path(str(tmp_path))
    create_key(path)
    before = open(path).read()
    create_key(path)
    assert open(path).read() == before


@pytest.mark.parametrize("weak", ["1234", "0000", "true", "false", ""])
def test_a_weak_value_is_not_found_by_hashing_guesses(tmp_path, weak):
    key = host_key(str(tmp_path))[0]
    printed = fingerprint(key, weak)
    assert printed == hmac.new(key, weak.encode(), hashlib.sha256).hexdigest()[:12]
    assert printed != _sha256_prefix(weak)
    guesses = ["%04d" % n for n in range(10000)] + ["true", "false", "yes", "no", ""]
    assert [g for g in guesses if _sha256_prefix(g) == printed] == []


def test_two_hosts_fingerprint_the_same_value_differently(tmp_path):
    first, second = host_key(str(tmp_path / "a"))[0], host_key(str(tmp_path / "b"))[0]
    assert fingerprint(first, "1234") != fingerprint(second, "1234")
    assert fingerprint(first, "1234") == fingerprint(first, "1234")
    assert fingerprint(first, None) == "(unset)" != fingerprint(first, "")
    assert key_id(first) != key_id(second) and len(key_id(first)) == 16


def test_check_mode_creates_no_key_and_says_its_fingerprints_are_throw_away(tmp_path):
    key, warnings = host_key(str(tmp_path), create=False)
    assert len(key) == 32 and not os.path.exists(key_path(str(tmp_path)))
    assert warnings == ["the fingerprint key %s does not exist yet (check mode creates nothing); "
                        "this run used a throw-away key, so its fingerprints match no other run"
                        % key_path(str(tmp_path))]
    assert host_key(str(tmp_path), create=False)[0] != key


def test_a_read_only_state_directory_gives_a_throw_away_key_and_a_warning(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,ro", "tmpfs", str(directory)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount tmpfs here: %s" % proc.stderr.strip())
    try:
        key, warnings = host_key(str(directory))
        assert len(key) == 32
        assert "could not be created (Read-only file system)" in warnings[0]
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def test_a_key_readable_by_others_is_narrowed_to_0600(tmp_path):
    path = key_path(str(tmp_path))
    create_key(path)
    os.chmod(path, 0o644)
    key, warnings = host_key(str(tmp_path))
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert warnings == ["the fingerprint key %s was readable by others (mode 0644); set to 0600" % path]
    assert key == open(path, "rb").read().strip()


@pytest.mark.parametrize("setup, message", [
    (lambda p: open(p, "w").write("short\n"), "holds fewer than 32 characters; remove it and run again"),
    (lambda p: os.symlink("/etc/hostname", p), "it must be a regular file readable by this user"),
    (os.mkdir, "is not a regular file; remove it"),
], ids=["too-short", "symlink", "directory"])
def test_an_unusable_key_file_is_refused_with_how_to_fix_it(tmp_path, setup, message):
    path = key_path(str(tmp_path))
    setup(path)
    with pytest.raises(OpsError, match=message):
        host_key(str(tmp_path))


def test_a_key_this_user_may_not_read_gives_a_throw_away_key_and_a_warning(tmp_path):
    # base made the key as root; a run without become (docker group) must still work
    directory = tmp_path / "state"
    directory.mkdir()
    os.chmod(tmp_path, 0o755)
    os.chmod(directory, 0o755)
    create_key(key_path(str(directory)))
    code = ("import sys; sys.path.insert(0, %r); from ansible_collections.runbook.ops.plugins."
            "module_utils._ops.hostkey import host_key; key, warnings = host_key(%r); "
            "print(len(key), warnings)" % (COLLECTIONS, str(directory)))
    # the host's python3 (the venv's may sit under /root, which nobody cannot enter)
    proc = subprocess.run(["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", code],
                          capture_output=True, text=True, check=False)
    if "No module named" in proc.stderr:
        pytest.skip("the checkout is not readable by nobody here")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("32 ['the fingerprint key %s is not readable by this user "
                                  "(run with become); this run used a throw-away key"
                                  % key_path(str(directory)))


# --- review (branch review-compose) ------------------------------------------------------


def test_review_check_mode_changes_nothing_on_a_key_readable_by_others(tmp_path):
    # check mode (create=False) must not touch the host, not even a key's mode
    path = key_path(str(tmp_path))
    create_key(path)
    os.chmod(path, 0o644)
    _key, warnings = host_key(str(tmp_path), create=False)
    assert warnings
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644


def test_review_a_key_owned_by_another_user_is_not_trusted_silently(tmp_path):
    # whoever owns the key can read it (or chmod it back): its fingerprints are then
    # as weak as a plain hash to that user
    path = key_path(str(tmp_path))
    create_key(path)
    os.chown(path, 65534, 65534)  # nobody
    try:
        _key, warnings = host_key(str(tmp_path))
    except OpsError:
        return
    assert warnings, "a key owned by uid 65534 was used without a word"


# --- a key someone else may know, and what may sit at the key path -------------------------


@pytest.fixture
def open_dir():
    """A state directory every user can enter (/tmp/... 0755), unlike pytest's 0700 tmp_path."""
    directory = tempfile.mkdtemp(prefix="rbo-hostkey-", dir="/tmp")
    os.chmod(directory, 0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def _snapshot(path):
    info = os.stat(path)
    return open(path, "rb").read(), stat.S_IMODE(info.st_mode), info.st_uid, info.st_ino


def test_a_key_open_to_others_is_replaced_and_check_mode_only_says_so(open_dir):
    path = key_path(open_dir)
    create_key(path)
    os.chmod(path, 0o644)
    before = _snapshot(path)

    key, warnings = host_key(open_dir, create=False)  # check mode: nothing changes
    assert _snapshot(path) == before and key != before[0].strip()
    assert warnings == ["the fingerprint key %s was open to other users (mode 0644), so it counts "
                        "as known to others; a run that is not in check mode replaces it; this run "
                        "used a throw-away key, so its fingerprints match no other run" % path]

    key, warnings = host_key(open_dir)
    content, mode, uid, _inode = _snapshot(path)
    assert key == content.strip() != before[0].strip() and len(key) == 64
    assert (mode, uid) == (0o600, os.geteuid())
    assert warnings == ["the fingerprint key %s was open to other users (mode 0644), so it counts "
                        "as known to others: replaced by a new key; fingerprints on this host "
                        "change, and secrets/configs files recorded under the old key are judged "
                        "by their inode and change time once" % path]
    assert sorted(os.listdir(open_dir)) == ["fingerprint.key"]  # no temporary file left
    assert host_key(open_dir) == (key, [])  # trusted from now on


def test_a_key_owned_by_another_user_is_replaced_by_one_of_ours(tmp_path):
    path = key_path(str(tmp_path))
    create_key(path)
    os.chown(path, 65534, 65534)
    before = _snapshot(path)
    key, warnings = host_key(str(tmp_path), create=False)
    assert _snapshot(path) == before and "is owned by uid 65534" in warnings[0]
    key, warnings = host_key(str(tmp_path))
    content, mode, uid, _inode = _snapshot(path)
    assert key == content.strip() != before[0].strip() and (mode, uid) == (0o600, os.geteuid())
    assert "is owned by uid 65534, so it counts as known to others: replaced" in warnings[0]


def test_a_key_that_must_be_replaced_but_cannot_gives_a_throw_away_key(tmp_path):
    directory = tmp_path / "ro"
    directory.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(directory)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip("cannot mount tmpfs here: %s" % proc.stderr.strip())
    try:
        path = key_path(str(directory))
        create_key(path)
        os.chown(path, 65534, 65534)
        subprocess.run(["mount", "-o", "remount,ro", str(directory)], check=True)
        before = _snapshot(path)
        key, warnings = host_key(str(directory))
        assert _snapshot(path) == before and key != before[0].strip()
        assert "could not be replaced (Read-only file system); run with become; this run used " \
               "a throw-away key" in warnings[0]
    finally:
        subprocess.run(["umount", "-l", str(directory)], check=False)


def test_check_mode_leaves_a_loose_key_in_a_closed_directory_as_it_is(tmp_path):
    path = key_path(str(tmp_path))  # pytest's tmp_path sits in a 0700 directory
    create_key(path)
    os.chmod(path, 0o640)
    key, warnings = host_key(str(tmp_path), create=False)
    assert key == open(path, "rb").read().strip() and stat.S_IMODE(os.stat(path).st_mode) == 0o640
    assert warnings == ["the fingerprint key %s is readable by others (mode 0640); a run that is "
                        "not in check mode sets it to 0600" % path]


@pytest.mark.parametrize("make", [
    lambda p: os.mkfifo(p, 0o600),
    lambda p: os.mknod(p, 0o600 | stat.S_IFCHR, os.makedev(1, 3)),  # like /dev/null
], ids=["fifo", "device"])
def test_a_fifo_or_device_at_the_key_path_is_refused_at_once(tmp_path, make):
    # a FIFO used to block the open until a writer came: the module hung for ever
    path = key_path(str(tmp_path))
    make(path)
    code = ("import sys; sys.path.insert(0, %r); from ansible_collections.runbook.ops.plugins."
            "module_utils._ops.hostkey import host_key; from ansible_collections.runbook.ops."
            "plugins.module_utils._ops.errors import OpsError\ntry:\n    host_key(%r)\nexcept "
            "OpsError as exc:\n    print(exc.message)" % (COLLECTIONS, str(tmp_path)))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.stdout.strip() == "the fingerprint key %s is not a regular file; remove it" % path

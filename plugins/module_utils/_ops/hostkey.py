# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The per-host key behind every fingerprint and digest of a secret the core shows or stores.

A plain hash of a weak secret gives it away: the sha256 of a 4-digit PIN or of ``true`` is
found by hashing every guess. Fingerprints and stored digests are therefore HMAC-SHA256
under a random key that never leaves the host: ``<state_dir>/fingerprint.key`` (mode 0600,
64 hex digits). Role ``runbook.ops.base`` creates it; where base never ran, the first real
run of a module creates it the same way. The same value has the same fingerprint on one
host, a different one on every other host.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import stat
import tempfile

from .errors import OpsError

KEY_FILE_NAME = "fingerprint.key"
KEY_BYTES = 32
#: A key file must hold at least this many characters (64 hex digits are written).
MIN_KEY_CHARS = 32
FINGERPRINT_LENGTH = 12
UNSET = "(unset)"


def key_path(state_dir):
    """Return the key file of a state directory."""
    return os.path.join(state_dir, KEY_FILE_NAME)


def _install_key(path, key, place):
    """Write ``key`` to a private (0600) temporary file beside ``path``, then ``place(temporary,
    path)``: ``os.link`` never replaces a key, ``os.replace`` swaps it atomically."""
    handle, temporary = tempfile.mkstemp(prefix=".fingerprint-", dir=os.path.dirname(path) or ".")
    try:
        os.write(handle, (key + "\n").encode("ascii"))
        os.fsync(handle)
        os.close(handle)
        handle = None
        place(temporary, path)
    finally:
        if handle is not None:
            os.close(handle)
        try:
            os.unlink(temporary)
        except FileNotFoundError:  # os.replace moved it
            pass


def create_key(path):
    """Create the key file with a new random key unless it exists; never replace one.

    The key is written to a private (0600) temporary file and linked into place, so a reader
    never sees a partial key and two runs racing end up with the same key.
    Raises OSError when the directory cannot be written.
    """
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    try:
        _install_key(path, secrets.token_hex(KEY_BYTES), os.link)
    except FileExistsError:
        pass


def _open_key(path):
    """Open the key file for reading; return ``(fd, stat)`` of a regular file.

    Never follows a symbolic link, never opens a FIFO, device or directory (``lstat`` first,
    then ``O_NOFOLLOW | O_NONBLOCK`` and ``fstat``), so nothing at the key path can make a run
    hang or read from a device. Raises FileNotFoundError, PermissionError, or OpsError.
    """
    kind = stat.S_IFMT(os.lstat(path).st_mode)
    if kind not in (stat.S_IFREG, stat.S_IFLNK):
        raise OpsError("the fingerprint key %s is not a regular file; remove it" % path)
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        handle = os.open(path, flags)
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as exc:
        raise OpsError("cannot read the fingerprint key %s (%s); it must be a regular file "
                       "readable by this user" % (path, exc.strerror or exc))
    info = os.fstat(handle)
    if not stat.S_ISREG(info.st_mode):
        os.close(handle)
        raise OpsError("the fingerprint key %s is not a regular file; remove it" % path)
    return handle, info


def reachable_by_others(directory):
    """Return whether users other than the owner may pass through every directory from ``/``
    down to ``directory`` (a group or other execute bit on each: a conservative guess)."""
    directory = os.path.abspath(directory)
    while True:
        try:
            if not os.stat(directory).st_mode & 0o011:
                return False
        except OSError:
            return False
        parent = os.path.dirname(directory)
        if parent == directory:
            return True
        directory = parent


def key_distrust(path, info):
    """Return why the key file described by ``info`` cannot be trusted, or None.

    Owned by a user other than this one or root: that user can read it (or loosen it) at
    will. Readable or writable by group or others in a directory they can enter: it may have
    been copied or planted. Either way its fingerprints are no secret to someone else.
    """
    if info.st_uid not in (os.geteuid(), 0):
        return "is owned by uid %d" % info.st_uid
    if info.st_mode & 0o077 and reachable_by_others(os.path.dirname(path)):
        return "was open to other users (mode %04o)" % stat.S_IMODE(info.st_mode)
    return None


def _read_key_bytes(handle, path):
    key = os.read(handle, 4096).strip()
    if len(key) < MIN_KEY_CHARS:
        raise OpsError("the fingerprint key %s holds fewer than %d characters; remove it and run "
                       "again (a new key is created, fingerprints on this host change)"
                       % (path, MIN_KEY_CHARS))
    return key


def read_key(path, may_change=True):
    """Return ``(key bytes, warning or None, distrust or None)`` from an existing key file.

    A key whose mode lets group or others in, in a directory nobody else can enter, is
    narrowed to 0600 (``may_change``) or reported. ``distrust`` says why the key must not be
    used (``key_distrust``); the caller replaces it. Raises FileNotFoundError when it is
    absent, PermissionError when this user may not read it, and OpsError when it is not a
    usable key (not a regular file, too short).
    """
    handle, info = _open_key(path)
    warning = None
    try:
        distrust = key_distrust(path, info)
        mode = stat.S_IMODE(info.st_mode)
        if distrust is None and mode & 0o077:
            if may_change:
                try:
                    os.fchmod(handle, 0o600)
                    done = "set to 0600"
                except OSError as exc:
                    done = "could not set it to 0600 (%s)" % (exc.strerror or exc)
                warning = "the fingerprint key %s was readable by others (mode %04o); %s" % (
                    path, mode, done)
            else:
                warning = "the fingerprint key %s is readable by others (mode %04o); a run " \
                          "that is not in check mode sets it to 0600" % (path, mode)
        key = _read_key_bytes(handle, path)
    finally:
        os.close(handle)
    return key, warning, distrust


def replace_key(path):
    """Replace the key file by a new random key, atomically (a private temporary file
    renamed over it), owned by this user, mode 0600; return the new key."""
    key = secrets.token_hex(KEY_BYTES)
    _install_key(path, key, os.replace)
    return key.encode("ascii")


def _throw_away(path, reason):
    return secrets.token_bytes(KEY_BYTES), [
        "the fingerprint key %s %s; this run used a throw-away key, so its fingerprints match "
        "no other run" % (path, reason)]


def host_key(state_dir, create=True):
    """Return ``(key bytes, warnings)`` for fingerprints on this host.

    Reads ``<state_dir>/fingerprint.key``. ``create`` false (check mode) changes nothing on
    the host; otherwise a missing key is created and a key someone else may know
    (``key_distrust``) is replaced by a new one, with a warning: fingerprints on the host
    change, and digests recorded under the old key can no longer be compared. When the key
    is absent and cannot (or may not) be created, when it must be replaced and cannot (or
    may not) be, or when this user may not read it, a throw-away key serves this run only
    and a warning says so: its fingerprints match nothing stored.
    """
    path = key_path(state_dir)
    try:
        key, warning, distrust = read_key(path, may_change=create)
    except PermissionError:
        return _throw_away(path, "is not readable by this user (run with become)")
    except FileNotFoundError:
        if not create:
            return _throw_away(path, "does not exist yet (check mode creates nothing)")
        try:
            create_key(path)
            key, warning, distrust = read_key(path)
        except OSError as exc:
            return _throw_away(path, "could not be created (%s)" % (exc.strerror or exc))
    if distrust is None:
        return key, [warning] if warning else []
    if not create:
        return _throw_away(path, "%s, so it counts as known to others; a run that is not in "
                                 "check mode replaces it" % distrust)
    try:
        key = replace_key(path)
    except OSError as exc:
        return _throw_away(path, "%s, so it counts as known to others, and could not be replaced "
                                 "(%s); run with become" % (distrust, exc.strerror or exc))
    return key, ["the fingerprint key %s %s, so it counts as known to others: replaced by a new "
                 "key; fingerprints on this host change, and secrets/configs files recorded "
                 "under the old key are judged by their inode and change time once" % (
                     path, distrust)]


def keyed_hash(key):
    """Return a new HMAC-SHA256 object under ``key`` (feed it with ``update``)."""
    return hmac.new(key, digestmod=hashlib.sha256)


def fingerprint(key, value):
    """Return the first 12 hex digits of the keyed digest of ``value``, ``(unset)`` for None."""
    if value is None:
        return UNSET
    digest = keyed_hash(key)
    digest.update(str(value).encode("utf-8"))
    return digest.hexdigest()[:FINGERPRINT_LENGTH]


def key_id(key):
    """Return a name for ``key`` that reveals nothing of it: records made under another key
    (the key file was replaced) are then recognised and not compared."""
    digest = keyed_hash(key)
    digest.update(b"runbook-ops key id")
    return digest.hexdigest()[:16]

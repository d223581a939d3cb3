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


def create_key(path):
    """Create the key file with a new random key unless it exists; never replace one.

    The key is written to a private (0600) temporary file and linked into place, so a reader
    never sees a partial key and two runs racing end up with the same key.
    Raises OSError when the directory cannot be written.
    """
    directory = os.path.dirname(path) or "."
    os.makedirs(directory, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=".fingerprint-", dir=directory)
    try:
        os.write(handle, (secrets.token_hex(KEY_BYTES) + "\n").encode("ascii"))
        os.fsync(handle)
        os.close(handle)
        handle = None
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        if handle is not None:
            os.close(handle)
        os.unlink(temporary)


def read_key(path):
    """Return ``(key bytes, warning or None)`` from an existing key file.

    A key readable by group or others is narrowed to 0600 (with a warning). Raises
    FileNotFoundError when it is absent, PermissionError when this user may not read it,
    and OpsError when it is not a usable key.
    """
    try:
        handle = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except (FileNotFoundError, PermissionError):
        raise
    except OSError as exc:
        raise OpsError("cannot read the fingerprint key %s (%s); it must be a regular file "
                       "readable by this user" % (path, exc.strerror or exc))
    warning = None
    try:
        mode = os.fstat(handle).st_mode
        if not stat.S_ISREG(mode):
            raise OpsError("the fingerprint key %s is not a regular file; remove it" % path)
        if mode & 0o077:
            os.fchmod(handle, 0o600)
            warning = "the fingerprint key %s was readable by others (mode %04o); set to 0600" % (
                path, stat.S_IMODE(mode))
        key = os.read(handle, 4096).strip()
    finally:
        os.close(handle)
    if len(key) < MIN_KEY_CHARS:
        raise OpsError("the fingerprint key %s holds fewer than %d characters; remove it and run "
                       "again (a new key is created, fingerprints on this host change)"
                       % (path, MIN_KEY_CHARS))
    return key, warning


def host_key(state_dir, create=True):
    """Return ``(key bytes, warnings)`` for fingerprints on this host.

    Reads ``<state_dir>/fingerprint.key``; creates it when absent and ``create`` is true.
    When it is absent and cannot (or, in check mode, may not) be created, or this user may
    not read it, a throw-away key serves this run only and a warning says so: its
    fingerprints match nothing stored.
    """
    path = key_path(state_dir)
    try:
        key, warning = read_key(path)
        return key, [warning] if warning else []
    except PermissionError:
        create, reason = False, "is not readable by this user (run with become)"
    except FileNotFoundError:
        reason = "does not exist yet (check mode creates nothing)"
    if create:
        try:
            create_key(path)
            key, warning = read_key(path)
            return key, [warning] if warning else []
        except OSError as exc:
            reason = "could not be created (%s)" % (exc.strerror or exc)
    return secrets.token_bytes(KEY_BYTES), [
        "the fingerprint key %s %s; this run used a throw-away key, so its fingerprints match "
        "no other run" % (path, reason)]


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

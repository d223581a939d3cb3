# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""State files under ``/var/lib/runbook-ops``: atomic JSON and append-only JSON lines.

State is a convenience (cooldowns, last runs, history), never a precondition: a disk
that is full, read-only or over quota must not stop a job or an alert. So the writers
return ``False`` for those conditions instead of raising, and the readers fall back to
a default for a missing or corrupt file. Any other ``OSError`` (a permission problem,
a path that is a directory) is a bug or a misconfiguration and is raised.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import tempfile
import time

from .errors import OpsError

# Conditions of the filesystem, not of the code: report them, never raise them.
_FULL_OR_READ_ONLY = frozenset((errno.ENOSPC, errno.EROFS, errno.EDQUOT))


def read_json(path, default=None):
    """Return the JSON value stored in ``path``; ``default`` if it is missing or corrupt."""
    try:
        with open(path, "r", encoding="utf-8") as handle:
            return json.load(handle)
    except (FileNotFoundError, ValueError):
        # Missing, or a torn or hand-edited state file: start over rather than stop the job.
        return default


def read_json_object(path) -> dict:
    """The JSON object stored in ``path``; ``{}`` when it is missing, corrupt or no object."""
    data = read_json(path, {})
    return data if isinstance(data, dict) else {}


def load_json(path, what=""):
    """The JSON at ``path``, strictly: ``OpsError`` naming ``what`` (e.g. ``"config "``) and
    the path when it cannot be read or is not JSON (a file a person wrote, unlike state)."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise OpsError("cannot read %s%s: %s" % (what, path, exc.strerror or exc))
    except ValueError as exc:
        raise OpsError("%s%s is not valid JSON: %s" % (what, path, exc))


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def replace_file_atomic(path, payload: bytes, mode: int = 0o644) -> None:
    """Replace ``path`` with ``payload`` through a temp file beside it, fsync and rename.

    Readers see the old content or the new one, never a torn file; the temp file starts
    with a dot and ends in ``.tmp`` (no collector or glob picks it up). Creates the parent
    directory. Raises ``OSError``; the old content, if any, stays in place then.
    """
    path = os.fspath(path)
    directory = os.path.dirname(path) or "."
    tmp_path = None
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp_path = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".",
                                        suffix=".tmp", dir=directory)
        try:
            os.fchmod(fd, mode)
            view = memoryview(payload)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp_path, path)
        tmp_path = None
        _fsync_directory(directory)
    finally:
        if tmp_path is not None:
            try:
                os.unlink(tmp_path)
            except OSError:
                pass


def write_json_atomic(path, data, mode: int = 0o644) -> bool:
    """Write ``data`` as JSON to ``path`` atomically (``replace_file_atomic``).

    Returns ``True`` when written, ``False`` when the filesystem is full, read-only or
    over quota (the old content, if any, stays in place).
    """
    payload = (json.dumps(data, indent=2, sort_keys=True) + "\n").encode("utf-8")
    try:
        replace_file_atomic(path, payload, mode)
        return True
    except OSError as exc:
        if exc.errno in _FULL_OR_READ_ONLY:
            return False
        raise


def append_jsonl(path, record) -> bool:
    """Append ``record`` as one JSON line to ``path`` (created with its directory).

    If an earlier append was cut short (disk full), the new record starts on a fresh
    line so only the torn line is lost. Returns ``False`` on a full, read-only or
    over-quota filesystem.
    """
    path = os.fspath(path)
    line = (json.dumps(record, sort_keys=True) + "\n").encode("utf-8")
    try:
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        with open(path, "a+b") as handle:
            handle.seek(0, os.SEEK_END)
            if handle.tell() > 0:
                handle.seek(-1, os.SEEK_END)
                if handle.read(1) != b"\n":
                    line = b"\n" + line
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
        return True
    except OSError as exc:
        if exc.errno in _FULL_OR_READ_ONLY:
            return False
        raise


def flock_until(fd, deadline) -> bool:
    """Take an exclusive ``flock`` on ``fd``, trying every 0.1 s: True once held, False
    when another process still holds it at ``deadline`` (``time.monotonic``). Any other
    error raises ``OSError``."""
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except OSError as exc:
            if exc.errno not in (errno.EAGAIN, errno.EACCES):
                raise
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.1)


def read_jsonl(path) -> list:
    """Return the records of a JSON-lines file in order; skips blank and corrupt lines."""
    records = []
    try:
        with open(path, "r", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                line = line.strip()
                if not line:
                    continue
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
    except FileNotFoundError:
        return []
    return records

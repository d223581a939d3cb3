# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Directories and files no other user can change: where root takes job locks and keeps
state while ``/var/lib/runbook-ops`` cannot be written.

A directory another local user can write (``/run/lock`` is 1777) lets that user hold a
job's lock for ever, or plant ``NAME.lock -> /etc/...`` so that root writes through it. So
a directory is used only when every component from ``/`` down is a real directory (never
a symbolic link), owned by root or this user and not writable by group or others; a
sticky parent such as ``/tmp`` is allowed on the way (nobody else can rename what is in
it). The directory itself must be owned by this user. The walk opens each component
relative to the last one (``O_NOFOLLOW``), so what is checked is what is used. Files in
it are opened ``O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC`` and used only when ``fstat`` says a
regular file owned by this user.
"""

from __future__ import annotations

import errno
import os
import stat

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_FILE_FLAGS = os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC


def _distrust(info, where, last) -> str:
    """Why the directory ``where`` (its ``fstat``) is not private, or ``""``."""
    uid = os.geteuid()
    owners = (uid,) if last else (0, uid)
    if info.st_uid not in owners:
        return "%s is owned by uid %d, not %s" % (where, info.st_uid,
                                                  " or ".join(str(o) for o in owners))
    writable_by_others = info.st_mode & 0o022
    if writable_by_others and (last or not info.st_mode & stat.S_ISVTX):
        return "%s is writable by group or others (mode %04o)" % (
            where, stat.S_IMODE(info.st_mode))
    return ""


def _open_component(parent_fd, name, where, create):
    """Open one component below ``parent_fd``; ``(fd, "")`` or ``(None, problem)``."""
    try:
        return os.open(name, _DIR_FLAGS, dir_fd=parent_fd), ""
    except FileNotFoundError:
        if not create:
            return None, "%s does not exist" % where
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return None, "%s is a symbolic link or not a directory" % where
        return None, "%s: %s" % (where, exc.strerror or exc)
    try:
        os.mkdir(name, 0o755, dir_fd=parent_fd)
    except FileExistsError:
        pass  # made by a run racing this one: checked below like any other
    except OSError as exc:
        return None, "cannot create %s: %s" % (where, exc.strerror or exc)
    return _open_component(parent_fd, name, where, False)


def open_private_dir(path, create=False):
    """``(fd, "")`` for the directory ``path`` when no other user can change it, else
    ``(None, problem)``; ``problem`` is one line naming the component and why.

    ``create`` makes missing components (mode 0755). The caller closes ``fd``.
    """
    path = os.path.abspath(path)
    fd = os.open("/", _DIR_FLAGS)
    where = "/"
    parts = [part for part in path.split("/") if part]
    problem = _distrust(os.fstat(fd), where, not parts)
    for index, part in enumerate(parts):
        if problem:
            break
        where = os.path.join(where, part)
        child, problem = _open_component(fd, part, where, create)
        os.close(fd)
        fd = child
        if fd is not None:
            problem = _distrust(os.fstat(fd), where, index == len(parts) - 1)
    if problem:
        if fd is not None:
            os.close(fd)
        return None, problem
    return fd, ""


def private_dir_problem(path, create=False) -> str:
    """``""`` when ``path`` is a private directory (``open_private_dir``), else why not."""
    fd, problem = open_private_dir(path, create)
    if fd is not None:
        os.close(fd)
    return problem


def open_private_file(path, create=False):
    """Open the file ``path`` in a private directory: ``(fd, "")`` or ``(None, problem)``.

    ``create`` opens it read-write (made 0644 when missing), otherwise read-only (which
    works on a read-only filesystem). Never follows a symbolic link, never blocks on a FIFO,
    never leaks into a child process; refuses anything but a regular file owned by this
    user. A missing file without ``create`` gives ``(None, "")``.
    """
    dir_fd, problem = open_private_dir(os.path.dirname(os.path.abspath(path)), create)
    if dir_fd is None:
        return None, problem
    name = os.path.basename(path)
    flags = _FILE_FLAGS | ((os.O_RDWR | os.O_CREAT) if create else os.O_RDONLY)
    try:
        fd = os.open(name, flags, 0o644, dir_fd=dir_fd)
    except FileNotFoundError:
        return None, ""
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return None, "%s is a symbolic link" % path
        return None, "%s: %s" % (path, exc.strerror or exc)
    finally:
        os.close(dir_fd)
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
        os.close(fd)
        return None, "%s is not a regular file owned by uid %d" % (path, os.geteuid())
    return fd, ""

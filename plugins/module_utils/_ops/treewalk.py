# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fast directory-tree walk that sizes directories exactly as GNU ``du -x`` does.

``walk_tree(root)`` visits every entry under ``root`` once, with one
``fstatat(dir_fd, name, AT_SYMLINK_NOFOLLOW)`` per entry, and returns per-directory
sizes (allocated blocks * 512, like ``du``) without keeping a Python object per file.

How it matches ``du`` exactly:

* sizes are ``st_blocks * 512`` of every entry (directories, files, symlinks, ...);
  symlinks are never followed;
* a file with ``st_nlink > 1`` is counted once, charged to the directory where ``du``
  meets it first. ``du`` walks depth first in directory-listing order and sorts the
  entries of a directory holding more than 10,000 of them by inode number (except on
  tmpfs, NFS and CIFS); the walk visits entries in the same order and, when it runs in
  several processes, settles each shared inode by that order afterwards;
* with ``one_file_system`` an entry on another device (a mount point) is skipped with
  everything under it, as ``du -x`` does;
* a directory that cannot be listed counts its own blocks and is reported in
  ``unreadable``.

Speed: on CPython the GIL makes threads slower than one thread, so the walk runs in a
small pool of forked worker processes (``os.fork`` and pipes, no ``multiprocessing``,
so it works the same inside an AnsiballZ module and from the CLI). A busy worker hands
the later half of its shallowest pending directory listing to an idle one (work
sharing, as gdu and diskus do with threads). Without ``os.fork``, or with one CPU, the
same walk runs in the calling process.
"""

from __future__ import annotations

import heapq
import marshal
import mmap
import os
import select
import struct
import time

__all__ = ["WalkResult", "walk_tree", "default_workers"]

# fts sorts a directory's entries by inode when it has more than this many entries ...
INODE_SORT_THRESHOLD = 10000
# ... except on file systems where that does not help (gnulib fts.c).
_NO_INODE_SORT_FSTYPES = frozenset(("tmpfs", "nfs", "nfs4", "cifs", "smb3", "smbfs"))

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_S_IFMT = 0o170000
_S_IFDIR = 0o040000

# Layout of the shared control page: byte 0 = number of idle workers, byte 1 = stop.
_HUNGRY = 0
_STOP = 1
_HEADER = struct.Struct("!Q")


class WalkResult:
    """The sized tree: parallel lists indexed by directory number (0 is the root).

    ``names[i]`` is the directory's name (the root's is the path given), ``parents[i]``
    its parent's number (-1 for the root) and ``sizes[i]`` its cumulative allocated
    bytes. ``files`` counts non-directory entries (each inode once); ``unreadable``
    lists ``{"path", "error"}``; ``partial`` is true when the walk stopped at its
    deadline before visiting everything.
    """

    __slots__ = ("root", "names", "parents", "sizes", "files", "unreadable", "partial",
                 "workers", "seconds")

    def __init__(self, root, names, parents, sizes, files, unreadable, partial, workers,
                 seconds):
        self.root = root
        self.names = names
        self.parents = parents
        self.sizes = sizes
        self.files = files
        self.unreadable = unreadable
        self.partial = partial
        self.workers = workers
        self.seconds = seconds

    @property
    def total_bytes(self) -> int:
        return self.sizes[0] if self.sizes else 0

    @property
    def dirs(self) -> int:
        return len(self.sizes)

    def path_of(self, index: int) -> str:
        """The full path of directory number ``index``."""
        return _path_of(self.root, self.names, self.parents, index)

    def largest(self, count: int):
        """The ``count`` biggest directories as ``[{"path", "bytes"}]``, biggest first.

        Ties are ordered as ``du DIR | sort -n | tail`` shows them (by path, bytewise).
        """
        sizes = self.sizes
        if count <= 0 or not sizes:
            return []
        top = heapq.nlargest(count, range(len(sizes)), key=sizes.__getitem__)
        smallest = sizes[top[-1]]
        # Every directory tied with the smallest kept size competes by path, as with
        # sort -n, whose last resort compares the lines bytewise.
        chosen = set(top)
        chosen.update(i for i, size in enumerate(sizes) if size == smallest)
        rows = [(sizes[i], os.fsencode(self.path_of(i))) for i in chosen]
        rows.sort(reverse=True)
        return [{"path": os.fsdecode(path), "bytes": size} for size, path in rows[:count]]


def _path_of(root, names, parents, index) -> str:
    """The full path of directory number ``index`` under ``root`` (lists as in ``WalkResult``)."""
    parts = []
    while index > 0:
        parts.append(names[index])
        index = parents[index]
    parts.append(root)
    return os.path.join(*reversed(parts)) if len(parts) > 1 else root


def default_workers() -> int:
    """Worker processes for a walk: the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cpus = os.cpu_count() or 1
    return max(1, min(4, cpus))


def _mount_fstypes():
    """``{st_dev: fstype}`` for every mount visible in /proc/self/mountinfo."""
    types = {}
    try:
        with open("/proc/self/mountinfo", "rb") as handle:
            for line in handle:
                fields = line.split()
                try:
                    sep = fields.index(b"-")
                    major, minor = fields[2].split(b":")
                except (ValueError, IndexError):
                    continue
                types[os.makedev(int(major), int(minor))] = fields[sep + 1].decode("ascii", "replace")
    except OSError:
        pass
    return types


class _Control:
    """What a task consults between directories: deadline, stop flag, idle workers."""

    __slots__ = ("deadline", "page", "donate")

    def __init__(self, deadline, page=None, donate=None):
        self.deadline = deadline
        self.page = page
        self.donate = donate

    def stopped(self) -> bool:
        if self.page is not None and self.page[_STOP]:
            return True
        return self.deadline is not None and time.monotonic() >= self.deadline


def _list_dir(fd, dev, nosort_devs):
    """The names in the open directory ``fd`` in the order ``du`` visits them."""
    names = os.listdir(fd)
    if len(names) > INODE_SORT_THRESHOLD and dev not in nosort_devs:
        with os.scandir(fd) as entries:
            pairs = sorted((entry.inode(), entry.name) for entry in entries)
        names = [pair[1] for pair in pairs]
    return names


def _run_task(task, root_dev, xdev, nosort_devs, control):
    """Walk one task; return its result tuple (see ``_assemble``).

    A task is ``("root", path, None, None, ())`` for the whole walk, or
    ``("slice", dir_path, names, offset, key)``: entries ``names`` of directory
    ``dir_path`` (its ``key`` is its position in the walk order), starting at position
    ``offset`` of its listing. A slice's node 0 stands for that directory (a proxy):
    what it holds is added to the directory, which another task owns.
    """
    kind, path, slice_names, offset, task_key = task
    names = []
    parents = []
    own = []
    links = []
    errors = []
    files = 0
    partial = False
    stat = os.stat
    stack = []

    if kind == "root":
        try:
            st = stat(path)
        except OSError as exc:
            return ([], [], [], 0, [], [(-1, None, exc.strerror or str(exc))], False)
        names.append(path)
        parents.append(-1)
        own.append(st.st_blocks * 512)
        try:
            fd = os.open(path, _DIR_FLAGS & ~os.O_NOFOLLOW)
        except OSError as exc:
            return (names, parents, own, 0, [], [(0, None, exc.strerror or str(exc))], False)
        try:
            listing = _list_dir(fd, st.st_dev, nosort_devs)
        except OSError as exc:
            os.close(fd)
            return (names, parents, own, 0, [], [(0, None, exc.strerror or str(exc))], False)
        stack.append([fd, listing, 0, 0, 0, st.st_dev])
    else:
        names.append(None)
        parents.append(-1)
        own.append(0)
        try:
            fd = os.open(path, _DIR_FLAGS)
        except OSError as exc:
            return (names, parents, own, 0, [], [(0, None, exc.strerror or str(exc))], False)
        stack.append([fd, slice_names, 0, offset, 0, root_dev])

    seen = set()
    s_ifmt = _S_IFMT
    s_ifdir = _S_IFDIR
    page = control.page
    donate = control.donate
    deadline = control.deadline
    monotonic = time.monotonic
    try:
        while stack:
            if deadline is not None and monotonic() >= deadline or page is not None and page[_STOP]:
                partial = True
                break
            if page is not None and donate is not None and page[_HUNGRY]:
                page[_HUNGRY] = 0
                _share(stack, names, parents, task, donate)
            frame = stack[-1]
            fd, listing, i, base, cur = frame[:5]
            n = len(listing)
            blocks = 0
            descended = False
            while i < n:
                name = listing[i]
                i += 1
                try:
                    st = stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    # Listed but not searchable (no x bit): du reports it the same way.
                    errors.append((cur, None, exc.strerror or str(exc)))
                    continue
                if xdev and st.st_dev != root_dev:
                    continue
                if st.st_mode & s_ifmt == s_ifdir:
                    number = len(own)
                    names.append(name)
                    parents.append(cur)
                    own.append(st.st_blocks * 512)
                    try:
                        sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                    except OSError as exc:
                        errors.append((number, None, exc.strerror or str(exc)))
                        continue
                    try:
                        sublisting = _list_dir(sub, st.st_dev, nosort_devs)
                    except OSError as exc:
                        os.close(sub)
                        errors.append((number, None, exc.strerror or str(exc)))
                        continue
                    frame[2] = i
                    stack.append([sub, sublisting, 0, 0, number, st.st_dev])
                    descended = True
                    break
                files += 1
                if st.st_nlink > 1:
                    inode = (st.st_dev, st.st_ino)
                    if inode in seen:
                        files -= 1
                        continue
                    seen.add(inode)
                    key = task_key + tuple(f[2] - 1 + f[3] for f in stack[:-1]) + (i - 1 + base,)
                    links.append((inode[0], inode[1], st.st_blocks * 512, cur, key))
                blocks += st.st_blocks
            own[cur] += blocks * 512
            if not descended:
                os.close(fd)
                stack.pop()
    finally:
        for frame in stack:
            os.close(frame[0])
    return (names, parents, own, files, links, errors, partial)


def _share(stack, names, parents, task, donate):
    """Give the later half of the shallowest pending listing to an idle worker."""
    for depth, frame in enumerate(stack):
        listing, i = frame[1], frame[2]
        remaining = len(listing) - i
        if remaining < 2 and not (remaining == 1 and depth < len(stack) - 1):
            continue
        cut = i + remaining // 2 if remaining > 1 else i
        given = listing[cut:]
        frame[1] = listing[:cut]
        key = task[4] + tuple(f[2] - 1 + f[3] for f in stack[:depth])
        path = _path_of(task[1], names, parents, frame[4])
        donate(("slice", path, given, frame[3] + cut, key), frame[4])
        return


def _assemble(root, results, parent_refs, workers, started):
    """Join the tasks' results into one ``WalkResult``.

    ``results[t]`` is task t's tuple; ``parent_refs[t]`` is ``(task, node)`` of the
    directory a slice task belongs to (None for the root task). Tasks are numbered in
    creation order, so a parent always has a smaller global number than its children.
    """
    names, parents, own = [], [], []
    proxy = []
    files = 0
    partial = False
    unreadable = []
    bases = []
    best = {}
    charged = []
    for number, result in enumerate(results):
        base = len(own)
        bases.append(base)
        if result is None:
            partial = True
            continue
        t_names, t_parents, t_own, t_files, t_links, t_errors, t_partial = result
        ref = parent_refs[number]
        for j, parent in enumerate(t_parents):
            if parent >= 0:
                parents.append(base + parent)
            elif ref is None:
                parents.append(-1)
            else:
                parents.append(bases[ref[0]] + ref[1])
        names.extend(t_names)
        own.extend(t_own)
        proxy.extend([False] * len(t_own))
        if ref is not None and t_own:
            proxy[base] = True
        files += t_files
        partial = partial or t_partial
        for dev, ino, size, node, key in t_links:
            inode = (dev, ino)
            charged.append((inode, size, base + node))
            if inode not in best or key < best[inode][0]:
                best[inode] = (key, base + node)
        for node, name, error in t_errors:
            unreadable.append((base + node if node >= 0 else -1, name, error))
    for inode, size, node in charged:
        if best[inode][1] != node:
            own[node] -= size
            files -= 1
    sizes = list(own)
    for index in range(len(sizes) - 1, 0, -1):
        parent = parents[index]
        if parent >= 0:
            sizes[parent] += sizes[index]
    # Drop proxies: re-point their children at the directory they stand for.
    if any(proxy):
        keep = [i for i in range(len(sizes)) if not proxy[i]]
        renumber = {}
        for new, old in enumerate(keep):
            renumber[old] = new

        def real(index):
            while index >= 0 and proxy[index]:
                index = parents[index]
            return index

        f_names = [names[i] for i in keep]
        f_parents = [renumber[real(parents[i])] if parents[i] >= 0 else -1 for i in keep]
        f_sizes = [sizes[i] for i in keep]
        err = [(renumber[real(node)] if node >= 0 else -1, name, error)
               for node, name, error in unreadable]
        names, parents, sizes, unreadable = f_names, f_parents, f_sizes, err
    result = WalkResult(root, names, parents, sizes, files, [], partial, workers,
                        time.monotonic() - started)
    seen = set()
    for node, name, error in unreadable:
        path = result.path_of(node) if node >= 0 else root
        if name is not None:
            path = os.path.join(path, name)
        if path not in seen:
            seen.add(path)
            result.unreadable.append({"path": path, "error": error})
    return result


def _send(fd, obj):
    data = marshal.dumps(obj)
    view = memoryview(_HEADER.pack(len(data)) + data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _recv(fd):
    header = _read_exact(fd, _HEADER.size)
    if header is None:
        return None
    (length,) = _HEADER.unpack(header)
    data = _read_exact(fd, length)
    if data is None:
        return None
    return marshal.loads(data)


def _read_exact(fd, length):
    chunks = []
    while length:
        chunk = os.read(fd, min(length, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        length -= len(chunk)
    return b"".join(chunks)


def _worker(task_fd, result_fd, page, root_dev, xdev, nosort_devs, deadline):
    """Body of a forked worker: run tasks until told to stop; never returns."""
    status = 0
    try:
        while True:
            message = _recv(task_fd)
            if message is None:
                break
            number, task = message

            def donate(sub_task, node, _number=number):
                _send(result_fd, ("d", _number, node, sub_task))

            control = _Control(deadline, page, donate)
            result = _run_task(task, root_dev, xdev, nosort_devs, control)
            _send(result_fd, ("r", number, result))
    except BaseException as exc:  # report anything, then leave without cleanup handlers
        try:
            _send(result_fd, ("e", 0, "%s: %s" % (type(exc).__name__, exc)))
        except BaseException:
            pass
        status = 1
    os._exit(status)


def _walk_parallel(root, root_dev, xdev, nosort_devs, deadline, workers, started):
    page = mmap.mmap(-1, mmap.PAGESIZE)
    children = []
    try:
        for unused in range(workers):  # noqa: B007
            task_r, task_w = os.pipe()
            result_r, result_w = os.pipe()
            pid = os.fork()
            if pid == 0:  # pragma: no cover - runs in the child
                try:
                    os.close(task_w)
                    os.close(result_r)
                    for other in children:
                        os.close(other[1])
                        os.close(other[2])
                finally:
                    _worker(task_r, result_w, page, root_dev, xdev, nosort_devs, deadline)
            os.close(task_r)
            os.close(result_w)
            children.append([pid, task_w, result_r, None])  # None = idle
    except OSError:
        _stop_children(children)
        page.close()
        return None

    tasks = [("root", root, None, None, ())]
    parent_refs = [None]
    results = [None]
    queue = [0]
    failure = None
    timed_out = False
    try:
        while True:
            for child in children:
                if child[3] is None and queue:
                    number = queue.pop(0)
                    child[3] = number
                    _send(child[1], (number, tasks[number]))
            idle = sum(1 for child in children if child[3] is None)
            if idle == len(children) and not queue:
                break
            page[_HUNGRY] = 1 if idle and not queue else 0
            wait = None
            if deadline is not None:
                wait = max(0.0, deadline - time.monotonic()) + 0.05
            readable = select.select([c[2] for c in children if c[3] is not None], [], [], wait)[0]
            if not readable:
                if deadline is not None and time.monotonic() >= deadline:
                    page[_STOP] = 1
                    timed_out = True
                    queue = []
                continue
            for fd in readable:
                child = next(c for c in children if c[2] == fd)
                message = _recv(fd)
                if message is None:
                    failure = "a scan worker exited unexpectedly"
                    child[3] = None
                    raise _WorkerFailed(failure)
                kind = message[0]
                if kind == "d":
                    owner, node, sub_task = message[1:]
                    tasks.append(sub_task)
                    parent_refs.append((owner, node))
                    results.append(None)
                    if not timed_out:
                        queue.append(len(tasks) - 1)
                elif kind == "r":
                    results[message[1]] = message[2]
                    child[3] = None
                else:
                    raise _WorkerFailed(message[2])
    finally:
        page[_STOP] = 1  # workers still walking (an error or a signal here) stop soon
        _stop_children(children)
        page.close()
    result = _assemble(root, results, parent_refs, workers, started)
    if timed_out:
        result.partial = True
    return result


class _WorkerFailed(Exception):
    pass


def _stop_children(children):
    for child in children:
        try:
            os.close(child[1])
        except OSError:
            pass
    for child in children:
        try:
            os.close(child[2])
        except OSError:
            pass
        try:
            os.waitpid(child[0], 0)
        except OSError:
            pass


def walk_tree(root, one_file_system=True, timeout=None, workers=None):
    """Size every directory under ``root`` like ``du -x``; return a ``WalkResult``.

    ``timeout`` (seconds) stops the walk early with ``partial`` set; ``workers`` is the
    number of processes (default ``default_workers()``; 1 walks in this process).
    Raises ``OSError`` when ``root`` itself cannot be examined.
    """
    started = time.monotonic()
    root_st = os.stat(root)
    deadline = started + timeout if timeout is not None else None
    fstypes = _mount_fstypes()
    nosort_devs = frozenset(dev for dev, fstype in fstypes.items()
                            if fstype in _NO_INODE_SORT_FSTYPES)
    if workers is None:
        workers = default_workers()
    if workers > 1 and hasattr(os, "fork"):
        try:
            result = _walk_parallel(root, root_st.st_dev, one_file_system, nosort_devs,
                                    deadline, workers, started)
        except _WorkerFailed:
            result = None
        if result is not None:
            return result
    control = _Control(deadline)
    task_result = _run_task(("root", root, None, None, ()), root_st.st_dev, one_file_system,
                            nosort_devs, control)
    return _assemble(root, [task_result], [None], 1, started)

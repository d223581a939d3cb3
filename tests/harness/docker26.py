# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Debian 13's Docker 26 ``dockerd`` on this machine, for ``dockerd --validate`` and ``--help``.

``trixie_root()`` finds the Debian 13 root filesystem with docker.io (see
/work/shared/harness-notes.md); ``dockerd_26_wrapper(path, root)`` writes an executable at
``path`` that runs that root's dockerd in a chroot: a ``--config-file F`` argument is
bind-mounted into the root's /mnt in a private mount namespace, so nothing is written into the
shared root and no mount shows outside the process.
"""

from __future__ import annotations

import glob
import os
import stat
import subprocess

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
TRIXIE_SCRIPT = os.path.join(_REPO, "scripts", "build-test-engine-rootfs")


def trixie_root():
    """The Debian 13 root filesystem with Docker 26, if built on this machine, else None."""
    if os.path.isfile(TRIXIE_SCRIPT):
        proc = subprocess.run([TRIXIE_SCRIPT], capture_output=True, text=True, check=False)
        if proc.returncode == 0 and proc.stdout.strip():
            return proc.stdout.strip().splitlines()[-1]
    roots = sorted(glob.glob("/var/cache/runbook-ops/trixie-docker-*/usr/sbin/dockerd"))
    return os.path.dirname(os.path.dirname(os.path.dirname(roots[-1]))) if roots else None


def dockerd_26_wrapper(path, root):
    """Write the chroot wrapper at ``path`` and return ``path`` (a str)."""
    with open(path, "w") as handle:
        handle.write(
            "#!/usr/bin/python3\n"
            "import os, sys\n"
            "args, bind = sys.argv[1:], '/nonexistent'\n"
            "if '--config-file' in args:\n"
            "    i = args.index('--config-file') + 1\n"
            "    bind = os.path.dirname(os.path.abspath(args[i]))\n"
            "    args[i] = '/mnt/' + os.path.basename(args[i])\n"
            "script = ('[ \"$1\" = /nonexistent ] || mount --bind \"$1\" \"$0/mnt\" || exit 125; '\n"
            "          'shift; exec chroot \"$0\" /usr/sbin/dockerd \"$@\"')\n"
            "os.execvp('unshare', ['unshare', '-m', '--propagation', 'private', 'sh', '-c', script,\n"
            "                      %r, bind] + args)\n" % root)
    os.chmod(path, os.stat(path).st_mode | stat.S_IXUSR)
    return str(path)

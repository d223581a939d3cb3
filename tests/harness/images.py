# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tiny offline images for tests: ``FROM scratch`` + Debian's static busybox.

No registry is needed. Images are built with Debian's ``/usr/bin/docker`` (20.10)
client against an ``IsolatedEngine`` (its ``DOCKER_HOST``); ``buildkit=True`` builds
with ``DOCKER_BUILDKIT=1`` so the engine's build cache gets records (the v28 client on
PATH has no buildx and cannot do that). ``filler_bytes`` adds a file of random bytes:
images of a chosen size, each with a distinct id.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile

BUSYBOX = "/bin/busybox"
DOCKER_CLI = "/usr/bin/docker"
APPLETS = ("sh", "sleep", "md5sum", "env", "cat", "echo", "ls", "true", "false", "wget",
           "test", "mkdir", "rm", "cp", "mv", "ln", "du", "df", "head", "tail", "grep",
           "sed", "date", "id", "ps", "kill", "touch", "printf", "nc", "httpd", "dd", "sync")


def build_busybox_image(engine, tag, labels=None, extra_files=None, buildkit=False,
                        filler_bytes=0, run=None, cmd=None, base=None, timeout=300, env=None):
    """Build a busybox scratch image on ``engine`` and return its id (``sha256:...``).

    ``tag``: the image reference (``name:tag``), or ``None`` for an untagged image.
    ``labels``: dict of image labels.
    ``extra_files``: ``{"/path/in/image": str|bytes}`` added to the image.
    ``filler_bytes``: size of a random file ``/filler.bin`` (makes the id unique).
    ``run``: shell lines appended as ``RUN`` steps (they run on the engine).
    ``cmd``: the image's CMD as a list (default ``["sleep", "infinity"]``).
    ``base``: build ``FROM base`` (an image on the engine) instead of ``FROM scratch``;
    busybox then comes from the base and only extra/filler files are added (with the
    legacy builder the new image gets the base as its parent).
    ``env``: dict of the image's own ``ENV`` (in the image's ``Config.Env``).
    Raises ``RuntimeError`` with the build output when the build fails.
    """
    context = tempfile.mkdtemp(prefix="rbo-img-")
    try:
        rootfs = os.path.join(context, "rootfs")
        bindir = os.path.join(rootfs, "bin")
        os.makedirs(bindir)
        if not base:
            shutil.copy2(BUSYBOX, os.path.join(bindir, "busybox"))
            for applet in APPLETS:
                os.symlink("busybox", os.path.join(bindir, applet))
            os.makedirs(os.path.join(rootfs, "tmp"))
        for path, content in (extra_files or {}).items():
            dest = os.path.join(rootfs, path.lstrip("/"))
            os.makedirs(os.path.dirname(dest), exist_ok=True)
            with open(dest, "wb") as fh:
                fh.write(content.encode() if isinstance(content, str) else content)
        if filler_bytes:
            with open(os.path.join(rootfs, "filler.bin"), "wb") as fh:
                remaining = int(filler_bytes)
                while remaining > 0:
                    chunk = min(remaining, 1 << 20)
                    fh.write(os.urandom(chunk))
                    remaining -= chunk
        lines = ["FROM %s" % (base or "scratch")]
        if not base or extra_files or filler_bytes:
            lines.append("COPY rootfs/ /")
        for key, value in sorted((labels or {}).items()):
            lines.append("LABEL %s=%s" % (_quote(key), _quote(value)))
        for key, value in sorted((env or {}).items()):
            lines.append("ENV %s=%s" % (key, _quote(value).replace("$", "\\$")))
        for step in run or ():
            lines.append("RUN %s" % step)
        if cmd or not base:
            lines.append("CMD %s" % _json_list(cmd or ["sleep", "infinity"]))
        with open(os.path.join(context, "Dockerfile"), "w") as fh:
            fh.write("\n".join(lines) + "\n")
        iidfile = os.path.join(context, "iid")
        argv = [DOCKER_CLI, "build", "-q", "--iidfile", iidfile]
        if tag:
            argv += ["-t", tag]
        argv.append(context)
        env = dict(os.environ)
        env.update(engine.env)
        env["DOCKER_BUILDKIT"] = "1" if buildkit else "0"
        proc = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=timeout, check=False)
        if proc.returncode != 0:
            raise RuntimeError("docker build of %s failed (%d):\n%s\n%s" % (
                tag, proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:]))
        with open(iidfile) as fh:
            return fh.read().strip()
    finally:
        shutil.rmtree(context, ignore_errors=True)


def _quote(value):
    return '"%s"' % str(value).replace("\\", "\\\\").replace('"', '\\"')


def _json_list(items):
    import json

    return json.dumps(list(items))

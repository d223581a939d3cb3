# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Docker state the docker_cleanup tests run against, built on an isolated engine.

``build_cleanup_scenario(engine)`` makes, and returns the ids/names of:

images   app:running (a running container uses it), app:stopped (only a stopped
         container uses it), app:old (unused), app:keep (unused, keep label),
         dang:latest rebuilt twice (two dangling images), base:1 (unused, but the parent
         of derived:1, which a stopped container uses), app:compose (used by a compose
         project that was brought down), bk:1/bk:2 (BuildKit: unused, and build cache).
volumes  shop_data (named volume of the compose project, down), loose (unused named),
         keepvol (unused named, keep label), an anonymous volume no container
         references, and an anonymous volume of the stopped container.
networks unusednet (no container), stoppednet (only the stopped container).
containers running, stopped, derived-stopped (stopped), kept-stopped (stopped, keep label).
         The stopped ones stopped ``STOPPED_AGO`` (2 days) ago (``backdate_containers``):
         older than the floor every cleanup keeps (a day after a crash), younger than the
         default ``containers_until`` (168h).
"""

from __future__ import annotations

import os
import subprocess
import tempfile

from images import build_busybox_image

KEEP = "runbook.ops.keep"
STOPPED_AGO = 2 * 86400

COMPOSE_FILE = """\
name: shop
services:
  web:
    image: app:compose
    pull_policy: never
    command: ["sh", "-c", "dd if=/dev/urandom of=/data/blob bs=1024 count=300 2>/dev/null; sleep 3600"]
    volumes:
      - data:/data
volumes:
  data: {}
"""


def compose_bin():
    path = os.environ.get("RUNBOOK_OPS_COMPOSE_BIN")
    if not path or not os.access(path, os.X_OK):
        raise RuntimeError("RUNBOOK_OPS_COMPOSE_BIN is not set; source scripts/dev-env.sh")
    return path


def _compose(engine, workdir, *args):
    env = dict(os.environ)
    env.update(engine.env)
    proc = subprocess.run([compose_bin(), "-f", os.path.join(workdir, "compose.yaml")] + list(args),
                          capture_output=True, text=True, env=env, cwd=workdir, check=False)
    if proc.returncode != 0:
        raise RuntimeError("compose %s failed: %s" % (" ".join(args), proc.stderr[-2000:]))
    return proc


def _wait_exit(container):
    container.wait(timeout=60)
    container.reload()


def build_cleanup_scenario(engine, buildkit=True):
    """Build the state above on ``engine``; returns a dict of ids and names."""
    client = engine.client()
    s = {"images": {}, "volumes": {}, "containers": {}, "networks": {}}
    img = s["images"]
    img["app:running"] = build_busybox_image(engine, "app:running", filler_bytes=200 * 1024)
    img["app:stopped"] = build_busybox_image(engine, "app:stopped", filler_bytes=210 * 1024)
    img["app:old"] = build_busybox_image(engine, "app:old", filler_bytes=220 * 1024)
    img["app:keep"] = build_busybox_image(engine, "app:keep", labels={KEEP: "true"},
                                          filler_bytes=230 * 1024)
    img["dangling"] = []
    for _copy in range(2):
        img["dangling"].append(build_busybox_image(engine, "dang:latest", filler_bytes=150 * 1024))
    img["dang:latest"] = build_busybox_image(engine, "dang:latest", filler_bytes=150 * 1024)
    img["base:1"] = build_busybox_image(engine, "base:1", filler_bytes=240 * 1024)
    img["derived:1"] = build_busybox_image(engine, "derived:1", base="base:1",
                                           filler_bytes=50 * 1024)
    img["app:compose"] = build_busybox_image(engine, "app:compose", filler_bytes=250 * 1024)
    if buildkit:
        img["bk:1"] = build_busybox_image(engine, "bk:1", buildkit=True, filler_bytes=260 * 1024,
                                          run=["dd if=/dev/urandom of=/built bs=1024 count=100"])
        img["bk:2"] = build_busybox_image(engine, "bk:2", buildkit=True, filler_bytes=270 * 1024,
                                          run=["dd if=/dev/urandom of=/built bs=1024 count=120"])

    nets = s["networks"]
    nets["unusednet"] = client.networks.create("unusednet").id
    nets["stoppednet"] = client.networks.create("stoppednet").id

    vols = s["volumes"]
    vols["loose"] = client.volumes.create("loose").name
    vols["keepvol"] = client.volumes.create("keepvol", labels={KEEP: "yes"}).name

    ctrs = s["containers"]
    running = client.containers.run(img["app:running"], name="running", detach=True)
    ctrs["running"] = running.id
    stopped = client.containers.run("app:stopped", ["sh", "-c", "echo x > /cache/x"],
                                    name="stopped", detach=True, network="stoppednet",
                                    volumes=["/cache"])
    _wait_exit(stopped)
    ctrs["stopped"] = stopped.id
    vols["stopped_anon"] = [m["Name"] for m in stopped.attrs["Mounts"] if m["Type"] == "volume"][0]
    derived = client.containers.run("derived:1", ["true"], name="derived-stopped", detach=True)
    _wait_exit(derived)
    ctrs["derived-stopped"] = derived.id
    kept = client.containers.run("app:running", ["true"], name="kept-stopped", detach=True,
                                 labels={KEEP: "1"})
    _wait_exit(kept)
    ctrs["kept-stopped"] = kept.id
    tmp = client.containers.run("app:old", ["sh", "-c",
                                            "dd if=/dev/urandom of=/scratch/x bs=1024 count=400"],
                                name="anon-tmp", detach=True, volumes=["/scratch"])
    _wait_exit(tmp)
    vols["anon"] = [m["Name"] for m in tmp.attrs["Mounts"] if m["Type"] == "volume"][0]
    tmp.remove(v=False)

    workdir = tempfile.mkdtemp(prefix="rbo-shop-")
    with open(os.path.join(workdir, "compose.yaml"), "w") as fh:
        fh.write(COMPOSE_FILE)
    _compose(engine, workdir, "up", "-d")
    for _attempt in range(50):
        out = subprocess.run(["/usr/bin/docker", "exec", "shop-web-1", "sh", "-c",
                              "ls -l /data/blob"], capture_output=True, text=True,
                             env=dict(os.environ, **engine.env), check=False)
        if " 307200 " in out.stdout:
            break
        import time
        time.sleep(0.1)
    _compose(engine, workdir, "down", "-t", "0")
    vols["shop_data"] = "shop_data"
    client.close()
    engine.backdate_containers(dict((name, STOPPED_AGO) for name in (
        "stopped", "derived-stopped", "kept-stopped")))
    engine.docker_cli("start", "running")  # the restart stopped it
    return s

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The isolated-engine harness itself: it runs containers and leaves no trace."""

from __future__ import annotations

import os
import subprocess

import pytest

from images import build_busybox_image
from isolated_engine import ENGINES, _mounts_under


def _docker0_addr():
    out = subprocess.run(["ip", "-o", "-4", "addr", "show", "dev", "docker0"],
                         capture_output=True, text=True, check=False)
    return out.returncode, out.stdout.split()[3] if out.stdout.split() else ""


@pytest.mark.parametrize("version", ENGINES)
def test_isolated_engine_runs_containers_and_stops_cleanly(isolated_engine_factory, version):
    before = _docker0_addr()
    host_dev = _mounts_under("/dev")
    engine = isolated_engine_factory("selftest", data_root_size="256m", version=version)
    assert engine.client().info()["DockerRootDir"] == engine.data_root
    assert engine.client().version()["Version"].startswith(version + ".")
    image = build_busybox_image(engine, "selftest:1", labels={"a": "b"}, filler_bytes=4096)
    client = engine.client()
    net = client.networks.create("selftestnet")
    out = client.containers.run(image, ["sh", "-c", "echo hi; md5sum /filler.bin"],
                                remove=True, network="selftestnet")
    assert out.startswith(b"hi\n")
    net_bridge = "br-" + net.id[:12]
    assert os.path.exists("/sys/class/net/%s" % net_bridge)
    engine.stop()
    assert not os.path.exists(engine.dir)
    assert not os.path.exists("/sys/class/net/%s" % engine.bridge)
    assert not os.path.exists("/sys/class/net/%s" % net_bridge), "network bridge leaked"
    assert _mounts_under(engine.dir) == []
    assert _mounts_under("/dev") == host_dev, "unmounting the chroot's /dev reached the host's"
    assert all(os.path.exists(p) for p in ("/dev/null", "/dev/urandom", "/dev/pts/ptmx"))
    assert _docker0_addr() == before
    assert before[0] == 0, "the main engine's docker0 must exist"


def test_buildkit_build_populates_build_cache(isolated_engine):
    build_busybox_image(isolated_engine, "selftest:bk", buildkit=True, filler_bytes=1024)
    df = isolated_engine.api().df()
    assert df.get("BuildCache"), "BuildKit build left no build cache records"

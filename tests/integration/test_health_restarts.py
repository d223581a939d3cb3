# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The health monitor catches a slow crash loop on a real (isolated) Docker engine.

A worker container with ``restart: always`` is OOM-killed by the kernel on demand (it
allocates past its memory limit), once every 10 minutes of injected time, while the
monitor checks every 5 minutes: at every check it is running again. Restarts are judged
over a sliding window, so the 2nd restart within the hour pages, with the exit code
explained. The alert goes to the fake Bot API.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fakes"))

from fake_telegram import FakeTelegram  # noqa: E402
from images import build_busybox_image  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import health  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    merge_runtime)

TOKEN = "55555:health-restarts-token"
# Waits for the trigger file, then allocates past the memory limit as PID 1.
WORKER = ("while [ ! -e /tmp/crash ]; do sleep 0.2; done; rm -f /tmp/crash; "
          "exec dd if=/dev/zero of=/dev/null bs=64M count=1")
LABELS = {"com.docker.compose.project": "shop", "com.docker.compose.service": "worker",
          "com.docker.compose.container-number": "1"}


def _crash(container):
    """OOM-kill the worker once and wait until its restart policy has it running again."""
    before = container.attrs["RestartCount"]
    container.exec_run(["touch", "/tmp/crash"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        container.reload()
        if container.attrs["RestartCount"] > before and container.status == "running":
            return container.attrs["State"]
        time.sleep(0.2)
    raise AssertionError("the worker did not restart: %s" % container.attrs["State"])


def test_a_worker_oom_killed_every_10_minutes_pages_with_the_exit_code(
        isolated_engine, tmp_path):
    build_busybox_image(isolated_engine, "crashy:1", cmd=["sh", "-c", WORKER])
    client = isolated_engine.client()
    container = client.containers.run("crashy:1", detach=True, labels=LABELS,
                                      restart_policy={"Name": "always"}, mem_limit="16m",
                                      memswap_limit="16m", name="shop-worker-1")
    # the machine's own memory and CPU are not this test's subject
    config = health.validate_config({"compose_projects": ["shop"], "resource_checks": False})
    start = 1_700_000_000
    try:
        with FakeTelegram(TOKEN) as fake:
            (tmp_path / "token").write_text(TOKEN)
            runtime = merge_runtime({
                "host_label": "web1", "state_dir": str(tmp_path / "state"),
                "alert": {"telegram_api_url": fake.url, "telegram_chat_id": "-1001",
                          "telegram_token_file": str(tmp_path / "token")}})
            seen, states = [], []
            for minute in range(0, 45, 5):
                if minute and minute % 10 == 0:
                    states.append(_crash(container))
                summary = health.run_health_check(config, runtime, now=start + minute * 60,
                                                  docker=client)
                seen.append((minute, summary["results"][0]["state"], fake.message_count()))
            texts = [m["text"] for m in fake.messages]
    finally:
        container.remove(force=True)
    assert all(state == "running" for _minute, state, _count in seen), seen
    assert states[0]["OOMKilled"] is True, states[0]  # the kernel killed it, really
    assert [count for _minute, _state, count in seen] == [0, 0, 0, 0, 0, 1, 1, 1, 1]
    assert texts == ["⚠️ web1 WARNING: health check degraded (shop/worker: restarted 2 times "
                     "in the last 1 h (last exit code 137: killed, out of memory (OOM))), "
                     "for 5 min"]


def test_the_exit_code_is_the_container_s_own_and_read_in_the_second_it_died(
        isolated_engine):
    """The engine's events are asked by container id: a container recreated under the same
    name (compose up after a change) must not lend the old one's exit code. And a death in
    the very second of the check counts (the API's ``until`` is whole seconds)."""
    segfaults = "while [ ! -e /tmp/crash ]; do sleep 0.2; done; rm -f /tmp/crash; exit 139"
    build_busybox_image(isolated_engine, "segv:1", cmd=["sh", "-c", segfaults])
    client = isolated_engine.client()
    old = client.containers.run("segv:1", ["sh", "-c", "exit 3"], detach=True,
                                name="shop-worker-1")
    old.wait(timeout=30)
    old_id = old.id[:12]
    old.remove()
    new = client.containers.run("segv:1", detach=True, labels=LABELS, name="shop-worker-1",
                                restart_policy={"Name": "always"})
    try:
        wall = time.time()
        assert health.last_exit(client, new.id[:12], wall - 60, wall) is None
        assert health.last_exit(client, old_id, wall - 60, wall)[:2] == (3, False)
        _crash(new)
        info = health.describe_container(new.attrs)
        assert info["state"] == "running" and info["exit_code"] == 0  # inspect forgot it
        assert health.observe_exit(client, info, 3600)[:2] == [139, False]
    finally:
        new.remove(force=True)

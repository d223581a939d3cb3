# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Review of #16 item 4: the slow crash loop's exit code, on an engine that is not idle.

The engine keeps only its last 256 events (moby daemon/events: ``eventsLimit = 256``),
host-wide. Every healthcheck probe of every container is three of them (exec_create,
exec_start, exec_die), so on a host with a few healthchecked services the ``die`` of a
worker that crashed minutes ago is gone when the monitor asks, and a segfault loop pages
without its exit code. Here the noise is 90 execs in a neighbour (270 events).
"""

from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fakes"))

from fake_telegram import FakeTelegram  # noqa: E402
from images import build_busybox_image  # noqa: E402
from test_health_restarts import LABELS, _crash  # noqa: E402  (the same worker, another exit)

from ansible_collections.runbook.ops.plugins.module_utils._ops import health  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    merge_runtime)

TOKEN = "55555:health-review-token"
WORKER = "while [ ! -e /tmp/crash ]; do sleep 0.2; done; rm -f /tmp/crash; exit 139"


def test_a_segfault_loop_is_explained_on_an_engine_with_healthchecks(
        isolated_engine, tmp_path):
    build_busybox_image(isolated_engine, "crashy:1", cmd=["sh", "-c", WORKER])
    client = isolated_engine.client()
    worker = client.containers.run("crashy:1", detach=True, labels=LABELS,
                                   restart_policy={"Name": "always"}, name="shop-worker-1")
    neighbour = client.containers.run("crashy:1", ["sleep", "3600"], detach=True,
                                      name="other-web-1")
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
            health.run_health_check(config, runtime, now=start, docker=client)
            _crash(worker)
            health.run_health_check(config, runtime, now=start + 600, docker=client)
            _crash(worker)
            for _probe in range(90):  # 270 events: 6 services probed every 30 s, in 7.5 min
                neighbour.exec_run(["true"])
            for minutes in (20, 25):  # two warnings in a row page (failures_before_alert)
                health.run_health_check(config, runtime, now=start + minutes * 60,
                                        docker=client)
            texts = [m["text"] for m in fake.messages]
    finally:
        worker.remove(force=True)
        neighbour.remove(force=True)
    assert len(texts) == 1, texts
    assert "exit code 139: segfault" in texts[0], texts[0]

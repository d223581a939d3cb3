# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Each container's memory against its own limit, on a real (isolated) Docker engine.

A ``hog`` container fills its /dev/shm (tmpfs pages are charged to its memory cgroup) to
about 90% of a 32 MiB limit, a ``web`` container uses a little of its 64 MiB, a ``worker``
has no limit. The monitor's figures must be what ``docker stats`` shows, the hog must page
(after 2 runs in a row) through the fake Bot API, and the morning check shows the same rows.
"""

from __future__ import annotations

import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "fakes"))

from fake_telegram import telegram_runtime  # noqa: E402
from images import build_busybox_image  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import (  # noqa: E402
    health, health_resources)

TOKEN = "8080:container-memory-token"
MIB = 1 << 20


def _labels(service):
    return {"com.docker.compose.project": "shop", "com.docker.compose.service": service,
            "com.docker.compose.container-number": "1"}


def _fill(mebibytes):
    return ["sh", "-c", "dd if=/dev/zero of=/dev/shm/fill bs=1M count=%d 2>/dev/null && "
                        "touch /tmp/ready && exec sleep 3600" % mebibytes]


def _wait_ready(container):
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if container.exec_run(["test", "-e", "/tmp/ready"]).exit_code == 0:
            return
        time.sleep(0.2)
    raise AssertionError("%s did not fill its memory" % container.name)


def _docker_stats_percent(engine, name):
    out = engine.docker_cli("stats", "--no-stream", "--format", "{{.MemPerc}}", name).stdout
    return float(out.strip().rstrip("%"))


def _memory_matching_docker_stats(engine, config, client, attempts=3):
    """The monitor's container-memory results, once they agree with ``docker stats`` within 1 point.

    The two are read a moment apart and the kernel's cgroup counters drift by a few hundred KiB
    between reads, so a reading is taken again (at most ``attempts`` times); a different formula
    (cache counted, another limit) differs on every reading and still fails.
    """
    for attempt in range(attempts):
        results, _baseline = health.run_checks(config, docker=client)
        memory = {r["key"]: r for r in results if r["kind"] == "container-memory"}
        gaps = {key: abs(row["used_percent"] - _docker_stats_percent(engine, "shop-%s-1" % key.rsplit("/", 1)[1]))
                for key, row in memory.items()}
        if all(gap < 1.0 for gap in gaps.values()) or attempt == attempts - 1:
            break
        time.sleep(1)
    assert all(gap < 1.0 for gap in gaps.values()), (gaps, memory)
    return memory


def test_container_memory_against_its_limit_pages_and_matches_docker_stats(
        isolated_engine, tmp_path):
    build_busybox_image(isolated_engine, "memhog:1")
    client = isolated_engine.client()
    containers = [
        client.containers.run("memhog:1", _fill(29), detach=True, labels=_labels("hog"),
                              mem_limit="32m", memswap_limit="32m", name="shop-hog-1"),
        client.containers.run("memhog:1", _fill(4), detach=True, labels=_labels("web"),
                              mem_limit="64m", name="shop-web-1"),
        client.containers.run("memhog:1", _fill(4), detach=True, labels=_labels("worker"),
                              name="shop-worker-1"),
    ]
    try:
        for container in containers:
            _wait_ready(container)
        config = health.validate_config({"compose_projects": ["shop"]})
        memory = _memory_matching_docker_stats(isolated_engine, config, client)
        assert set(memory) == {"container-memory:shop/hog", "container-memory:shop/web"}
        hog, web = memory["container-memory:shop/hog"], memory["container-memory:shop/web"]
        assert hog["limit_bytes"] == 32 * MIB and web["limit_bytes"] == 64 * MIB
        assert hog["level"] == "critical" and hog["used_percent"] >= 90, hog
        assert hog["problem"].startswith("%.0f%% used (critical at 90%%), " % hog["used_percent"])
        assert web["level"] == "ok"
        # the request made by hand (SDKs without one_shot) reads the same figures
        raw = health_resources.container_memory_usage(
            health_resources.read_container_stats_raw(client, containers[0].id))
        assert raw[1] == 32 * MIB and abs(raw[0] - hog["usage_bytes"]) < 2 * MIB

        with telegram_runtime(tmp_path, TOKEN) as (runtime, fake):
            quiet = dict(config, resource_checks=True, memory_warning_percent=99,
                         memory_critical_percent=100, swap_warning_percent=99,
                         swap_critical_percent=100, cpu_warning_percent=99.9)
            for minute in (0, 5):
                health.run_health_check(quiet, runtime, now=1_700_000_000 + minute * 60,
                                        docker=client)
            texts = [m["text"] for m in fake.messages]
        assert len(texts) == 1 and texts[0].startswith(
            "🚨 web1 CRITICAL: health check failed (shop/hog memory: "), texts
        assert "of its 32.0 MiB limit), for 5 min" in texts[0]

        report = health.build_report(config, runtime, docker=client,
                                     backup={"available": False, "age_hours": None,
                                             "level": "ok", "detail": "n/a"})
        rows = {r["name"]: r for r in report["rows"] if r["section"] == "memory"}
        assert rows["shop-hog-1"]["level"] == "critical"
        assert rows["shop-hog-1"]["status"].endswith("% of limit")
        assert rows["shop-web-1"]["level"] == "ok"
        assert "shop-worker-1" not in rows  # no limit: not judged
    finally:
        for container in containers:
            container.remove(force=True)

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""No false alarms on day one: real Compose projects on a real (isolated) Docker engine.

A ``migrate`` service (Compose's default ``restart: "no"``) that ran and exited 0 is ok in
the monitor and in the morning check; so is a ``seed`` service with ``restart:
on-failure`` that exited 0 once it is named in ``oneshot_services`` (and critical when it
is not: a service meant to run that ended). A one-shot that failed is still critical.
Containers of a project nobody configured are not judged by the morning check.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "harness"))

from images import build_busybox_image  # noqa: E402

from ansible_collections.runbook.ops.plugins.module_utils._ops import health  # noqa: E402
from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import (  # noqa: E402
    merge_runtime)

COMPOSE_BIN = os.environ.get("RUNBOOK_OPS_COMPOSE_BIN") or ""
IMAGE = "runbook-ops-firstday:1"
SHOP = """\
services:
  migrate:
    image: %(image)s
    command: ["sh", "-c", "echo migrated; exit 0"]
  web:
    image: %(image)s
    restart: unless-stopped
  seed:
    image: %(image)s
    restart: on-failure
    command: ["sh", "-c", "exit 0"]
  broken:
    image: %(image)s
    command: ["sh", "-c", "exit 3"]
"""
OTHER = """\
services:
  stray:
    image: %(image)s
    command: ["sh", "-c", "exit 1"]
"""

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="isolated engines need root"),
    pytest.mark.skipif(not os.access(COMPOSE_BIN, os.X_OK),
                       reason="RUNBOOK_OPS_COMPOSE_BIN (the Go docker-compose) is not set; "
                              "source scripts/dev-env.sh"),
]


def _compose(engine, directory, *args):
    done = subprocess.run([COMPOSE_BIN] + list(args), cwd=str(directory), capture_output=True,
                          text=True, env=dict(os.environ, **engine.env), timeout=300,
                          check=False)
    assert done.returncode == 0, done.stderr
    return done


@pytest.fixture
def projects(isolated_engine_factory, tmp_path):
    """``shop`` and ``other`` up on an engine of their own (the monitor judges every container
    the engine has), their one-shot runs finished."""
    engine = isolated_engine_factory("firstday")
    build_busybox_image(engine, IMAGE)
    dirs = []
    for name, text in (("shop", SHOP), ("other", OTHER)):
        directory = tmp_path / name
        directory.mkdir()
        (directory / "compose.yaml").write_text(text % {"image": IMAGE})
        dirs.append(directory)
        _compose(engine, directory, "up", "-d")
    client = engine.client()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        states = {c.name: c.status for c in client.containers.list(all=True)}
        if sum(1 for state in states.values() if state == "exited") == 4:
            break
        time.sleep(0.2)
    assert states == {"shop-migrate-1": "exited", "shop-web-1": "running",
                      "shop-seed-1": "exited", "shop-broken-1": "exited",
                      "other-stray-1": "exited"}, states
    yield client
    client.close()


def _levels(results):
    return {r["name"]: (r["level"], r["problem"]) for r in results}


def test_one_shot_runs_that_exited_0_are_ok_in_the_monitor(projects, tmp_path):
    config = health.validate_config({"compose_projects": ["shop"],
                                     "oneshot_services": ["shop/seed"]})
    results, _baseline = health.run_checks(config, docker=projects)
    assert _levels(results) == {
        "shop/broken": ("critical", "exited, exit code 3"),
        "shop/migrate": ("ok", ""),
        "shop/seed": ("ok", ""),
        "shop/web": ("ok", "")}
    # without the list, a restart: on-failure service that ended is a service down
    plain = health.validate_config({"compose_projects": ["shop"]})
    results, _baseline = health.run_checks(plain, docker=projects)
    assert _levels(results)["shop/seed"] == ("critical", "exited, exit code 0")
    # a required service must run, even with restart: "no"
    required = health.validate_config({"compose_projects": [
        {"name": "shop", "services": ["migrate"]}]})
    results, _baseline = health.run_checks(required, docker=projects)
    assert _levels(results)["shop/migrate"] == ("critical", "exited, exit code 0")


def test_the_morning_check_judges_only_the_configured_projects(projects, tmp_path):
    config = health.validate_config({"compose_projects": ["shop"],
                                     "oneshot_services": ["seed"]})
    runtime = merge_runtime({"host_label": "web1", "state_dir": str(tmp_path / "state")})
    report = health.build_report(config, runtime, docker=projects,
                                 backup={"available": False, "age_hours": None,
                                         "level": "ok", "detail": "n/a"})
    rows = {(r["section"], r["name"]): (r["level"], r["status"], r["detail"])
            for r in report["rows"] if r["section"] in ("container", "containers")}
    assert rows == {
        ("container", "shop-broken-1"): ("critical", "exited", "exited, exit code 3"),
        ("container", "shop-migrate-1"): ("ok", "exited", "one-shot run done, exit code 0"),
        ("container", "shop-seed-1"): ("ok", "exited", "one-shot run done, exit code 0"),
        ("container", "shop-web-1"): ("ok", "running", "0 restarts"),
        ("containers", "not monitored"): (
            "ok", "1 outside projects",
            "not judged (not in health_monitor_compose_projects): other-stray-1")}

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""runbook.ops.emergency_disk through `ansible localhost -m`, on a really full Docker data root.

The same full engine as test_emergency_disk.py (an isolated dockerd on a 160 MiB tmpfs past
85%: build cache, unused images, a running container, a named volume), run as the house
style runs every module: check -> real -> check -> real, which must report changed,
changed, not changed, not changed; the first real run ends below the target with what is
used kept, and the checks change nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from test_emergency_disk import fs_used
from test_emergency_disk import full_engine  # noqa: F401 pylint: disable=unused-import

_REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
_ANSIBLE = os.path.join(os.path.dirname(sys.executable), "ansible")


def run_module(engine, args, check=False):
    """Run the module once against localhost; returns its task result."""
    env = dict(os.environ)
    env.update(engine.env)
    env.update({"ANSIBLE_CONFIG": os.path.join(_REPO, "ansible.cfg"),
                "ANSIBLE_COLLECTIONS_PATH": os.path.join(_REPO, ".collections"),
                "ANSIBLE_LOAD_CALLBACK_PLUGINS": "true",
                "ANSIBLE_STDOUT_CALLBACK": "ansible.builtin.json", "ANSIBLE_NOCOLOR": "1"})
    argv = [_ANSIBLE, "localhost", "-m", "runbook.ops.emergency_disk", "-a", json.dumps(args)]
    if check:
        argv.append("--check")
    proc = subprocess.run(argv, cwd=_REPO, env=env, capture_output=True, text=True, timeout=900,
                          check=False)
    return json.loads(proc.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]


def test_check_real_check_real(full_engine):  # noqa: F811 pylint: disable=redefined-outer-name
    engine, facts = full_engine
    root = engine.data_root
    args = {"path": root, "docker_host": engine.host, "until": "0s", "log_dir": facts["log_dir"],
            "journal_vacuum": False, "host_label": "web1"}
    images = sorted(i.id for i in engine.client().images.list(all=True))
    used_before, percent_before = fs_used(root)

    first = run_module(engine, args, check=True)
    assert not first.get("failed"), first
    assert first["changed"] and first["summary"]["check_mode"] and first["summary"]["active"]
    assert first["summary"]["before_percent"] == percent_before and first["summary"]["after_percent"] < 70
    assert sorted(i.id for i in engine.client().images.list(all=True)) == images

    second = run_module(engine, args)
    summary = second["summary"]
    assert second["changed"] and not summary["failed_steps"], summary
    assert summary["after_percent"] == fs_used(root)[1] < 70
    assert summary["freed_bytes"] == summary["before_used_bytes"] - summary["after_used_bytes"] > 0
    assert abs(summary["before_used_bytes"] - used_before) < 1024 * 1024
    assert [s["ran"] for s in summary["steps"]] == [True, True, False, False], summary["steps"]
    assert engine.client().containers.get("app").status == "running"
    assert engine.client().volumes.get("shop_media")
    assert not set(facts["old_images"]) & {i.id for i in engine.client().images.list(all=True)}

    for check in (True, False):
        again = run_module(engine, args, check=check)
        assert not again["changed"] and not again["summary"]["active"], again
        assert again["summary"]["host"] == "web1"

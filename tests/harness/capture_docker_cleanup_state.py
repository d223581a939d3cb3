# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capture the docker_cleanup planner's input from a real engine into a unit-test fixture.

Usage (root, from the repo, after `. scripts/dev-env.sh`):
    python tests/harness/capture_docker_cleanup_state.py tests/unit/fixtures/docker_cleanup/scenario-20.10.json

Starts an isolated engine, builds tests/harness/cleanup_scenario.py's state, runs
``collect_state`` as check mode does with every step on (on 20.10 that is the one full
``/system/df``, layer details and an inspect of each stopped container) and writes
``{"captured_at", "scenario", "state"}``.
"""

from __future__ import annotations

import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "..", "plugins", "module_utils"))

from cleanup_scenario import build_cleanup_scenario  # noqa: E402
from isolated_engine import start_isolated_engine  # noqa: E402
from _ops.docker_cleanup import collect_state, normalize_options  # noqa: E402

EVERY_STEP = {"builder_cache": True, "images": "unused", "containers": True, "volumes": "all",
              "networks": True}


def main(out_path):
    engine = start_isolated_engine("capture")
    try:
        scenario = build_cleanup_scenario(engine)
        api = engine.api()
        state = collect_state(api, normalize_options(EVERY_STEP), docker_host=engine.host,
                              check_mode=True)
        data = {"captured_at": time.time(), "scenario": scenario, "state": state}
        with open(out_path, "w") as fh:
            json.dump(data, fh, indent=1, sort_keys=True)
            fh.write("\n")
        print("wrote %s (%d bytes)" % (out_path, os.path.getsize(out_path)))
    finally:
        engine.stop()


if __name__ == "__main__":
    main(sys.argv[1])

# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Capture compose_env's input for tests/unit/fixtures/compose_env/dollars/ from a real `up`.

Usage (root, from the repo, after `. scripts/dev-env.sh`):
    python tests/harness/capture_compose_env_dollars.py

Starts an isolated engine, builds the image ``envsync-env:test`` (its own ENV included),
runs ``docker compose --profile workers up -d`` in the fixture project and writes, next to
it, ``config.json`` (the raw stdout of ``config --format json``: every ``$`` doubled),
``containers.json`` (the inspect of each container) and ``image.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from images import build_busybox_image  # noqa: E402
from isolated_engine import start_isolated_engine  # noqa: E402

PROJECT = os.path.join(HERE, "..", "unit", "fixtures", "compose_env", "dollars")
IMAGE_ENV = {"IMAGE_ONLY": "from-image", "OVERRIDES_IMAGE": "image-value", "IMAGE_DOLLAR": "p$a"}


def main():
    compose = os.environ["RUNBOOK_OPS_COMPOSE_BIN"]
    engine = start_isolated_engine("capture-env")
    try:
        image = build_busybox_image(engine, "envsync-env:test", env=IMAGE_ENV)
        env = dict(os.environ, **engine.env)
        argv = [compose, "--profile", "workers"]
        config = subprocess.run(argv + ["config", "--format", "json"], cwd=PROJECT, env=env,
                                capture_output=True, text=True, check=True).stdout
        subprocess.run(argv + ["up", "-d"], cwd=PROJECT, env=env, capture_output=True, check=True)
        api = engine.api()
        listed = api.containers(filters={"label": "com.docker.compose.project=dollars"})
        containers = [api.inspect_container(item["Id"]) for item in listed]
        with open(os.path.join(PROJECT, "config.json"), "w") as handle:
            handle.write(config)
        for name, data in (("containers.json", containers), ("image.json", api.inspect_image(image))):
            with open(os.path.join(PROJECT, name), "w") as handle:
                json.dump(data, handle, indent=1, sort_keys=True)
                handle.write("\n")
    finally:
        engine.stop()


if __name__ == "__main__":
    main()

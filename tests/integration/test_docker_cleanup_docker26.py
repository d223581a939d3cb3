# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Anonymous volumes on Debian 13's Docker 26 (API 1.45), which labels them itself.

Docker 23+ (API 1.42+) puts ``com.docker.volume.anonymous`` on every volume it creates for
an unnamed mount. ``volumes: anonymous`` must take that label as the engine's word: a
labelled volume goes whatever its name, and a named one stays. The name rule (64 hex digits,
no compose label) is only the fallback for engines that do not label (20.10) and for volumes
made before an upgrade. test_docker_cleanup.py runs the whole scenario on 26 as well.
"""

from __future__ import annotations

import os

import pytest

from images import build_busybox_image
from ansible_collections.runbook.ops.plugins.module_utils._ops.docker_cleanup import (
    ANONYMOUS_VOLUME_LABEL, run_docker_cleanup)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="isolated engines need root")

OPTIONS = {"images": "none", "builder_cache": False, "volumes": "anonymous", "until": "0s"}


def _volumes(engine):
    api = engine.api()
    try:
        return dict((v["Name"], v.get("Labels") or {}) for v in api.volumes().get("Volumes") or [])
    finally:
        api.close()


def _planned_volumes(result):
    step = [s for s in result["steps"] if s["name"] == "volumes"][0]
    return dict((item["name"], item["anonymous"]) for item in step["planned"])


def test_docker_26_labels_anonymous_volumes_and_cleanup_goes_by_the_label(isolated_engine_factory):
    engine = isolated_engine_factory("anon26", version="26")
    assert engine.api().api_version == "1.45"
    build_busybox_image(engine, "vol:1")
    # an unnamed mount of a container that is gone: the engine labels the volume it made
    engine.docker_cli("run", "--name", "job", "-v", "/out", "vol:1", "sh", "-c", "echo x > /out/f")
    anonymous = [m["Name"] for m in engine.api().inspect_container("job")["Mounts"]][0]
    engine.docker_cli("rm", "job")
    # the engine's own label on a name the fallback rule would call named
    engine.docker_cli("volume", "create", "--label", ANONYMOUS_VOLUME_LABEL + "=", "scratch-space")
    # named volumes: one unused, one kept by the keep label
    engine.docker_cli("volume", "create", "shop_media")
    engine.docker_cli("volume", "create", "--label", "runbook.ops.keep=true", "kept_anon")
    volumes = _volumes(engine)
    assert ANONYMOUS_VOLUME_LABEL in volumes[anonymous]
    assert ANONYMOUS_VOLUME_LABEL not in volumes["shop_media"]

    options = dict(OPTIONS, docker_host=engine.host)
    check = run_docker_cleanup(options, check_mode=True)
    assert _volumes(engine) == volumes, "check mode removed something"
    assert _planned_volumes(check) == {anonymous: True, "scratch-space": True}
    real = run_docker_cleanup(options)
    assert real["errors"] == []
    assert set(_volumes(engine)) == {"shop_media", "kept_anon"}
    assert _planned_volumes(real) == _planned_volumes(check)

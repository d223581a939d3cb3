# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Review findings: daemon.json files on which a real Docker 20.10 does not start, or on which
every new container fails, used to pass the check.

``runbook-ops docker-daemon-json --validate`` is the ``validate:`` of the docker_cleanup role:
whatever it passes lands in /etc/docker/daemon.json and the handler restarts dockerd onto it.
Each case here is one the review found passing; now the check refuses it, and the real engine
(the oracle) still refuses it too, so the refusal is not the check's own invention.
"""

from __future__ import annotations

import json

import pytest

import isolated_engine
from images import build_busybox_image
from isolated_engine import start_isolated_engine

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_daemon
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError

REFUSED_BY_DOCKERD = {
    "max-buffer-size-without-non-blocking": {"log-driver": "json-file", "log-opts": {
        "max-size": "10m", "max-file": "3", "max-buffer-size": "4m"}},
    "max-buffer-size-unparsable": {"log-driver": "json-file", "log-opts": {
        "mode": "non-blocking", "max-buffer-size": "lots"}},
    "cache-disabled-not-a-bool": {"log-driver": "json-file", "log-opts": {"cache-disabled": "yes"}},
    "gelf-compression-type": {"log-driver": "gelf", "log-opts": {
        "gelf-address": "udp://127.0.0.1:12201", "gelf-compression-type": "zip"}},
    "gelf-compression-level": {"log-driver": "gelf", "log-opts": {
        "gelf-address": "udp://127.0.0.1:12201", "gelf-compression-level": "99"}},
    "gelf-tcp-max-reconnect": {"log-driver": "gelf", "log-opts": {
        "gelf-address": "tcp://127.0.0.1:12201", "gelf-tcp-max-reconnect": "x"}},
    "fluentd-async-not-a-bool": {"log-driver": "fluentd", "log-opts": {"fluentd-async": "maybe"}},
    "fluentd-retry-wait": {"log-driver": "fluentd", "log-opts": {"fluentd-retry-wait": "x"}},
}


def _start(tmp_path, name, config):
    path = tmp_path / ("%s.json" % name)
    path.write_text(json.dumps(config))
    try:
        start_isolated_engine("rv-" + name[:12], config_file=str(path)).stop()
        return "started"
    except RuntimeError as exc:
        return str(exc).strip().splitlines()[-1]


@pytest.mark.parametrize("name", sorted(REFUSED_BY_DOCKERD))
def test_a_file_dockerd_refuses_is_refused_by_the_check(tmp_path, name):
    config = REFUSED_BY_DOCKERD[name]
    with pytest.raises(OpsError):
        docker_daemon.check_daemon_config(config)
    assert _start(tmp_path, name, config) != "started"


def test_log_settings_also_given_as_dockerd_flags_are_refused(tmp_path, monkeypatch):
    """Debian's docker.service runs `dockerd -H fd:// ... $DOCKER_OPTS` (/etc/default/docker):
    with `--log-opt ...` there, log-opts in daemon.json stop dockerd ("specified both as a flag
    and in the configuration file"). `dockerd --validate --config-file` alone cannot see it."""
    wrapper = tmp_path / "dockerd"
    wrapper.write_text("#!/bin/sh\nexec %s --log-opt max-size=50m \"$@\"\n" % isolated_engine.DOCKERD)
    wrapper.chmod(0o755)
    monkeypatch.setattr(isolated_engine, "DOCKERD", str(wrapper))
    config = {"log-driver": "json-file", "log-opts": {"max-size": "10m", "max-file": "3"}}
    path = tmp_path / "daemon.json"
    path.write_text(json.dumps(config))
    flags = [{"source": "the running dockerd (pid 1)",
              "argv": ["--log-opt", "max-size=50m", "--config-file", str(path)]}]
    with pytest.raises(OpsError, match="also given as dockerd flags"):
        docker_daemon.validate_daemon_file(str(path), flag_sources=flags)
    assert _start(tmp_path, "flags", config) != "started"


@pytest.fixture(scope="module")
def engine():
    eng = start_isolated_engine("rv-ctr")
    try:
        build_busybox_image(eng, "logprobe:1")
        yield eng
    finally:
        eng.stop()


# The role writes booleans as "True" (map('string')); json-file's max-file defaults to 1.
CONTAINER_CASES = {
    "compress-without-max-file": {"max-size": "10m", "compress": "True"},
    "compress-with-max-file-1": {"max-size": "10m", "max-file": "1", "compress": "true"},
}


@pytest.mark.parametrize("name", sorted(CONTAINER_CASES))
def test_log_opts_no_container_starts_with_are_refused_by_the_check(engine, name):
    import docker

    opts = CONTAINER_CASES[name]
    with pytest.raises(OpsError):
        docker_daemon.check_daemon_config({"log-driver": "json-file", "log-opts": opts})
    client = engine.client()
    try:
        with pytest.raises(docker.errors.APIError):
            client.containers.run("logprobe:1", ["true"], remove=True,
                                  log_config={"Type": "json-file", "Config": opts})
    finally:
        client.close()

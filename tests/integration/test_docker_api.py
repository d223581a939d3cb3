# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one Docker client factory and its raw requests, against a real (isolated) engine:
the engine's error answers arrive as the SDK's own exceptions, the client's timeout
applies, another connection to the same engine sends nothing until used, and a client
keeps its connection whatever the request path."""

from __future__ import annotations

import os
import socket
import threading

import docker
import pytest
import requests

from ansible_collections.runbook.ops.plugins.module_utils._ops import docker_api
from ansible_collections.runbook.ops.plugins.module_utils._ops.errors import OpsError

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="isolated engines need root")


def test_an_error_answer_is_the_sdks_own_exception(isolated_engine):
    api, where = docker_api.connect(isolated_engine.host, timeout=30)
    try:
        assert where == isolated_engine.host
        with pytest.raises(docker.errors.NotFound):
            docker_api.request_json(api, "GET", "/containers/%s/json" % ("0" * 64), params={"size": 1})
        with pytest.raises(docker.errors.APIError) as refused:
            docker_api.request_json(api, "POST", "/build/prune", params={"filters": "{not json"})
        assert refused.value.status_code in (400, 500)
        assert "Images" in docker_api.request_json(api, "GET", "/system/df")
    finally:
        api.close()


def test_another_connection_sends_nothing_until_used_and_keeps_the_version(isolated_engine):
    api, _where = docker_api.connect(isolated_engine.host, timeout=30)
    other = docker_api.connect(isolated_engine.host, version=api.api_version, check=False)[0]
    try:
        assert other.api_version == api.api_version
        assert other.version()["ApiVersion"]
    finally:
        other.close()
        api.close()
    # nothing listens: with check=False the client is made, the first call fails
    silent = docker_api.connect("unix:///nonexistent/docker.sock", version="1.41", check=False)[0]
    with pytest.raises(requests.exceptions.ConnectionError):
        silent.ping()
    with pytest.raises(OpsError, match="cannot reach the Docker daemon at unix:///nonexistent/docker.sock"):
        docker_api.connect("/nonexistent/docker.sock", version="1.41")


def _counting_relay(path, target):
    """A unix socket at ``path`` relaying to ``target``; returns the list of accepted connections."""
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(16)
    accepted = []

    def pipe(src, dst):
        while True:
            data = src.recv(65536)
            if not data:
                dst.shutdown(socket.SHUT_WR)
                return
            dst.sendall(data)

    def serve():
        while True:
            conn = server.accept()[0]
            accepted.append(conn)
            engine = socket.socket(socket.AF_UNIX)
            engine.connect(target)
            for src, dst in ((conn, engine), (engine, conn)):
                threading.Thread(target=pipe, args=(src, dst), daemon=True).start()

    threading.Thread(target=serve, daemon=True).start()
    return accepted


def test_a_client_keeps_one_socket_connection_across_request_paths(isolated_engine, tmp_path):
    """The SDK alone opens a connection (and a pool) per distinct URL on a unix socket: 300
    image removals meant about 600 connections. A client of the factory reuses one."""
    path = str(tmp_path / "relay.sock")
    accepted = _counting_relay(path, isolated_engine.socket)
    api = docker_api.connect(path, timeout=30)[0]
    try:
        for n in range(20):
            assert api.images(name="reuse-%d" % n) == []
            with pytest.raises(docker.errors.NotFound):
                api.inspect_image("reuse-%d" % n)
        assert isinstance(docker_api.request_json(api, "GET", "/containers/json"), list)
        assert len(accepted) == 2  # the version lookup's, then one for all 41 calls
    finally:
        api.close()


def test_a_socket_address_without_its_leading_slash_reaches_the_same_socket(isolated_engine):
    """``unix://var/run/docker.sock`` is ``/var/run/docker.sock`` to the SDK; the one-pool
    adapter goes to the same socket, not to a path relative to the working directory."""
    api = docker_api.connect("unix://" + isolated_engine.socket.lstrip("/"), timeout=30)[0]
    try:
        assert isinstance(api.images(), list)
    finally:
        api.close()


def test_the_clients_timeout_bounds_a_raw_request(tmp_path):
    """An engine that accepts and never answers: the request ends at the client's timeout."""
    path = str(tmp_path / "mute.sock")
    server = socket.socket(socket.AF_UNIX)
    server.bind(path)
    server.listen(4)
    held = []
    threading.Thread(target=lambda: held.extend(server.accept() for attempt in range(2)), daemon=True).start()
    api = docker_api.connect(path, timeout=1, version="1.41", check=False)[0]
    try:
        with pytest.raises(requests.exceptions.ReadTimeout):
            docker_api.request_json(api, "GET", "/system/df")
    finally:
        api.close()
        server.close()


def test_the_address_comes_from_the_argument_then_docker_host():
    assert docker_api.engine_address(None, {}) == "unix:///var/run/docker.sock"
    assert docker_api.engine_address(None, {"DOCKER_HOST": "tcp://10.0.0.1:2376"}) == "tcp://10.0.0.1:2376"
    assert docker_api.engine_address("/run/user.sock", {"DOCKER_HOST": "tcp://x:1"}) == "unix:///run/user.sock"

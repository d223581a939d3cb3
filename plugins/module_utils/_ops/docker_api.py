# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one way this collection reaches a Docker engine.

``connect`` is the client factory every module and job uses: the engine's address from
``docker_host``, else ``DOCKER_HOST``, else the local socket; TLS from the usual
``DOCKER_TLS_VERIFY``/``DOCKER_CERT_PATH``; a timeout; one error message when nothing
answers. ``request_json`` covers the few engine parameters the Docker SDK for Python does
not expose (Debian 12 ships docker-py 5.0.3: no ``type`` on ``/system/df``, no ``size``
on a container's inspect, no filters on ``/build/prune``), through the client's public
``requests`` interface and the SDK's public error types.
"""

from __future__ import annotations

import os

from .errors import OpsError

DEFAULT_HOST = "unix:///var/run/docker.sock"


def engine_address(docker_host=None, environ=None) -> str:
    """Where the client goes: ``docker_host``, ``DOCKER_HOST`` or the local socket; a bare
    socket path becomes ``unix://<path>``."""
    environ = os.environ if environ is None else environ
    where = docker_host or environ.get("DOCKER_HOST") or DEFAULT_HOST
    return "unix://" + where if where.startswith("/") else where


def connect(docker_host=None, timeout=60, version="auto", high_level=False, check=True):
    """``(client, address)``: a Docker SDK client (>= 5.0) that answered.

    ``docker.APIClient`` by default, ``docker.DockerClient`` with ``high_level``.
    ``version="auto"`` asks the engine for its API version (the first request); give the
    version of an engine already asked to open another connection to it, which pings it
    unless ``check`` is false (then nothing is sent until the first call). Raises
    ``OpsError`` when the SDK is missing, the TLS settings are unusable or nothing answers.
    """
    try:
        import docker  # pylint: disable=import-outside-toplevel
        from docker.utils import kwargs_from_env  # pylint: disable=import-outside-toplevel
    except ImportError:
        raise OpsError("the Docker SDK for Python is missing; install python3-docker")
    where = engine_address(docker_host)
    try:
        kwargs = kwargs_from_env(environment=dict(os.environ, DOCKER_HOST=where))
    except Exception as exc:  # noqa: BLE001 - docker.errors.TLSParameterError, OSError
        raise OpsError("the Docker client settings for %s are unusable (%s); check DOCKER_TLS_VERIFY "
                       "and DOCKER_CERT_PATH" % (where, short_error(exc)), docker_host=where)
    client = None
    try:
        if high_level:
            client = docker.DockerClient(version=version, timeout=timeout, **kwargs)
        else:
            client = docker.APIClient(version=version, timeout=timeout, **kwargs)
        api = client.api if high_level else client
        # A unix socket takes no proxy, netrc or CA bundle from the environment; not looking
        # them up spares requests' scan of os.environ on every call.
        api.trust_env = not where.startswith("unix://")
        if where.startswith("unix://"):
            _one_socket_pool(api, where, timeout)
        if version != "auto" and check:
            api.ping()
    except Exception as exc:  # noqa: BLE001 - the SDK raises DockerException, requests errors, OSError
        if client is not None:
            client.close()
        raise OpsError("cannot reach the Docker daemon at %s (%s); start it, or set docker_host / "
                       "DOCKER_HOST to where it listens" % (where, short_error(exc)), docker_host=where)
    return client, where


def _one_socket_pool(api, where, timeout):
    """Mount on ``api`` a unix-socket adapter that keeps its connections across request paths.

    The SDK's adapter keys its connection pools by the whole request URL, so every distinct
    path (``DELETE /images/<each id>``) opens a connection and a pool: about 550 for 275
    image removals, a few tenths of a second of client and engine CPU. This one is built
    from public parts: requests' ``HTTPAdapter`` answering one urllib3 pool from the hooks
    requests documents for subclasses (``get_connection_with_tls_context``; before 2.32.2
    ``get_connection``), the pool's ``ConnectionCls`` opening the socket. requests'
    ``Session.mount`` puts it in place of the SDK's, which is closed (it holds the version
    lookup's connection). A client used after its ``close()`` fails ("Pool is closed").
    """
    import socket  # pylint: disable=import-outside-toplevel

    import requests.adapters  # pylint: disable=import-outside-toplevel
    import urllib3  # pylint: disable=import-outside-toplevel

    class SocketConnection(urllib3.connection.HTTPConnection):
        """An HTTP connection to the engine's unix socket."""

        def __init__(self, *args, socket_path, **kwargs):
            super().__init__(*args, **kwargs)
            self.socket_path = socket_path

        def connect(self):
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(self.timeout)
            sock.connect(self.socket_path)
            self.sock = sock

    class UnixHTTPConnectionPool(urllib3.HTTPConnectionPool):
        """urllib3's pool of ``SocketConnection``s (named as the SDK's, for the same error texts)."""

        ConnectionCls = SocketConnection

    class OnePoolAdapter(requests.adapters.HTTPAdapter):
        """One pool for every request path; paths go to the socket as they are."""

        def __init__(self):
            super().__init__()
            self.pool = UnixHTTPConnectionPool("localhost", timeout=timeout, maxsize=10, socket_path=path)

        def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
            return self.pool

        def get_connection(self, url, proxies=None):
            return self.pool

        def request_url(self, request, proxies):
            return request.path_url

        def close(self):
            self.pool.close()
            super().close()

    path = "/" + where[len("unix://"):].lstrip("/")  # unix://var/run/x.sock is /var/run/x.sock, as for the SDK
    prefix = api.base_url.split("//", 1)[0] + "//"  # http+docker://
    adapter = api.get_adapter(api.base_url)
    api.mount(prefix, OnePoolAdapter())
    adapter.close()


def request_json(api, method, path, params=None):
    """The engine's JSON answer to ``method`` on ``path`` (``/system/df``) of ``api``'s API
    version; an error answer raises the SDK's own ``docker.errors.APIError`` (``NotFound``
    for 404), as the SDK's methods do."""
    import docker  # pylint: disable=import-outside-toplevel
    import requests  # pylint: disable=import-outside-toplevel

    from docker.utils.config import load_general_config  # pylint: disable=import-outside-toplevel

    url = "%s/v%s%s" % (api.base_url, api.api_version, path)
    # the HttpHeaders of ~/.docker/config.json, which the SDK's own calls send too
    headers = load_general_config().get("HttpHeaders") or None
    response = api.request(method, url, params=params, headers=headers, timeout=api.timeout)
    try:
        response.raise_for_status()
    except requests.exceptions.HTTPError as exc:
        raise docker.errors.create_api_error_from_http_exception(exc)
    return response.json()


def short_error(exc) -> str:
    """The last line of an exception's text (or its type), at most 300 characters."""
    text = str(exc).strip().splitlines()
    return (text[-1] if text else type(exc).__name__)[:300]

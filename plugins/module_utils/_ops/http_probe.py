# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One HTTP GET for health probes, on a plain socket.

Health checks run every few minutes from cron, so their cost is mostly Python's start-up
and imports: ``urllib.request`` alone pulls in ``email``, ``http.client`` and ``ssl`` and
costs more CPU than the rest of a check. A probe needs far less: one GET with a chosen
``Host`` header, straight to the address in the URL (never through a proxy), redirects
reported rather than followed, and the status and the start of the body back.
"""

from __future__ import annotations

import socket
import time


class ProbeError(Exception):
    """The endpoint gave no HTTP answer; ``reason`` says why in a few words."""

    def __init__(self, reason):
        super().__init__(reason)
        self.reason = reason


def _reason(exc) -> str:
    if isinstance(exc, socket.timeout):
        return "timeout"
    if isinstance(exc, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, socket.gaierror):
        return "name does not resolve"
    return (str(exc) or exc.__class__.__name__)[:200]


def _target(url):
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ProbeError("not an http(s) URL: %s://%s" % (parts.scheme, parts.hostname or ""))
    default_port = 443 if parts.scheme == "https" else 80
    port = parts.port or default_port
    host_header = parts.hostname if port == default_port else "%s:%d" % (parts.hostname, port)
    if ":" in parts.hostname:
        host_header = "[%s]" % host_header if port == default_port else "[%s]:%d" % (parts.hostname, port)
    path = (parts.path or "/") + ("?" + parts.query if parts.query else "")
    return parts.scheme, parts.hostname, port, host_header, path


class _Reader:
    """Buffered reads from a socket under one overall deadline."""

    def __init__(self, sock, deadline):
        self.sock = sock
        self.deadline = deadline
        self.buffer = b""
        self.closed = False

    def fill(self) -> bool:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise socket.timeout("timed out")
        self.sock.settimeout(remaining)
        chunk = self.sock.recv(65536)
        if not chunk:
            self.closed = True
            return False
        self.buffer += chunk
        return True

    def until(self, marker, limit):
        while marker not in self.buffer:
            if len(self.buffer) > limit or not self.fill():
                raise ProbeError("malformed HTTP answer")
        head, _marker, self.buffer = self.buffer.partition(marker)
        return head

    def exactly(self, size):
        while len(self.buffer) < size and self.fill():
            pass
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def rest(self, limit):
        while len(self.buffer) < limit and self.fill():
            pass
        return self.buffer[:limit]


def _read_chunked(reader, limit):
    body = b""
    while len(body) < limit:
        size_line = reader.until(b"\r\n", 1024).split(b";", 1)[0].strip()
        try:
            size = int(size_line, 16)
        except ValueError:
            raise ProbeError("malformed chunked answer")
        if size == 0:
            break
        body += reader.exactly(size)
        reader.until(b"\r\n", 1024)
    return body[:limit]


def http_get(url, headers=None, timeout=5.0, read_limit=65536, verify_tls=True):
    """GET ``url``; return ``(status, body)`` with at most ``read_limit`` bytes of body.

    ``headers`` may override ``Host``. Any HTTP status is an answer (no exception);
    no answer at all (refused, timeout, TLS failure, garbage) raises ``ProbeError``.
    """
    scheme, host, port, host_header, path = _target(url)
    sent = {"Host": host_header, "User-Agent": "runbook-ops-health/1", "Accept": "*/*",
            "Connection": "close"}
    for name, value in (headers or {}).items():
        sent = {k: v for k, v in sent.items() if k.lower() != name.lower()}
        sent[name] = value
    request = "GET %s HTTP/1.1\r\n%s\r\n" % (
        path, "".join("%s: %s\r\n" % item for item in sent.items()))
    deadline = time.monotonic() + timeout
    try:
        sock = socket.create_connection((host, port), timeout=timeout)
        try:
            if scheme == "https":
                import ssl

                context = ssl.create_default_context()
                if not verify_tls:
                    context.check_hostname = False
                    context.verify_mode = ssl.CERT_NONE
                sock = context.wrap_socket(sock, server_hostname=host)
            sock.sendall(request.encode("latin-1"))
            reader = _Reader(sock, deadline)
            head = reader.until(b"\r\n\r\n", 65536).decode("latin-1").split("\r\n")
            status_line = head[0].split(None, 2)
            if len(status_line) < 2 or not status_line[0].startswith("HTTP/") or not status_line[1].isdigit():
                raise ProbeError("malformed HTTP answer")
            fields = {}
            for line in head[1:]:
                name, _sep, value = line.partition(":")
                fields[name.strip().lower()] = value.strip()
            if "chunked" in fields.get("transfer-encoding", "").lower():
                body = _read_chunked(reader, read_limit)
            elif fields.get("content-length", "").isdigit():
                body = reader.exactly(min(int(fields["content-length"]), read_limit))
            else:
                body = reader.rest(read_limit)
            return int(status_line[1]), body
        finally:
            sock.close()
    except ProbeError:
        raise
    except (OSError, ValueError) as exc:
        raise ProbeError(_reason(exc))

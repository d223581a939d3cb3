"""http_get against real servers on 127.0.0.1: bodies as servers frame them, Host, failures."""

from __future__ import annotations

import socket
import threading
import time

import pytest

from ansible_collections.runbook.ops.plugins.module_utils._ops.http_probe import ProbeError, http_get


def _serve_raw(answer, delay=0.0):
    """A one-shot server that records the request and writes ``answer`` bytes back."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(1)
    seen = {}

    def handle():
        conn, _addr = listener.accept()
        with conn:
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(4096)
            seen["request"] = data.decode("latin-1")
            time.sleep(delay)
            try:
                conn.sendall(answer)
            except OSError:
                pass
        listener.close()

    threading.Thread(target=handle, daemon=True).start()
    return "http://127.0.0.1:%d" % listener.getsockname()[1], seen


@pytest.mark.parametrize("answer, status, body", [
    (b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nhealthyEXTRA", 200, b"healthy"),
    (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nheal\r\n3\r\nthy\r\n0\r\n\r\n", 200, b"healthy"),
    (b"HTTP/1.0 503 Service Unavailable\r\n\r\ndown for maintenance", 503, b"down for maintenance"),
    (b"HTTP/1.1 301 Moved\r\nLocation: /elsewhere\r\nContent-Length: 0\r\n\r\n", 301, b""),
], ids=["content-length", "chunked", "until-close", "redirect-not-followed"])
def test_http_get_reads_status_and_body_as_the_server_frames_them(answer, status, body):
    url, _seen = _serve_raw(answer)
    assert http_get(url + "/health/", timeout=5) == (status, body)


def test_http_get_sends_the_path_query_and_an_overriding_host_header():
    url, seen = _serve_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    http_get(url + "/health/?deep=1", headers={"host": "eatfit24.ru"}, timeout=5)
    lines = seen["request"].split("\r\n")
    assert lines[0] == "GET /health/?deep=1 HTTP/1.1"
    assert [line for line in lines if line.lower().startswith("host:")] == ["host: eatfit24.ru"]


def test_http_get_cuts_the_body_at_the_read_limit():
    url, _seen = _serve_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789")
    assert http_get(url, timeout=5, read_limit=4) == (200, b"0123")


def test_http_get_reports_a_refused_connection():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(ProbeError) as info:
        http_get("http://127.0.0.1:%d/" % port, timeout=2)
    assert info.value.reason == "connection refused"


def test_http_get_gives_up_at_the_deadline():
    url, _seen = _serve_raw(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", delay=2.0)
    started = time.monotonic()
    with pytest.raises(ProbeError) as info:
        http_get(url, timeout=0.5)
    assert info.value.reason == "timeout" and time.monotonic() - started < 1.5


@pytest.mark.parametrize("url_or_answer", [
    "ftp://127.0.0.1/", b"SSH-2.0-OpenSSH_9.2\r\n\r\n",
], ids=["not-http-url", "not-http-answer"])
def test_http_get_refuses_what_is_not_http(url_or_answer):
    if isinstance(url_or_answer, bytes):
        url_or_answer, _seen = _serve_raw(url_or_answer)
    with pytest.raises(ProbeError):
        http_get(url_or_answer, timeout=2)

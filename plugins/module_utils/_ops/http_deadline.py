# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One HTTP exchange within a total deadline, for the dead-man ping and Telegram.

urllib's ``timeout`` bounds each socket operation, not the request: an endpoint (or a
proxy) that sends a byte every few seconds keeps it waiting for ever. ``deadline_opener``
gives an ordinary urllib opener (proxies from the environment, HTTPS certificates
checked) whose connections are shut down once ``seconds`` have passed, so whatever
reads from them (the status line, headers, body, an error body) ends at once; a block
that the deadline overtook raises ``TimeoutError`` (an ``OSError``) saying so, even
when what was read before the shutdown looked complete.

Imported only when a ping or an alert is really sent (urllib is costly to import).
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import urllib.request


def _tracked(connection_class, connections, expired):
    """``connection_class`` remembering its connections; one that connects after the
    deadline (connecting is bounded by the per-operation timeout) is shut at once."""
    class Tracked(connection_class):
        def connect(self):
            connections.append(self)
            super().connect()
            if expired.is_set():
                _shut([self])
    return Tracked


def _handlers(connections, expired):
    class DeadlineHTTPHandler(urllib.request.HTTPHandler):
        def http_open(self, req):
            return self.do_open(_tracked(http.client.HTTPConnection, connections, expired),
                                req)

    class DeadlineHTTPSHandler(urllib.request.HTTPSHandler):
        def https_open(self, req):
            return self.do_open(_tracked(http.client.HTTPSConnection, connections, expired),
                                req, context=ssl.create_default_context())

    return DeadlineHTTPHandler(), DeadlineHTTPSHandler()


def _shut(connections) -> None:
    """Shut every connection down, so any read blocked on it returns."""
    for connection in list(connections):
        sock = connection.sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _expire(connections, expired) -> None:
    expired.set()
    _shut(connections)


@contextlib.contextmanager
def deadline_opener(seconds):
    """A urllib opener whose exchanges inside the ``with`` block end within ``seconds``
    in all (connecting, sending, the answer's status, headers and body)."""
    connections = []
    expired = threading.Event()
    timer = threading.Timer(seconds, _expire, (connections, expired))
    timer.daemon = True
    timer.start()
    try:
        yield urllib.request.build_opener(*_handlers(connections, expired))
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if expired.is_set():
            raise TimeoutError("no complete answer within %g s" % seconds) from exc
        raise
    else:
        # A shut connection reads as the end of the answer: what was read may look whole.
        if expired.is_set():
            raise TimeoutError("no complete answer within %g s" % seconds)
    finally:
        timer.cancel()
        for connection in connections:
            connection.close()

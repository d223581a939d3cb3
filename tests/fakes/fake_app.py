# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A stand-in application's health endpoint for tests, stdlib only.

For the Host header ``--expect-host`` (app.example), ``GET /health/`` answers 200
``{"status": "healthy"}``, any other Host 404 (a wrong virtual host); ``GET /slow`` answers
the same after ``--slow-ms`` milliseconds; ``GET /redirect`` answers 302 to /health/.

Run it in a container: ``python3 fake_app.py --port 8080 --pidfile F [--slow-ms 800]`` (the
pid lets a test stop it, ``kill $(cat F)``, and start it again); or in-process:
``with FakeApp(slow_ms=300) as app: app.url``.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _Handler(BaseHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002  pylint: disable=redefined-builtin
        return

    def do_GET(self):  # noqa: N802  pylint: disable=invalid-name
        """Answer as the module docstring says."""
        app = self.server.app
        path = self.path.split("?", 1)[0]
        if path == "/redirect":
            return self._answer(302, b"", {"Location": "/health/"})
        if path == "/slow":
            time.sleep(app.slow_ms / 1000.0)
        host = (self.headers.get("Host") or "").split(":", 1)[0]
        if host != app.expect_host:
            return self._answer(404, b"unknown site " + host.encode("utf-8", "replace"))
        return self._answer(200, b'{"status": "healthy"}', {"Content-Type": "application/json"})

    def _answer(self, status, body, headers=None):
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


class FakeApp:
    """The fake endpoint; a context manager serving on ``host:port`` (port 0 = any free)."""

    def __init__(self, host="127.0.0.1", port=0, expect_host="app.example", slow_ms=800):
        self.expect_host = expect_host
        self.slow_ms = slow_ms
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.app = self

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return "http://%s:%d" % (host, port)

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def __enter__(self):
        threading.Thread(target=self._httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc_info):
        self._httpd.shutdown()
        self._httpd.server_close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="fake application health endpoint for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--expect-host", default="app.example")
    parser.add_argument("--slow-ms", type=int, default=800)
    args = parser.parse_args(argv)
    app = FakeApp(args.host, args.port, args.expect_host, args.slow_ms)
    with open(args.pidfile, "w", encoding="utf-8") as handle:
        handle.write("%d\n" % os.getpid())
    app.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

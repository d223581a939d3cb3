# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tiny health endpoint for the Molecule scenario (stdlib only, runs in the container).

``fixture_http.py --port 8080 --pidfile F [--expect-host app.example] [--slow-ms 800]``:
``GET /health/`` answers 200 ``{"status": "healthy"}``, or 404 when ``--expect-host``
is set and the Host header differs (a wrong virtual host); ``GET /slow`` answers the
same after ``--slow-ms`` milliseconds. The pid goes to ``--pidfile`` so the tests can
stop it (``kill $(cat F)``) and start it again.
"""

from __future__ import annotations

import argparse
import os
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def make_handler(expect_host, slow_ms):
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format, *args):  # noqa: A002
            return

        def do_GET(self):  # noqa: N802
            path = self.path.split("?", 1)[0]
            if path == "/slow":
                time.sleep(slow_ms / 1000.0)
            elif path != "/health/":
                return self._answer(404, b"not found")
            host = (self.headers.get("Host") or "").split(":", 1)[0]
            if expect_host and host != expect_host:
                return self._answer(404, b"unknown site " + host.encode("utf-8", "replace"))
            return self._answer(200, b'{"status": "healthy"}')

        def _answer(self, status, body):
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    return Handler


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pidfile", required=True)
    parser.add_argument("--expect-host", default="")
    parser.add_argument("--slow-ms", type=int, default=800)
    args = parser.parse_args()
    server = ThreadingHTTPServer((args.host, args.port), make_handler(args.expect_host,
                                                                      args.slow_ms))
    server.daemon_threads = True
    with open(args.pidfile, "w") as handle:
        handle.write("%d\n" % os.getpid())
    server.serve_forever()


if __name__ == "__main__":
    main()

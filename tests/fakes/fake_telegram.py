# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake Telegram Bot API (and dead-man ping endpoint) for tests, stdlib only.

Answers ``POST /bot<TOKEN>/sendMessage`` like the Bot API and records each request as a
JSON line ``{"token_ok", "chat_id", "text", "status"}``; ``/ping/<id>[/start|/fail]``
(any method) answers ``OK`` and records ``{"ping": "<id>[/start|/fail]"}``. It never
prints request paths (they hold the token).

Run it in a container: ``python3 fake_telegram.py --port 8081 --expect-token-file F
--record FILE [--fail-first N --fail-status 429|500] [--echo-path]``; or in-process:
``with FakeTelegram(token="t", record_path=p) as fake: fake.url``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, unquote

_SEND = re.compile(r"^/bot(?P<token>[^/]+)/sendMessage/?$")
_PING = re.compile(r"^/ping/(?P<rest>[A-Za-z0-9_.-]+(?:/(?:start|fail|\d+))?)/?$")


class _Handler(BaseHTTPRequestHandler):
    server_version = "fake-telegram/1"

    def log_message(self, format, *args):  # noqa: A002  pylint: disable=redefined-builtin
        # Silent on purpose: request paths hold the token.
        return

    def _answer(self, status, payload, content_type="application/json"):
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        if "json" in (self.headers.get("Content-Type") or ""):
            try:
                data = json.loads(raw.decode("utf-8"))
                return data if isinstance(data, dict) else {}
            except ValueError:
                return {}
        return {k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()}

    def _ping(self):
        match = _PING.match(self.path.split("?", 1)[0])
        if not match:
            return False
        if self.command == "POST":
            self._body()
        self.server.fake.record({"ping": match.group("rest")})
        self._answer(200, b"OK", "text/plain")
        return True

    def do_GET(self):  # noqa: N802
        if not self._ping():
            self._answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})

    do_HEAD = do_GET

    def do_POST(self):  # noqa: N802
        if self._ping():
            return
        match = _SEND.match(self.path.split("?", 1)[0])
        if not match:
            self._answer(404, {"ok": False, "error_code": 404, "description": "Not Found"})
            return
        fake = self.server.fake
        data = self._body()
        token_ok = unquote(match.group("token")) == fake.token
        status = fake.next_status(token_ok)
        entry = {"token_ok": token_ok, "chat_id": str(data.get("chat_id", "")),
                 "text": data.get("text", ""), "status": status}
        fake.record(entry)
        if status == 200:
            self._answer(200, {"ok": True, "result": {
                "message_id": fake.message_count(), "date": 0,
                "chat": {"id": entry["chat_id"]}, "text": entry["text"]}})
        elif status == 429:
            self._answer(429, {"ok": False, "error_code": 429,
                               "description": "Too Many Requests: retry after 1",
                               "parameters": {"retry_after": 1}})
        elif status == 401:
            self._answer(401, {"ok": False, "error_code": 401, "description": "Unauthorized"})
        else:
            description = "Internal Server Error"
            if fake.echo_path:
                description += " at " + self.path  # a careless proxy: the token in the body
            self._answer(status, {"ok": False, "error_code": status, "description": description})


class FakeTelegram:
    """The fake server; a context manager serving on ``host:port`` (port 0 = any free)."""

    def __init__(self, token, record_path=None, host="127.0.0.1", port=0, fail_first=0,
                 fail_status=429, echo_path=False):
        self.token = token
        self.record_path = record_path
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.echo_path = echo_path
        self.requests = []
        self._lock = threading.Lock()
        self._failures_left = fail_first
        self._httpd = ThreadingHTTPServer((host, port), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.fake = self
        self._thread = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return "http://%s:%d" % (host, port)

    @property
    def messages(self) -> list:
        """sendMessage requests answered 200."""
        return [r for r in self.requests if r.get("status") == 200]

    def message_count(self) -> int:
        return len(self.messages)

    def next_status(self, token_ok) -> int:
        with self._lock:
            if not token_ok:
                return 401
            if self._failures_left > 0:
                self._failures_left -= 1
                return self.fail_status
            return 200

    def record(self, entry) -> None:
        with self._lock:
            self.requests.append(entry)
            if self.record_path:
                with open(self.record_path, "a", encoding="utf-8") as handle:
                    handle.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def serve_forever(self) -> None:
        self._httpd.serve_forever()

    def __enter__(self):
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self._httpd.shutdown()
        self._httpd.server_close()


@contextlib.contextmanager
def telegram_runtime(tmp_path, token, host_label="web1"):
    """A runbook-ops runtime (state under ``tmp_path``) whose alerts go to a ``FakeTelegram``
    for ``token``: yields ``(runtime, fake)``."""
    from ansible_collections.runbook.ops.plugins.module_utils._ops.runtime import merge_runtime

    (tmp_path / "token").write_text(token)
    with FakeTelegram(token) as fake:
        yield merge_runtime({
            "host_label": host_label, "state_dir": str(tmp_path / "state"),
            "alert": {"telegram_api_url": fake.url, "telegram_chat_id": "-1001",
                      "telegram_token_file": str(tmp_path / "token")}}), fake


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="fake Telegram Bot API for tests")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--expect-token-file", required=True,
                        help="file holding the token requests must carry")
    parser.add_argument("--record", required=True, help="append requests here as JSON lines")
    parser.add_argument("--fail-first", type=int, default=0,
                        help="answer the first N sendMessage requests with --fail-status")
    parser.add_argument("--fail-status", type=int, default=429, choices=(429, 500, 502, 503))
    parser.add_argument("--echo-path", action="store_true",
                        help="put the request path (with the token) in 5xx error bodies")
    args = parser.parse_args(argv)
    with open(args.expect_token_file, "r", encoding="utf-8") as handle:
        token = handle.read().strip()
    fake = FakeTelegram(token, record_path=args.record, host=args.host, port=args.port,
                        fail_first=args.fail_first, fail_status=args.fail_status,
                        echo_path=args.echo_path)
    fake.serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

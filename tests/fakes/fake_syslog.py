# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A fake syslog daemon for tests, stdlib only: a datagram socket at ``/dev/log``.

``logger``, glibc's ``syslog(3)`` and journald's clients write one datagram per message
to ``/dev/log`` (``<PRI>TIMESTAMP TAG[PID]: MESSAGE``); this receiver appends each as a
JSON line ``{"tag", "message", "raw"}`` to a record file, so a test can assert that a
line reached syslog. The test images have no syslog daemon; the clients are real.

Run it in a container: ``python3 fake_syslog.py --socket /dev/log --record FILE``; or
in-process: ``with FakeSyslog(path) as syslog: syslog.messages()``.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import threading

# <PRI>, then the local RFC 3164 header (Mmm dd hh:mm:ss, no host name), then TAG[PID]:
_HEADER = re.compile(r"^<\d+>(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d )?"
                     r"(?P<tag>[^:\[\s]+)(?:\[\d+\])?: ?(?P<message>.*)$", re.DOTALL)


def parse(raw: str) -> dict:
    """``{"tag", "message", "raw"}`` of one syslog datagram."""
    match = _HEADER.match(raw)
    if not match:
        return {"tag": "", "message": raw, "raw": raw}
    return {"tag": match.group("tag"), "message": match.group("message").rstrip("\n"),
            "raw": raw}


class FakeSyslog:
    """Receives datagrams on a Unix socket at ``path``; records them in memory and a file."""

    def __init__(self, path, record_path=None):
        self.path = str(path)
        self.record_path = record_path
        self.records = []
        self._lock = threading.Lock()
        if os.path.exists(self.path):
            os.unlink(self.path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        self._thread = None

    def messages(self, tag=None) -> list:
        with self._lock:
            return [r["message"] for r in self.records if tag is None or r["tag"] == tag]

    def serve_forever(self) -> None:
        while True:
            try:
                data = self.sock.recv(65536)
            except OSError:
                return
            entry = parse(data.decode("utf-8", "replace"))
            with self._lock:
                self.records.append(entry)
                if self.record_path:
                    with open(self.record_path, "a", encoding="utf-8") as handle:
                        handle.write(json.dumps(entry, ensure_ascii=False) + "\n")

    def __enter__(self):
        self._thread = threading.Thread(target=self.serve_forever, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info):
        self.sock.close()
        try:
            os.unlink(self.path)
        except OSError:
            pass


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--socket", default="/dev/log")
    parser.add_argument("--record", required=True)
    args = parser.parse_args(argv)
    FakeSyslog(args.socket, args.record).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

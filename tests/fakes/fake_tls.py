# Copyright (c) runbook.ops contributors
# GNU General Public License v3.0+ (see LICENSE or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A TLS server for certificate checks, stdlib only: accepts connections on 127.0.0.1 with
one certificate, counts them (a client that rejects the certificate ends the handshake
before the server sees it complete), and closes each after the handshake.

Run it in a container: ``python3 fake_tls.py --port 8443 --cert tls.pem --key tls.key``; or
in-process: ``server = FakeTLS(cert_file, key_file).start()``, ``server.port``, ``server.close()``.
"""

from __future__ import annotations

import argparse
import socket
import ssl
import threading


class FakeTLS:
    """Listens on 127.0.0.1:``port`` (0 = any free) once made; serves once started."""

    def __init__(self, cert_file, key_file, port=0):
        self.handshakes = 0
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(str(cert_file), str(key_file))
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", port))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]

    def serve_forever(self) -> None:
        """Accept until the socket is closed."""
        while True:
            try:
                conn, _addr = self.sock.accept()
            except OSError:
                return
            self.handshakes += 1
            conn.settimeout(5)
            try:
                with self.context.wrap_socket(conn, server_side=True) as tls:
                    tls.recv(1)
            except (OSError, ssl.SSLError):
                conn.close()

    def start(self):
        threading.Thread(target=self.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.sock.close()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description="TLS server for certificate checks in tests")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--cert", required=True)
    parser.add_argument("--key", required=True)
    args = parser.parse_args(argv)
    FakeTLS(args.cert, args.key, args.port).serve_forever()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

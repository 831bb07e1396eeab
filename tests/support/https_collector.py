"""A loopback HTTPS server that takes TLSRPT POSTs (RFC 8460 5.2) for the report tests.

`HttpsCollector(pki)` listens on 127.0.0.1 with a trustme certificate for that address,
keeps each POST's body in `posts` and answers `status[0]` (201 by default; a test changes it
to 503, 400, ...). `stop()` ends it.
"""

from __future__ import annotations

import http.server
import threading

from tests.support.tls import Pki


class _Answering(http.server.BaseHTTPRequestHandler):
    status: list[int]
    posts: list[tuple[str, str, bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.posts.append((self.path, self.headers["Content-Type"], body))
        self.send_response(self.status[0])
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        return


class HttpsCollector:
    def __init__(self, pki: Pki, status: int = 201) -> None:
        self.status: list[int] = [status]
        self.posts: list[tuple[str, str, bytes]] = []
        attributes = {"status": self.status, "posts": self.posts}
        handler = type("Handler", (_Answering,), attributes)
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.socket = pki.server_context(pki.leaf("127.0.0.1")).wrap_socket(
            self._server.socket, server_side=True
        )
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

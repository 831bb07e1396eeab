"""An HTTPS MTA-STS policy server for tests: stdlib http.server in a thread on 127.0.0.1.

`PolicyServer(context)` serves ``/.well-known/mta-sts.txt`` for each host name set in
`answers` (by the request's Host header): a `PolicyAnswer` says the status, the media
type, the body, extra headers, or that the server stalls (a slow policy host). It counts
the requests per host (`hits`). The TLS context comes from trustme (tests/support/tls.py
`Pki`) or a hand-made certificate (self-signed, expired, another name). `add_policy_host`
puts the ``_mta-sts`` TXT record and the A record of ``mta-sts.<domain>`` (127.0.0.1)
into a test zone, and `policy_text` writes a policy file.
"""

from __future__ import annotations

import contextlib
import ssl
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from dnslib import RR

from tests.support.dns import TlsZone


@dataclass
class PolicyAnswer:
    body: bytes = b""
    status: int = 200
    content_type: str = "text/plain"
    headers: dict[str, str] = field(default_factory=dict)
    stall: bool = False


def policy_text(mode: str, *mx: str, max_age: int = 86400) -> bytes:
    lines = ["version: STSv1", f"mode: {mode}", *(f"mx: {m}" for m in mx), f"max_age: {max_age}"]
    return ("\r\n".join(lines) + "\r\n").encode()


def add_policy_host(zone: TlsZone, domain: str, record_id: str = "20260101") -> None:
    zone.records.extend(
        RR.fromZone(
            f'_mta-sts.{domain}. 300 IN TXT "v=STSv1; id={record_id}"\n'
            f"mta-sts.{domain}. 300 IN A 127.0.0.1"
        )
    )


def set_record_id(zone: TlsZone, domain: str, record_id: str) -> None:
    with zone.lock:
        zone.records = [r for r in zone.records if str(r.rname) != f"_mta-sts.{domain}."]
        zone.records.extend(RR.fromZone(f'_mta-sts.{domain}. 300 IN TXT "v=STSv1; id={record_id}"'))


class PolicyServer:
    def __init__(self, context: ssl.SSLContext) -> None:
        self.answers: dict[str, PolicyAnswer] = {}
        self.hits: Counter[str] = Counter()
        self.release = threading.Event()  # lets stalled requests go at the end
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                host = (self.headers.get("Host") or "").lower()
                owner.hits[host] += 1
                answer = owner.answers.get(host)
                if answer is None or self.path != "/.well-known/mta-sts.txt":
                    self.send_error(404)
                    return
                if answer.stall:
                    owner.release.wait(30)
                    return
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = int(self.httpd.server_address[1])
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        with contextlib.suppress(OSError):
            self.httpd.server_close()
        self._thread.join(5)

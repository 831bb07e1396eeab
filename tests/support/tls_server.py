"""A scripted SMTP server with STARTTLS for the TLS tests, in a thread on loopback.

It records every byte it received in plaintext and over TLS, so tests can assert that no
envelope or content byte ever crossed the wire unencrypted. Behaviours real servers do not
produce on demand are switches: STARTTLS not announced, refused, a reply with injected
lines in the same segment, a broken handshake, implicit TLS (wrapper mode).
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from dataclasses import dataclass, field


@dataclass
class TlsServerScript:
    context: ssl.SSLContext | None = None
    offer_starttls: bool = True
    starttls_reply: bytes = b"220 2.0.0 Ready to start TLS\r\n"
    broken_handshake: bool = False
    implicit: bool = False


@dataclass
class Capture:
    plain: bytearray = field(default_factory=bytearray)
    secure: bytearray = field(default_factory=bytearray)
    messages: list[bytes] = field(default_factory=list)
    connections: int = 0
    tls_sessions: int = 0
    resumed: int = 0


class ScriptedTlsServer:
    def __init__(self, script: TlsServerScript) -> None:
        self.script = script
        self.capture = Capture()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = int(self.sock.getsockname()[1])
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._stop = False

    def start(self) -> ScriptedTlsServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop = True
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
        self._thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop:
            conn, _ = self.sock.accept()
            if self._stop:
                conn.close()
                return
            self.capture.connections += 1
            conn.settimeout(5)
            try:
                self._session(conn)
            except (OSError, ssl.SSLError, ValueError):
                pass
            finally:
                conn.close()

    def _wrap(self, conn: socket.socket) -> ssl.SSLSocket:
        assert self.script.context is not None
        tls = self.script.context.wrap_socket(conn, server_side=True)
        self.capture.tls_sessions += 1
        assert tls.session_reused is not None  # None only before the handshake
        self.capture.resumed += int(tls.session_reused)
        return tls

    def _session(self, raw: socket.socket) -> None:
        conn: socket.socket = self._wrap(raw) if self.script.implicit else raw
        secure = self.script.implicit
        conn.sendall(b"220 tls.test ESMTP scripted\r\n")
        reader = conn.makefile("rb")
        while True:
            line = reader.readline(4096)
            if not line:
                return
            (self.capture.secure if secure else self.capture.plain).extend(line)
            verb = line[:4].upper()
            if verb == b"EHLO":
                tls_kw = b"250-STARTTLS\r\n" if self.script.offer_starttls and not secure else b""
                conn.sendall(b"250-tls.test\r\n" + tls_kw + b"250 8BITMIME\r\n")
            elif verb == b"STAR" and not secure:
                conn.sendall(self.script.starttls_reply)
                if not self.script.starttls_reply.startswith(b"220"):
                    continue
                if self.script.broken_handshake:
                    conn.recv(4096)  # the ClientHello; answer it with garbage
                    conn.sendall(b"this is not a TLS server hello\r\n" * 4)
                    return
                conn = self._wrap(conn)
                reader = conn.makefile("rb")
                secure = True
            elif verb == b"DATA":
                conn.sendall(b"354 go ahead\r\n")
                body = bytearray()
                while (chunk := reader.readline(65536)) not in (b".\r\n", b""):
                    body.extend(chunk)
                (self.capture.secure if secure else self.capture.plain).extend(body)
                self.capture.messages.append(bytes(body))
                conn.sendall(b"250 2.0.0 Ok: queued as TLS1\r\n")
            elif verb == b"QUIT":
                conn.sendall(b"221 2.0.0 Bye\r\n")
                return
            elif verb in (b"MAIL", b"RCPT", b"RSET", b"NOOP", b"HELO"):
                conn.sendall(b"250 2.0.0 Ok\r\n")
            else:
                conn.sendall(b"502 5.5.2 Error: command not recognized\r\n")

"""Connections that are not sockets: both ends in one process, for tests and measurements.

`MemoryConnector` is a `Connector` (connector.py) whose connections are real `Connection`
objects over a `MemoryTransport`: what the client writes reaches a server object at once
(`MemoryServer.received`), and what the server says reaches the client on the next turn of
the event loop, as data from a socket would. Nothing touches the kernel, so delivery logic
can be checked byte for byte (h11's habit: tests/delivery/test_agent_memory.py) and its CPU
cost measured without noise (bench/harness.py).

Two servers come with it: `ScriptServer` plays exact steps (the bytes the client must send
next, in one write or several, and the bytes to answer), and `SmtpResponder` answers an
SMTP or LMTP conversation by rule (every command accepted), fast enough for benchmarks.
No TLS: STARTTLS needs sockets (tests/tls/).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from mailcarrier.errors import TransportError
from mailcarrier.stages import Stage
from mailcarrier.transport.connection import Connection, Peer

__all__ = [
    "MemoryConnector",
    "MemoryServer",
    "MemoryTransport",
    "ScriptServer",
    "SmtpResponder",
]


class MemoryServer(Protocol):
    """The server end of a memory connection."""

    def attach(self, send: Callable[[bytes], None], close: Callable[[], None]) -> None:
        """Called once: `send(data)` delivers bytes to the client, `close()` ends the
        connection from the server's side."""

    def received(self, data: bytes) -> None:
        """What the client wrote, one call per write."""

    def closed(self) -> None:
        """The client closed or aborted the connection."""


class MemoryTransport(asyncio.Transport):
    """The client's transport: writes go to the server at once, the server's bytes come back
    through the protocol's `data_received` on the next turn of the loop."""

    def __init__(
        self, loop: asyncio.AbstractEventLoop, protocol: Connection, server: MemoryServer
    ) -> None:
        super().__init__()
        self._loop = loop
        self._protocol = protocol
        self._server = server
        self._closing = False
        self._paused = False
        self._held: list[bytes] = []
        server.attach(self._from_server, self._server_closes)

    # --- from the server ----------------------------------------------------------------
    def _from_server(self, data: bytes) -> None:
        if not self._closing:
            self._loop.call_soon(self._deliver, data)

    def _deliver(self, data: bytes) -> None:
        if self._closing:
            return
        if self._paused:
            self._held.append(data)
        else:
            self._protocol.data_received(data)

    def _server_closes(self) -> None:
        self._loop.call_soon(self._end)

    def _end(self) -> None:
        if self._closing:
            return
        self._protocol.eof_received()
        self._closing = True
        self._protocol.connection_lost(None)

    # --- asyncio.Transport ------------------------------------------------------------
    def write(self, data: bytes | bytearray | memoryview) -> None:
        if self._closing:
            return
        self._server.received(bytes(data))

    def is_closing(self) -> bool:
        return self._closing

    def close(self) -> None:
        self.abort()

    def abort(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._server.closed()
        self._loop.call_soon(self._protocol.connection_lost, None)

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        self._paused = False
        held, self._held = self._held, []
        for data in held:
            self._protocol.data_received(data)

    def is_reading(self) -> bool:
        return not self._paused

    def can_write_eof(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class MemoryConnector:
    """Opens memory connections to whatever server `serve(peer)` makes for each peer;
    `peers` lists every peer a connection was opened to, in order. A peer for which
    `serve` returns None is refused, as a closed port would be."""

    def __init__(self, serve: Callable[[Peer], MemoryServer | None]) -> None:
        self._serve = serve
        self.peers: list[Peer] = []

    async def open(
        self,
        peer: Peer,
        *,
        timeout: float,
        bind_address: str = "",
        ssl_context: Any = None,
        server_hostname: str | None = None,
    ) -> Connection:
        self.peers.append(peer)
        server = self._serve(peer)
        if server is None:
            raise TransportError(
                f"connect to {peer.namaddr}:{peer.port}: Connection refused",
                stage=Stage.CONNECT,
                peer=peer.relay,
            )
        loop = asyncio.get_running_loop()
        conn = Connection(peer, loop)
        conn.connection_made(MemoryTransport(loop, conn, server))
        return conn


@dataclass
class ScriptServer:
    """Plays `steps`: bytes (what the server says) or `Expect` texts (what the client must
    send next). `writes` records each write the client made, to check how it batched;
    `failures` says where the client strayed (the connection is then closed)."""

    steps: list[bytes | Expect]
    writes: list[bytes] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    _buffer: bytes = b""
    _send: Callable[[bytes], None] | None = None
    _close: Callable[[], None] | None = None

    def attach(self, send: Callable[[bytes], None], close: Callable[[], None]) -> None:
        self._send, self._close = send, close
        self._play()

    def received(self, data: bytes) -> None:
        self.writes.append(data)
        self._buffer += data
        self._play()

    def closed(self) -> None:
        return None

    @property
    def done(self) -> bool:
        return not self.steps

    def _play(self) -> None:
        assert self._send is not None and self._close is not None
        while self.steps:
            step = self.steps[0]
            if isinstance(step, Expect):
                want = step.data
                if len(self._buffer) < len(want):
                    if not want.startswith(self._buffer):
                        self._stray(want)
                    return
                if not self._buffer.startswith(want):
                    self._stray(want)
                    return
                self._buffer = self._buffer[len(want) :]
            else:
                self._send(step)
            self.steps.pop(0)

    def _stray(self, want: bytes) -> None:
        assert self._close is not None
        self.failures.append(f"expected {want!r}, client sent {self._buffer!r}")
        self.steps.clear()
        self._close()


@dataclass(frozen=True)
class Expect:
    """What the client must send next (ScriptServer)."""

    data: bytes


class SmtpResponder:
    """An SMTP or LMTP server that accepts everything: a greeting, the EHLO/LHLO reply
    with `keywords`, 250 to MAIL, RCPT and RSET, 354 to DATA and 250 after the final dot (one
    per accepted recipient for LMTP), 221 to QUIT. Commands are answered as they arrive,
    each write's replies in one reply write; `messages` counts the messages taken."""

    def __init__(self, *, keywords: tuple[str, ...] = ("PIPELINING",), lmtp: bool = False):
        lines = ["mx.example", *keywords]
        self._hello = b"".join(
            f"250{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode()
            for i, line in enumerate(lines)
        )
        self._lmtp = lmtp
        self._send: Callable[[bytes], None] | None = None
        self._in_data = False
        self._rcpts = 0
        self._pending = b""
        self.messages = 0

    def attach(self, send: Callable[[bytes], None], close: Callable[[], None]) -> None:
        self._send = send
        send(b"220 mx.example ESMTP\r\n")

    def closed(self) -> None:
        return None

    def received(self, data: bytes) -> None:
        assert self._send is not None
        buffer = self._pending + data
        out: list[bytes] = []
        start = 0
        while True:
            end = buffer.find(b"\r\n.\r\n" if self._in_data else b"\r\n", start)
            if end < 0:
                break
            if self._in_data:
                self._in_data = False
                start = end + 5
                self.messages += 1
                out.append(b"250 2.0.0 Ok: queued\r\n" * (self._rcpts if self._lmtp else 1))
                self._rcpts = 0
                continue
            line = buffer[start:end]
            start = end + 2
            out.append(self._answer(line[:4].upper()))
        self._pending = buffer[start:]
        if out:
            self._send(b"".join(out))

    def _answer(self, verb: bytes) -> bytes:
        if verb in (b"EHLO", b"LHLO"):
            return self._hello
        if verb == b"RCPT":
            self._rcpts += 1
            return b"250 2.1.5 Ok\r\n"
        if verb == b"DATA":
            self._in_data = True
            return b"354 End data with <CR><LF>.<CR><LF>\r\n"
        if verb == b"QUIT":
            return b"221 2.0.0 Bye\r\n"
        if verb == b"MAIL":
            self._rcpts = 0
        return b"250 2.0.0 Ok\r\n"

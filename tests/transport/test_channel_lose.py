"""After a failed write or read, or content that could not be read mid-DATA, the protocol
object refuses all further work (h11's send_failed): the server may have seen any part of
what was sent, so no later command, QUIT included, may go out on that connection.

Both ends are in one process (transport/memory.py); the server records every write, so the
tests see that nothing follows the failure on the wire.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from mailcarrier.content.mime import ContentError
from mailcarrier.errors import LocalProtocolError
from mailcarrier.protocol.client import State
from mailcarrier.protocol.commands import Noop, RcptTo
from mailcarrier.transport.connection import Peer
from mailcarrier.transport.memory import MemoryConnector
from mailcarrier.transport.records import Envelope
from mailcarrier.transport.session import Session, SessionOptions

GREETING = b"220 mx.example ESMTP\r\n"
EHLO_REPLY = b"250-mx.example\r\n250 PIPELINING\r\n"
PEER = Peer("mx.example", "198.51.100.1", 25)
ENVELOPE = Envelope(sender="a@example.org", recipients=(RcptTo("b@example.net"),))


class ClosingServer:
    """Greets, answers EHLO, then answers the MAIL group with `answer` and closes the
    connection once it has seen `close_after` in what the client sent."""

    def __init__(self, answer: bytes, close_after: bytes) -> None:
        self.answer, self.close_after = answer, close_after
        self.writes: list[bytes] = []
        self._send: Callable[[bytes], None] | None = None
        self._close: Callable[[], None] | None = None

    def attach(self, send: Callable[[bytes], None], close: Callable[[], None]) -> None:
        self._send, self._close = send, close
        send(GREETING)

    def received(self, data: bytes) -> None:
        assert self._send is not None and self._close is not None
        self.writes.append(data)
        if data.startswith(b"EHLO"):
            self._send(EHLO_REPLY)
        elif data.startswith(b"MAIL"):
            self._send(self.answer)
        if self.close_after in data:
            self._close()

    def closed(self) -> None:
        return None


async def _session(server: ClosingServer) -> Session:
    conn = await MemoryConnector(lambda peer: server).open(PEER, timeout=5)
    session = Session(conn, SessionOptions(helo_name="client.example"))
    assert await session.start() is None
    return session


async def test_lost_connection_leaves_the_protocol_refusing_work() -> None:
    server = ClosingServer(b"250 Ok\r\n", close_after=b"MAIL FROM")
    session = await _session(server)
    result = await session.transaction(ENVELOPE, lambda: [b"Subject: x\r\n\r\nbody\r\n"])
    assert result.error is not None and "lost connection" in str(result.error)
    assert session.broken and session.proto.state is State.ERROR
    with pytest.raises(LocalProtocolError):
        session.channel.send(Noop())
    writes = len(server.writes)
    await session.quit()  # no QUIT on a lost connection
    assert len(server.writes) == writes


async def test_content_that_cannot_be_read_ends_the_session_without_the_dot() -> None:
    server = ClosingServer(b"250 Ok\r\n250 Ok\r\n354 go\r\n", close_after=b"\x00never")

    def content() -> Iterator[bytes]:
        yield b"Subject: x\r\n\r\n" + b"a" * 70_000 + b"\r\n"
        raise ContentError("5.6.5", "message content cannot be converted")

    session = await _session(server)
    result = await session.transaction(ENVELOPE, content)
    assert result.content_error is not None and result.error is None
    assert session.proto.state is State.ERROR
    await session.quit()
    sent = b"".join(server.writes)
    assert not sent.endswith(b"\r\n.\r\n") and b"QUIT" not in sent

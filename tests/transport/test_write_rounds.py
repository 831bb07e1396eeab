"""Write coalescing in `Connection`: small writes wait for the end of the event loop's round.

While rounds of callbacks have several writers, every connection's small writes of one round
reach their transports together, in order, in one write per connection; a single writer
writes at once; a large write goes out at once after what waits; `drain()` and `close()`
hand over what waits first and `abort()` discards it. The end-to-end effect (a pipelined
group in one server read) is checked on the wire in test_pipelining.py.
"""

from __future__ import annotations

import asyncio
import gc
import weakref

import pytest

from mailcarrier.errors import TransportError
from mailcarrier.protocol.stages import Stage
from mailcarrier.transport import connection as connection_module
from mailcarrier.transport.connection import COALESCE_LIMIT, Connection, Peer


class _Transport:
    """Records each write() as the socket would see it."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self.writes: list[bytes] = []
        self.closing = False
        self.events: list[str] = []

    def get_extra_info(self, name: str, default: object = None) -> object:
        return default

    def write(self, data: bytes) -> None:
        self.writes.append(data)
        self.events.append("write")

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.events.append("close")
        self.closing = True
        asyncio.get_running_loop().call_soon(self.conn.connection_lost, None)

    def abort(self) -> None:
        self.events.append("abort")
        self.closing = True
        asyncio.get_running_loop().call_soon(self.conn.connection_lost, None)

    def get_write_buffer_size(self) -> int:
        return 0


def _connected() -> tuple[Connection, _Transport]:
    conn = Connection(Peer("mx.example", "192.0.2.1", 25))
    transport = _Transport(conn)
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport


async def _busy() -> None:
    """A round with two writers: the next rounds coalesce."""
    a, _ = _connected()
    b, _ = _connected()
    a.write(b"NOOP\r\n", Stage.QUIT)
    b.write(b"NOOP\r\n", Stage.QUIT)
    await asyncio.sleep(0)


async def test_a_single_writer_writes_at_once_and_several_switch_coalescing_on() -> None:
    conn, transport = _connected()
    conn.write(b"EHLO client.example\r\n", Stage.HELO)
    assert transport.writes == [b"EHLO client.example\r\n"]  # alone: no wait
    await asyncio.sleep(0)
    await _busy()
    conn.write(b"RSET\r\n", Stage.RSET)
    assert len(transport.writes) == 1  # now it waits for the end of the round
    await asyncio.sleep(0)
    assert transport.writes[-1] == b"RSET\r\n"
    # That round had one writer: the next one writes at once again.
    conn.write(b"QUIT\r\n", Stage.QUIT)
    assert transport.writes[-1] == b"QUIT\r\n"


async def test_small_writes_of_a_round_go_out_together_in_order() -> None:
    await _busy()
    first, one = _connected()
    second, two = _connected()
    first.write(b"RSET\r\n", Stage.RSET)
    second.write(b"MAIL FROM:<a@example.org>\r\n", Stage.MAIL)
    first.write(b"MAIL FROM:<b@example.org>\r\n", Stage.MAIL)
    assert one.writes == [] and two.writes == []  # nothing before the round ends
    await asyncio.sleep(0)
    assert one.writes == [b"RSET\r\nMAIL FROM:<b@example.org>\r\n"]
    assert two.writes == [b"MAIL FROM:<a@example.org>\r\n"]
    first.write(b"DATA\r\n", Stage.DATA)  # the next round has its own write
    second.write(b"RCPT TO:<b@example.net>\r\n", Stage.RCPT)
    await asyncio.sleep(0)
    assert one.writes[-1] == b"DATA\r\n" and len(one.writes) == 2


async def test_a_large_write_goes_at_once_after_what_waits() -> None:
    await _busy()
    conn, transport = _connected()
    conn.write(b"small", Stage.BODY)
    big = b"x" * COALESCE_LIMIT
    conn.write(big, Stage.BODY)
    assert transport.writes == [b"small" + big]
    await asyncio.sleep(0)
    assert transport.writes == [b"small" + big]  # nothing left for the round's end


async def test_drain_and_flush_hand_over_what_waits() -> None:
    await _busy()
    conn, transport = _connected()
    conn.write(b"QUIT\r\n", Stage.QUIT)
    await conn.drain(5, Stage.QUIT)
    assert transport.writes == [b"QUIT\r\n"]
    conn.write(b"NOOP\r\n", Stage.QUIT)
    conn.flush()
    assert transport.writes == [b"QUIT\r\n", b"NOOP\r\n"]
    await asyncio.sleep(0)
    assert len(transport.writes) == 2


async def test_close_writes_what_waits_first_and_abort_discards_it() -> None:
    await _busy()
    conn, transport = _connected()
    conn.write(b"QUIT\r\n", Stage.QUIT)
    await conn.close()
    assert transport.events == ["write", "close"]
    assert transport.writes == [b"QUIT\r\n"]

    await _busy()
    conn, transport = _connected()
    conn.write(b"MAIL FROM:<a@example.org>\r\n", Stage.MAIL)
    conn.abort()
    await asyncio.sleep(0)
    assert transport.writes == []
    assert transport.events == ["abort"]


async def test_what_waits_for_a_connection_lost_meanwhile_is_dropped() -> None:
    await _busy()
    conn, transport = _connected()
    conn.write(b"MAIL FROM:<a@example.org>\r\n", Stage.MAIL)
    transport.closing = True
    conn.connection_lost(ConnectionResetError("reset"))
    await asyncio.sleep(0)
    assert transport.writes == []
    with pytest.raises(TransportError, match=r"lost connection with mx\.example"):
        conn.write(b"RCPT TO:<b@example.net>\r\n", Stage.RCPT)


def test_write_rounds_do_not_keep_an_event_loop_alive() -> None:
    loop = asyncio.new_event_loop()

    async def write_once() -> None:
        conn, transport = _connected()
        conn.write(b"NOOP\r\n", Stage.QUIT)
        await asyncio.sleep(0)
        assert transport.writes == [b"NOOP\r\n"]

    loop.run_until_complete(write_once())
    loop.close()
    gone = weakref.ref(loop)
    assert loop in connection_module._ROUNDS
    del loop
    gc.collect()
    assert gone() is None

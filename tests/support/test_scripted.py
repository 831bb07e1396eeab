"""The scripted server checks what it is meant to check (a test of the test tool)."""

from __future__ import annotations

import asyncio

from tests.support.scripted import Expect, ReadRest, ReadUntil, Send, SendForever, StartScripted


async def _client(port: int, *writes: bytes, read: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    for data in writes:
        writer.write(data)
        await writer.drain()
        await asyncio.sleep(0.05)
    writer.write_eof()
    got = await reader.read() if read else b""
    writer.close()
    return got


async def test_expect_catches_a_client_that_does_not_wait(scripted: StartScripted) -> None:
    server = await scripted([Expect(b"MAIL FROM:<>\r\n"), Send(b"250 Ok\r\n"), ReadRest()])
    await _client(server.port, b"MAIL FROM:<>\r\nRCPT TO:<a@b>\r\n")
    await server.wait_done()
    assert any("before the server replied" in f for f in server.failures)


async def test_expect_accepts_a_batch_expected_as_one(scripted: StartScripted) -> None:
    server = await scripted([Expect(b"A\r\nB\r\n"), Send(b"250 Ok\r\n"), ReadRest()])
    got = await _client(server.port, b"A\r\n", b"B\r\n")
    await server.wait_done()
    server.check()
    assert got == b"250 Ok\r\n"
    assert server.conn.reads[:2] == [b"A\r\n", b"B\r\n"]


async def test_read_until_finds_a_marker_split_across_reads(scripted: StartScripted) -> None:
    server = await scripted([ReadUntil(b"\r\n.\r\n"), Send(b"250 Ok\r\n"), ReadRest()])
    await _client(server.port, b"body\r\n", b".", b"\r", b"\nQUIT\r\n")
    await server.wait_done()
    server.check()
    assert server.conn.captured["content"] == b"body\r\n.\r\n"
    assert server.conn.captured["rest"] == b"QUIT\r\n"


async def test_send_forever_reports_a_client_that_never_stops_reading(
    scripted: StartScripted,
) -> None:
    server = await scripted([SendForever(b"250-x\r\n", limit=1024 * 1024)])
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    total = 0
    while chunk := await reader.read(65536):
        total += len(chunk)
    writer.close()
    await server.wait_done()
    assert total >= 1024 * 1024
    assert any("still reading" in f for f in server.failures)

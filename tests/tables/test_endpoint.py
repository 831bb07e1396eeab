"""endpoint.py: server names as auto_clnt(3) reads them, and the stream pool (reuse, a server
that closed the connection, idle and age limits, line limits, timeouts, errno texts)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from mailcarrier.tables.base import TableError
from mailcarrier.tables.endpoint import (
    Endpoint,
    EndpointError,
    StreamPool,
    parse_endpoint,
    shared_pool,
)
from tests.support.peers.aiosmtpd_server import free_port
from tests.support.tableservers import STALL, LineServer


@pytest.mark.parametrize(
    ("text", "transport", "endpoint"),
    [
        ("inet:127.0.0.1:11211", "", Endpoint("127.0.0.1:11211", host="127.0.0.1", port=11211)),
        ("inet:[::1]:11211", "", Endpoint("[::1]:11211", host="::1", port=11211)),
        ("inet:localhost:smtp", "", Endpoint("localhost:smtp", host="localhost", port=25)),
        ("unix:/run/sock", "", Endpoint("/run/sock", path="/run/sock")),
        ("local:private/x", "", Endpoint("private/x", path="private/x")),
        ("127.0.0.1:2000", "inet", Endpoint("127.0.0.1:2000", host="127.0.0.1", port=2000)),
        ("inet:h:1", "inet", Endpoint("h:1", host="h", port=1)),
    ],
)
def test_parse_endpoint(text: str, transport: str, endpoint: Endpoint) -> None:
    assert parse_endpoint(text, where="t", transport=transport) == endpoint


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nocolon", 'need service transport:endpoint instead of "nocolon"'),
        ("tcp:h:1", "invalid transport name: tcp in service: tcp:h:1"),
        ("inet:host", "missing service information: host"),
        ("inet::25", "missing host or service information: :25"),
        ("inet:[::1]", "missing service information: [::1]"),
        ("inet:h:nosuch-service", "unknown service: nosuch-service/tcp"),
    ],
)
def test_bad_endpoints(text: str, message: str) -> None:
    with pytest.raises(TableError) as caught:
        parse_endpoint(text, where="t")
    assert str(caught.value) == f"t: {message}"


@pytest.fixture
def echo() -> Iterator[LineServer]:
    srv = LineServer(lambda line: line).start()
    try:
        yield srv
    finally:
        srv.stop()


def pool_for(srv: LineServer, **options: float) -> StreamPool:
    return StreamPool(parse_endpoint(srv.endpoint, where="t"), timeout=2, **options)  # type: ignore[arg-type]


async def test_streams_are_reused(echo: LineServer) -> None:
    pool = pool_for(echo)
    for n in range(3):
        stream = await pool.acquire()
        await stream.send(b"ping %d\n" % n)
        assert await stream.read_line() == b"ping %d\n" % n
        pool.release(stream)
    assert echo.connections == 1
    assert pool.statistics() == {"idle": 1}
    pool.close()


async def test_a_stream_the_server_closed_is_not_reused(echo: LineServer) -> None:
    pool = pool_for(echo)
    stream = await pool.acquire()
    await stream.send(b"one\n")
    await stream.read_line()
    pool.release(stream)
    echo.drop_connections()
    for _ in range(100):  # until this loop has seen the end of file
        if stream.at_eof():
            break
        await asyncio.sleep(0.01)
    again = await pool.acquire()
    assert again is not stream
    await again.send(b"two\n")
    assert await again.read_line() == b"two\n"
    assert echo.connections == 2
    pool.close()


async def test_idle_streams_are_closed(echo: LineServer) -> None:
    pool = pool_for(echo, max_idle=0.05)
    stream = await pool.acquire()
    pool.release(stream)
    for _ in range(200):
        if not pool.idle:
            break
        await asyncio.sleep(0.01)
    assert pool.idle == []


async def test_old_streams_are_not_kept(echo: LineServer) -> None:
    pool = pool_for(echo, max_ttl=0.01)
    stream = await pool.acquire()
    await asyncio.sleep(0.05)
    pool.release(stream)
    assert pool.idle == []


async def test_line_limit(echo: LineServer) -> None:
    pool = StreamPool(parse_endpoint(echo.endpoint, where="t"), timeout=2, line_limit=10)
    stream = await pool.acquire()
    await stream.send(b"0123456789\n")
    assert await stream.read_line() == b"0123456789\n"
    await stream.send(b"0123456789A\n")
    with pytest.raises(EndpointError) as caught:
        await stream.read_line()
    assert caught.value.kind == "size"
    pool.discard(stream)


async def test_timeouts_and_refusals() -> None:
    srv = LineServer(lambda _: STALL).start()
    try:
        pool = StreamPool(parse_endpoint(srv.endpoint, where="t"), timeout=0.2)
        stream = await pool.acquire()
        await stream.send(b"hello\n")
        with pytest.raises(EndpointError) as caught:
            await stream.read_line()
        assert (caught.value.kind, caught.value.reason) == ("timeout", "Connection timed out")
        pool.discard(stream)
    finally:
        srv.stop()
    port = free_port()
    refused = StreamPool(parse_endpoint(f"inet:127.0.0.1:{port}", where="t"), timeout=1)
    with pytest.raises(EndpointError) as caught:
        await refused.acquire()
    assert str(caught.value) == f"connect to 127.0.0.1:{port}: Connection refused"
    assert caught.value.kind == "connect"


def test_shared_pools() -> None:
    endpoint = Endpoint("h:1", host="h", port=1)
    assert shared_pool("x", endpoint, timeout=1) is shared_pool("x", endpoint, timeout=1)
    assert shared_pool("x", endpoint, timeout=1) is not shared_pool("y", endpoint, timeout=1)
    assert shared_pool("x", endpoint, timeout=1) is not shared_pool("x", endpoint, timeout=2)

"""netcore.HostPool with a scripted connector: host order, failover, retry_interval, the
single-host rule, pooling, idle close and timeouts (no server needed)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TypeVar

import pytest

from mailcarrier.tables.base import TableLookupError
from mailcarrier.tables.netcore import Host, HostError, HostPool

T = TypeVar("T")


class FakeConn:
    def __init__(self, host: Host) -> None:
        self.host = host
        self.closed = False

    def quote(self, text: str) -> str:
        return text.replace("'", "''")

    async def close(self) -> None:
        self.closed = True


class FakeConnector:
    def __init__(
        self,
        down: set[str] | None = None,
        hang: set[str] | None = None,
        slow: set[str] | None = None,
    ) -> None:
        self.down = down or set()
        self.hang = hang or set()
        self.slow = slow or set()  # connecting takes 20 ms
        self.tries: list[str] = []
        self.made: list[FakeConn] = []

    async def connect(self, host: Host, timeout: float) -> FakeConn:
        self.tries.append(host.text)
        if host.text in self.hang:
            await asyncio.sleep(3600)
        if host.text in self.slow:
            await asyncio.sleep(0.02)
        if host.text in self.down:
            raise HostError(f"connect to test server {host.text}: refused")
        conn = FakeConn(host)
        self.made.append(conn)
        return conn


class InOrder:
    def choice(self, seq: Sequence[T]) -> T:
        return seq[0]


def pool(
    connector: FakeConnector, *hosts: Host, in_task: bool = False, **kw: float
) -> HostPool[FakeConn]:
    options: dict[str, float] = {"timeout": 5.0}
    options.update(kw)
    return HostPool(
        list(hosts),
        connector,
        where="test:/t.cf",
        rng=InOrder(),  # type: ignore[arg-type]
        in_task=in_task,
        **options,  # type: ignore[arg-type]
    )


async def who(conn: FakeConn) -> str:
    return conn.host.text


async def test_unix_hosts_first_and_failover() -> None:
    connector = FakeConnector(down={"unix:/a"})
    p = pool(connector, Host("tcp-b", 1), Host("unix:/a", 0))
    assert await p.run(who) == "tcp-b"
    assert connector.tries == ["unix:/a", "tcp-b"]
    assert p.take_warnings() == ["connect to test server unix:/a: refused"]
    assert await p.run(who) == "tcp-b"  # the active host, no new connection
    assert len(connector.made) == 1


async def test_every_host_down_then_skipped_for_retry_interval() -> None:
    connector = FakeConnector(down={"a", "b"})
    p = pool(connector, Host("a"), Host("b"), retry_interval=60)
    with pytest.raises(TableLookupError, match="lookup error: connect to test server b: refused"):
        await p.run(who)
    with pytest.raises(TableLookupError, match="no server available"):
        await p.run(who)
    assert connector.tries == ["a", "b"]


async def test_single_host_is_tried_twice() -> None:
    connector = FakeConnector(down={"lb"})
    p = pool(connector, Host("lb"))
    with pytest.raises(TableLookupError):
        await p.run(who)
    assert connector.tries == ["lb", "lb"]


@pytest.mark.parametrize("in_task", [False, True])
async def test_query_failure_downs_the_host_and_tries_the_next(in_task: bool) -> None:
    connector = FakeConnector()
    p = pool(connector, Host("a"), Host("b"), in_task=in_task)

    async def fails_on_a(conn: FakeConn) -> str:
        if conn.host.text == "a":
            raise HostError("query failed on a")
        return conn.host.text

    assert await p.run(fails_on_a) == "b"
    assert connector.made[0].closed
    assert p.take_warnings() == ["query failed on a"]


async def test_connect_timeout() -> None:
    connector = FakeConnector(hang={"slow"})
    p = pool(connector, Host("slow"), Host("ok"), timeout=0.05)
    assert await p.run(who) == "ok"
    assert p.take_warnings() == ["test:/t.cf: server did not answer within 0.05s"]


@pytest.mark.parametrize("in_task", [False, True])
async def test_operation_timeout_abandons_the_connection(in_task: bool) -> None:
    connector = FakeConnector()
    p = pool(connector, Host("a"), timeout=0.05, in_task=in_task)

    async def stuck(conn: FakeConn) -> str:
        await asyncio.sleep(3600)
        return "never"

    with pytest.raises(TableLookupError, match=r"did not answer within 0\.05s"):
        await p.run(stuck)
    await asyncio.sleep(0.01)
    assert connector.made and all(conn.closed for conn in connector.made)
    assert p.statistics() == {"open": 0, "idle": 0, "failed": 2}  # both entries of "a"


@pytest.mark.parametrize("in_task", [False, True])
async def test_a_cancelled_lookup_closes_its_connection(in_task: bool) -> None:
    """The asker gives up (its delivery was cancelled): the connection, in the middle of
    an operation, is closed and no longer counted; the next lookup opens a new one."""
    connector = FakeConnector()
    p = pool(connector, Host("a"), in_task=in_task)

    async def stuck(conn: FakeConn) -> str:
        await asyncio.sleep(3600)
        return "never"

    asking = asyncio.ensure_future(p.run(stuck))
    await asyncio.sleep(0.01)
    asking.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asking
    await asyncio.sleep(0.01)
    assert connector.made[0].closed
    assert p.statistics() == {"open": 0, "idle": 0, "failed": 0}
    assert await p.run(who) == "a"
    assert len(connector.made) == 2


async def test_in_task_answers_in_the_turn_the_reply_arrives() -> None:
    """With ``in_task`` the operation runs in the asking task: an answer set by a reader
    callback reaches the asker on the next loop turn, as a plain await of it would; the
    separate task of the default mode costs two more turns."""
    loop = asyncio.get_running_loop()

    async def turns(in_task: bool) -> int:
        p = pool(FakeConnector(), Host("a"), in_task=in_task)
        await p.run(who)  # the connection is open and idle
        reply: asyncio.Future[str] = loop.create_future()

        async def wait_reply(conn: FakeConn) -> str:
            return await reply

        count = 0
        asking = asyncio.ensure_future(p.run(wait_reply))
        await asyncio.sleep(0)
        await asyncio.sleep(0)  # the asker is parked on `reply`
        loop.call_soon(reply.set_result, "x")  # as a reader callback would
        while not asking.done():
            count += 1
            await asyncio.sleep(0)
        assert asking.result() == "x"
        return count

    assert await turns(True) < await turns(False)


async def test_idle_connections_are_closed() -> None:
    connector = FakeConnector()
    p = pool(connector, Host("a"), idle_interval=0.05)
    await p.run(who)
    assert p.statistics()["idle"] == 1
    await asyncio.sleep(0.15)
    assert p.statistics() == {"open": 0, "idle": 0, "failed": 0}
    assert connector.made[0].closed


async def test_concurrent_operations_get_their_own_connections() -> None:
    connector = FakeConnector()
    p = pool(connector, Host("a"), max_connections=2)

    async def slow(conn: FakeConn) -> str:
        await asyncio.sleep(0.02)
        return conn.host.text

    assert await asyncio.gather(*(p.run(slow) for _ in range(5))) == ["a"] * 5
    assert (
        len(connector.made) <= 4
    )  # at most max_connections per entry (a single host is listed twice)


async def test_lookups_wait_for_the_connection_being_opened() -> None:
    """A burst of lookups while the first connection is set up opens no other: they take
    turns on it (Postfix keeps one connection per host)."""
    connector = FakeConnector(slow={"a"})
    p = pool(connector, Host("a"), max_connections=8)
    assert await asyncio.gather(*(p.run(who) for _ in range(10))) == ["a"] * 10
    assert connector.tries == ["a"]
    assert p.statistics() == {"open": 1, "idle": 1, "failed": 0}


async def test_a_failed_connect_sends_its_waiters_to_the_next_host() -> None:
    connector = FakeConnector(down={"a"}, slow={"a"})
    p = pool(connector, Host("a"), Host("b"), max_connections=8)
    assert await asyncio.gather(*(p.run(who) for _ in range(3))) == ["b"] * 3
    assert connector.tries == ["a", "b"]
    assert p.take_warnings() == ["connect to test server a: refused"]

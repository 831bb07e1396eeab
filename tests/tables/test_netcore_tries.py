"""netcore.HostPool: one operation tries each host at most once, however long its failure
took (a retry_interval shorter than a connect timeout once made it try the same hosts again
and again, up to RETRY_CONN_MAX); with retry_interval 0 the next operation tries them all
again, as the LDAP table needs."""

from __future__ import annotations

import asyncio

import pytest

from mailcarrier.tables.base import TableLookupError
from mailcarrier.tables.netcore import Host, HostError, HostPool


class Conn:
    def quote(self, text: str) -> str:
        return text

    async def close(self) -> None:
        return None


class FailingConnector:
    def __init__(self, delay: float) -> None:
        self.delay = delay
        self.attempts: list[str] = []

    async def connect(self, host: Host, timeout: float) -> Conn:
        self.attempts.append(host.text)
        await asyncio.sleep(self.delay)
        raise HostError(f"connect to {host.text}: Connection refused")


async def test_each_host_once_per_operation() -> None:
    connector = FailingConnector(delay=0.02)
    pool: HostPool[Conn] = HostPool(
        [Host("a"), Host("b")], connector, where="t", retry_interval=0, timeout=5
    )

    async def op(conn: Conn) -> str:
        return "never"

    with pytest.raises(TableLookupError):
        await pool.run(op)
    assert sorted(connector.attempts) == ["a", "b"]
    assert pool.take_warnings() == [
        f"connect to {h}: Connection refused" for h in connector.attempts
    ]
    # retry_interval 0: the next operation tries both again.
    with pytest.raises(TableLookupError):
        await pool.run(op)
    assert len(connector.attempts) == 4


async def test_a_single_host_is_tried_twice() -> None:
    connector = FailingConnector(delay=0)
    pool: HostPool[Conn] = HostPool([Host("only")], connector, where="t", retry_interval=0)

    async def op(conn: Conn) -> str:
        return "never"

    with pytest.raises(TableLookupError):
        await pool.run(op)
    assert connector.attempts == ["only", "only"]

"""Connection reuse through the agent's cache: same destination, another destination on the
same server, expiry by age and by count, a server that closes a parked connection, and no
reuse after a 421."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from typing import Any

import pytest
from dnslib import RR
from dnslib.server import DNSLogger, DNSServer

from mailcarrier import DeliveryStatus, make_request
from mailcarrier.config import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.log import MemoryLog
from tests.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.routing.routing_dnsserver import ZoneResolver


class CountingHandler(RecordingHandler):
    """Counts sessions (EHLOs) and can hang up after a message."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions = 0
        self.hang_up_after_data = False
        self.closed = asyncio.Event()

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.sessions += 1
        return await super().handle_EHLO(server, session, envelope, hostname, responses)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        if self.hang_up_after_data:
            loop = asyncio.get_running_loop()
            transport = server.transport

            def hang_up() -> None:
                transport.close()
                loop.call_soon_threadsafe(self.closed.set)

            loop.call_later(0.01, hang_up)
        return reply


@pytest.fixture
def counting() -> Iterator[tuple[CountingHandler, AiosmtpdServer]]:
    handler = CountingHandler()
    server = AiosmtpdServer(handler).start()
    try:
        yield handler, server
    finally:
        server.stop()


class Clock:
    """Starts at the monotonic clock sessions use for their start time, then is advanced."""

    def __init__(self) -> None:
        self.now = time.monotonic()

    def __call__(self) -> float:
        return self.now


def _agent(cache: ConnectionCache, **overrides: str) -> tuple[DeliveryAgent, MemoryLog]:
    log = MemoryLog()
    return DeliveryAgent(Settings.defaults().with_overrides(overrides), log=log, cache=cache), log


async def _send(agent: DeliveryAgent, nexthop: str, rcpt: str = "u@example.net") -> Any:
    request = make_request(
        b"Subject: c\n\nhi\n", sender="s@example.org", recipients=[rcpt], nexthop=nexthop
    )
    (status,) = (await agent.deliver(request)).recipients
    assert status.status is DeliveryStatus.SENT, status
    return status


async def test_same_destination_reuses_the_session(
    counting: tuple[CountingHandler, AiosmtpdServer],
) -> None:
    handler, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, log = _agent(cache)
    uses = [(await _send(agent, server.nexthop)).conn_use for _ in range(3)]
    await cache.close_all()
    assert uses == [1, 2, 3]
    assert handler.sessions == 1
    assert len(server.messages) == 3
    assert ", conn_use=3, " in log.lines[-1]
    assert ", conn_use=" not in log.lines[0]  # Postfix shows conn_use only from 2 on


async def test_reuse_count_limit(counting: tuple[CountingHandler, AiosmtpdServer]) -> None:
    handler, server = counting
    cache = ConnectionCache(CacheLimits(reuse_count=2))
    agent, _ = _agent(cache)
    uses = [(await _send(agent, server.nexthop)).conn_use for _ in range(5)]
    await cache.close_all()
    assert uses == [1, 2, 1, 2, 1]
    assert handler.sessions == 3


async def test_reuse_time_limit(counting: tuple[CountingHandler, AiosmtpdServer]) -> None:
    handler, server = counting
    clock = Clock()
    cache = ConnectionCache(CacheLimits(reuse_time=300), clock=clock)
    agent, _ = _agent(cache)
    first = await _send(agent, server.nexthop)
    clock.now += 299
    second = await _send(agent, server.nexthop)
    clock.now += 2  # now 301 s after the session was opened: too old to reuse
    third = await _send(agent, server.nexthop)
    await cache.close_all()
    assert (first.conn_use, second.conn_use, third.conn_use) == (1, 2, 1)
    assert handler.sessions == 2


async def test_server_closing_a_parked_session_is_not_a_failure(
    counting: tuple[CountingHandler, AiosmtpdServer],
) -> None:
    handler, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, log = _agent(cache)
    handler.hang_up_after_data = True
    await _send(agent, server.nexthop)
    await asyncio.wait_for(handler.closed.wait(), 10)
    handler.hang_up_after_data = False
    status = await _send(agent, server.nexthop)
    await cache.close_all()
    assert status.conn_use == 1  # a new session, and no deferral on the way
    assert handler.sessions == 2
    assert not any("deferred" in line for line in log.lines)


async def test_no_reuse_after_421(counting: tuple[CountingHandler, AiosmtpdServer]) -> None:
    handler, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, _ = _agent(cache)
    handler.data_reply = "250 2.0.0 Ok"
    await _send(agent, server.nexthop)
    session_count = handler.sessions
    handler.reject = {"busy@": "421 4.3.2 closing"}
    request = make_request(
        b"x\n", sender="s@example.org", recipients=["busy@example.net"], nexthop=server.nexthop
    )
    (status,) = (await agent.deliver(request)).recipients
    assert status.status is DeliveryStatus.DEFERRED
    assert "421 4.3.2 closing" in status.diagnostic
    # The cached session got the 421 first; a fresh one was tried too. Neither is kept.
    assert handler.sessions == session_count + 1
    assert len(cache) == 0
    handler.reject = {}
    again = await _send(agent, server.nexthop)
    await cache.close_all()
    assert again.conn_use == 1
    assert handler.sessions == session_count + 2


async def test_cache_off_on_demand_no(counting: tuple[CountingHandler, AiosmtpdServer]) -> None:
    _, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, _ = _agent(cache, smtp_connection_cache_on_demand="no")
    uses = [(await _send(agent, server.nexthop)).conn_use for _ in range(2)]
    assert uses == [1, 1]
    assert len(cache) == 0
    listed, _ = _agent(
        cache,
        smtp_connection_cache_on_demand="no",
        smtp_connection_cache_destinations=server.nexthop,
    )
    uses = [(await _send(listed, server.nexthop)).conn_use for _ in range(2)]
    await cache.close_all()
    assert uses == [1, 2]


SHARED_ZONE = """
one.test.        300 IN MX 10 mx.shared.test.
two.test.        300 IN MX 10 mx.shared.test.
mx.shared.test.  300 IN A 127.0.0.1
"""


@pytest.fixture(scope="module")
def shared_dns() -> Iterator[int]:
    zone = ZoneResolver(records=RR.fromZone(SHARED_ZONE))
    logger = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
    dns = DNSServer(zone, port=0, address="127.0.0.1", logger=logger)
    dns.start_thread()
    try:
        yield int(dns.server.server_address[1])
    finally:
        dns.stop()
        dns.server.server_close()


async def test_another_destination_on_the_same_server_reuses_by_address(
    counting: tuple[CountingHandler, AiosmtpdServer], shared_dns: int
) -> None:
    handler, server = counting
    cache = ConnectionCache(CacheLimits())
    agent, _ = _agent(cache, dns_nameservers=f"127.0.0.1:{shared_dns}", inet_protocols="ipv4")
    first = await _send(agent, f"one.test:{server.port}", "a@one.test")
    second = await _send(agent, f"two.test:{server.port}", "b@two.test")
    await cache.close_all()
    assert (first.conn_use, second.conn_use) == (1, 2)
    assert second.relay == f"mx.shared.test[127.0.0.1]:{server.port}"
    assert handler.sessions == 1

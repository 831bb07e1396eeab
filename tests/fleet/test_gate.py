"""gate.py against a real private redis-server: leases taken, refused as Busy at the fleet
limit, released, renewed; rates; dead destinations; and Redis down: fail closed (Busy), one
warning per interval, fail_open per limit, and back by itself."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from mailcarrier.config.settings import Settings
from mailcarrier.events import Event
from mailcarrier.fleet.gate import (
    NO_LEASE,
    Busy,
    DeadDestination,
    LocalGate,
    make_gate,
)
from mailcarrier.log import MemoryLog
from tests.support.gates import GateMaker, redis_gates
from tests.support.peers.redis import RedisServer


class Lines:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def info(self, process: str, text: str) -> None:
        self.lines.append(f"{process}: {text}")

    def warning(self, process: str, text: str) -> None:
        self.lines.append(f"{process}: warning: {text}")

    def event(self, process: str, text: str, event: Event) -> None:
        if text:
            self.info(process, text)


@pytest.fixture
async def gates(redis_url: str, tmp_path: Path) -> AsyncIterator[GateMaker]:
    async with redis_gates(redis_url, tmp_path) as make:
        yield make


async def test_single_node_gate() -> None:
    gate = make_gate(Settings.defaults())
    assert isinstance(gate, LocalGate)
    assert await gate.lease("smtp", "example.com") is NO_LEASE
    assert await gate.admit("smtp", "example.com") is None


async def test_fleet_connection_limit(gates: GateMaker, redis_server: RedisServer) -> None:
    one = gates(fleet_destination_concurrency_limit="2")
    two = gates(fleet_destination_concurrency_limit="2")
    first = await one.lease("smtp", "example.com")
    second = await two.lease("smtp", "example.com")
    third = await two.lease("smtp", "example.com")
    assert not isinstance(first, Busy | DeadDestination)
    assert not isinstance(second, Busy | DeadDestination)
    assert third == Busy(1.0, "fleet connection limit 2")
    assert one.held() == {"smtp:example.com": 1}
    first.release()
    first.release()  # twice: nothing more
    assert one.held() == {}
    await asyncio.sleep(0.1)  # the release is on its way
    again = await two.lease("smtp", "example.com")
    assert not isinstance(again, Busy | DeadDestination)
    assert two.held() == {"smtp:example.com": 2}
    await two.renew_now()
    assert redis_server.command("ZRANGE", "mailcarrier:fleet:nodes", "0", "-1").split() == [
        "node1",
        "node2",
    ]


async def test_rate(gates: GateMaker) -> None:
    gate = gates(fleet_destination_rate_limit="2/1h", fleet_destination_rate_burst="2")
    assert await gate.admit("smtp", "example.com") is None
    assert await gate.admit("smtp", "example.com") is None
    busy = await gate.admit("smtp", "example.com")
    assert isinstance(busy, Busy) and 1700 < busy.retry_after <= 1800
    assert busy.reason == "fleet rate limit 2/3600s burst=2"


async def test_fast_rate_tokens_come_a_few_at_a_time(gates: GateMaker) -> None:
    gate = gates(fleet_destination_rate_limit="1000/1s", fleet_destination_rate_burst="100")
    calls: list[int] = []
    admit_many = gate.engine.admit_many

    async def counted(destination: str, interval: float, burst: int, wanted: int) -> Any:
        calls.append(wanted)
        return await admit_many(destination, interval, burst, wanted)

    gate.engine.admit_many = counted  # type: ignore[method-assign]
    for _ in range(40):
        assert await gate.admit("smtp", "fast.example") is None
    # 1000/s for 0.1 s: 100 a call at most, capped at 32; 40 messages, two calls.
    assert calls == [32, 32]
    slow = gates(fleet_destination_rate_limit="10/1s", fleet_destination_rate_burst="5")
    slow.engine.admit_many = counted  # type: ignore[method-assign]
    calls.clear()
    for _ in range(3):
        assert await slow.admit("smtp", "slow.example") is None
    assert calls == [1, 1, 1]  # one a call: a rate of 10/s gets no batches


async def test_concurrent_admits_share_one_call(gates: GateMaker) -> None:
    fast = gates(fleet_destination_rate_limit="1000/1s", fleet_destination_rate_burst="100")
    calls: list[int] = []
    admit_many = fast.engine.admit_many

    async def counted(destination: str, interval: float, burst: int, wanted: int) -> Any:
        calls.append(wanted)
        return await admit_many(destination, interval, burst, wanted)

    fast.engine.admit_many = counted  # type: ignore[method-assign]
    answers = await asyncio.gather(*(fast.admit("smtp", "fast.example") for _ in range(40)))
    assert answers == [None] * 40 and calls == [32, 32]
    # A refusal is everyone's: 5 at once under 2/1h burst 2, three calls in all.
    slow = gates(fleet_destination_rate_limit="2/1h", fleet_destination_rate_burst="2")
    slow.engine.admit_many = counted  # type: ignore[method-assign]
    calls.clear()
    answers = await asyncio.gather(*(slow.admit("smtp", "slow.example") for _ in range(5)))
    assert answers[:2] == [None, None] and calls == [1, 1, 1]
    assert all(isinstance(a, Busy) for a in answers[2:])


async def test_dead_destination_shared(gates: GateMaker) -> None:
    one, two = gates(), gates()
    one.mark_dead("smtp", "down.example", "connect to mx[192.0.2.1]:25: Connection timed out")
    await asyncio.sleep(0.1)
    assert await two.lease("smtp", "down.example") == DeadDestination(
        "connect to mx[192.0.2.1]:25: Connection timed out"
    )
    off = gates(fleet_dead_host_time="0")
    assert await off.lease("smtp", "down.example") is NO_LEASE  # no limit, nothing asked


async def test_redis_down_fails_closed_and_recovers(
    gates: GateMaker, redis_server: RedisServer
) -> None:
    log = Lines()
    gate = gates(log, fleet_destination_concurrency_limit="1", fleet_destination_rate_limit="9/1s")
    lease = await gate.lease("smtp", "a.example")
    assert not isinstance(lease, Busy | DeadDestination)
    redis_server.stop()
    try:
        for _ in range(3):
            assert await gate.lease("smtp", "b.example") == Busy(
                1.0, "shared state server unavailable"
            )
            assert await gate.admit("smtp", "b.example") == Busy(
                1.0, "shared state server unavailable"
            )
        lease.release()  # cannot reach Redis: the lease will expire there
    finally:
        redis_server.start()
    url = redis_server.url
    port = redis_server.port
    assert log.lines == [
        f"fleet: warning: shared_state_server {url}: connect to 127.0.0.1:{port}: "
        "Connection refused; destinations with fleet limits wait"
    ]
    assert not isinstance(await gate.lease("smtp", "b.example"), Busy | DeadDestination)
    assert log.lines[1:] == [f"fleet: shared_state_server {url}: answering again"]


async def test_fail_open(gates: GateMaker, redis_server: RedisServer) -> None:
    gate = gates(
        fleet_destination_concurrency_limit="1",
        fleet_destination_rate_limit="1/1h",
        fleet_concurrency_fail_open="yes",
        fleet_rate_fail_open="yes",
    )
    redis_server.stop()
    try:
        assert await gate.lease("smtp", "a.example") is NO_LEASE
        assert await gate.admit("smtp", "a.example") is None
        # A destination without fleet limits is never held back.
        strict = gates(fleet_dead_host_time="60s")
        assert await strict.lease("smtp", "a.example") is NO_LEASE
    finally:
        redis_server.start()


async def test_warning_once_per_interval(gates: GateMaker, redis_server: RedisServer) -> None:
    log = Lines()
    now = [0.0]
    gate = gates(log, fleet_destination_concurrency_limit="1", fleet_warning_interval="60s")
    gate.clock = lambda: now[0]
    redis_server.stop()
    try:
        for t in (0.0, 30.0, 59.0, 60.0, 61.0, 125.0):
            now[0] = t
            await gate.lease("smtp", "a.example")
    finally:
        redis_server.start()
    assert len(log.lines) == 3  # at 0, 60 and 125


async def test_only_the_caches_fleet_shared_caches_names_are_shared(
    redis_url: str,
) -> None:
    settings = Settings.defaults().with_overrides(
        {"shared_state_server": redis_url, "fleet_shared_caches": "mta-sts"}
    )
    gate = make_gate(settings, MemoryLog())
    try:
        assert gate.shared("mta-sts") is not None
        assert gate.shared("sasl-auth-failures") is None
    finally:
        await gate.close()


async def test_shared_entries_never_fail(gates: GateMaker, redis_server: RedisServer) -> None:
    one, two = gates(), gates()
    entries = one.shared("sasl-auth-failures")
    assert entries is not None
    await entries.put("[mx.example]:587 alice", "535 5.7.8 authentication failed", 60)
    seen = two.shared("sasl-auth-failures")
    assert seen is not None
    assert await seen.get("[mx.example]:587 alice") == "535 5.7.8 authentication failed"
    assert two.shared("other") is None  # not a cache fleet_shared_caches can name
    redis_server.stop()
    try:
        assert await entries.get("[mx.example]:587 alice") is None
        await entries.put("k", "v", 60)
        await entries.delete("k")
    finally:
        redis_server.start()
    await entries.delete("[mx.example]:587 alice")
    assert await entries.get("[mx.example]:587 alice") is None

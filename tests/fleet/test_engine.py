"""engine.py and scripts.py against a real private redis-server: leases counted, refused at
the limit, expiring by Redis time, renewed and put back; the GCRA; dead destinations; shared
cache entries; status; and the one-line errors when Redis is not there."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from mailcarrier.fleet.client import single_client
from mailcarrier.fleet.engine import Dead, FleetUnavailable, Full, RedisEngine, Taken
from tests.support.peers.aiosmtpd_server import free_port
from tests.support.peers.redis import RedisServer


@pytest.fixture
async def engine(redis_url: str) -> AsyncIterator[RedisEngine]:
    e = RedisEngine(single_client(redis_url), timeout=5, name=redis_url)
    yield e
    await e.close()


async def test_leases_up_to_the_limit(engine: RedisEngine, redis_server: RedisServer) -> None:
    assert await engine.acquire("smtp:example.com", "n1:1", 2, 30) == Taken(1)
    assert await engine.acquire("smtp:example.com", "n2:1", 2, 30) == Taken(2)
    full = await engine.acquire("smtp:example.com", "n3:1", 2, 30)
    assert isinstance(full, Full) and full.held == 2
    assert 29 < full.retry_after <= 30
    # Another destination is counted apart; limit 0 counts without limiting.
    assert await engine.acquire("smtp:other.example", "n3:1", 0, 30) == Taken(1)
    await engine.release("smtp:example.com", "n1:1")
    assert await engine.acquire("smtp:example.com", "n3:1", 2, 30) == Taken(2)
    key = "mailcarrier:fleet:{smtp:example.com}:leases"
    assert redis_server.command("ZRANGE", key, "0", "-1").split() == ["n2:1", "n3:1"]
    assert 0 < int(redis_server.command("PTTL", key)) <= 60000


async def test_leases_expire_by_redis_time(engine: RedisEngine) -> None:
    assert await engine.acquire("smtp:x", "dying:1", 1, 0.2) == Taken(1)
    assert isinstance(await engine.acquire("smtp:x", "other:1", 1, 30), Full)
    await asyncio.sleep(0.3)  # the dead node never renewed: its lease is gone
    assert await engine.acquire("smtp:x", "other:1", 1, 30) == Taken(1)


async def test_renew_keeps_and_puts_back(engine: RedisEngine, redis_server: RedisServer) -> None:
    assert await engine.acquire("smtp:x", "a:1", 2, 0.3) == Taken(1)
    for _ in range(3):
        await asyncio.sleep(0.15)
        assert await engine.renew("smtp:x", ["a:1"], 0.3) == 0
    assert isinstance(await engine.acquire("smtp:x", "b:1", 1, 30), Full)
    redis_server.command("FLUSHALL")  # Redis restarted empty: the open connection counts again
    assert await engine.renew("smtp:x", ["a:1"], 30) == 1
    assert isinstance(await engine.acquire("smtp:x", "b:1", 1, 30), Full)


async def test_gcra_burst_then_steady(engine: RedisEngine) -> None:
    interval = 0.2  # 5 per second
    admitted = [await engine.admit("smtp:r", interval, 3) for _ in range(4)]
    assert admitted[:3] == [None, None, None]
    wait = admitted[3]
    assert wait is not None and 0 < wait <= interval
    await asyncio.sleep(wait + 0.02)
    assert await engine.admit("smtp:r", interval, 3) is None
    again = await engine.admit("smtp:r", interval, 3)
    assert again is not None and 0.1 < again <= interval
    assert await engine.admit("smtp:unrelated", interval, 1) is None


async def test_gcra_many_at_once_is_as_many_calls_in_a_row(engine: RedisEngine) -> None:
    # One hour per message, burst 5: 3 now of the 4 asked leaves 2, then none.
    assert await engine.admit_many("smtp:m", 3600.0, 5, 3) == (3, 0.0)
    assert await engine.admit_many("smtp:m", 3600.0, 5, 4) == (2, 0.0)
    granted, wait = await engine.admit_many("smtp:m", 3600.0, 5, 4)
    assert granted == 0 and 3590 < wait <= 3600
    assert await engine.admit("smtp:m", 3600.0, 5) is not None


async def test_gcra_never_exceeds_burst_plus_rate(engine: RedisEngine) -> None:
    # 20 per second, burst 5, for 1.5 s of asking as fast as possible: every 1 s window holds
    # at most burst + count admissions (Redis time decides, the loop's only observes).
    loop = asyncio.get_running_loop()
    times: list[float] = []
    start = loop.time()
    while loop.time() - start < 1.5:
        if await engine.admit("smtp:w", 0.05, 5) is None:
            times.append(loop.time())
    assert len(times) >= 20
    for t in times:
        assert sum(1 for u in times if t <= u < t + 1.0) <= 5 + 20 + 1  # +1: clock skew


async def test_dead_destination_refuses_leases(engine: RedisEngine) -> None:
    await engine.mark_dead("smtp:down.example", "connect to mx[192.0.2.1]:25: timed out", 0.3)
    answer = await engine.acquire("smtp:down.example", "a:1", 5, 30)
    assert answer == Dead("connect to mx[192.0.2.1]:25: timed out")
    await asyncio.sleep(0.35)
    assert await engine.acquire("smtp:down.example", "a:1", 5, 30) == Taken(1)
    await engine.mark_dead("smtp:down.example", "x", 30)
    await engine.clear_dead("smtp:down.example")
    assert await engine.acquire("smtp:down.example", "a:2", 5, 30) == Taken(2)


async def test_shared_entries(engine: RedisEngine) -> None:
    assert await engine.shared_get("sasl-auth", "[mx]:587 user") is None
    await engine.shared_put("sasl-auth", "[mx]:587 user", "535 5.7.8 bad", 30)
    assert await engine.shared_get("sasl-auth", "[mx]:587 user") == "535 5.7.8 bad"
    await engine.shared_delete("sasl-auth", "[mx]:587 user")
    assert await engine.shared_get("sasl-auth", "[mx]:587 user") is None


async def test_status(engine: RedisEngine) -> None:
    await engine.acquire("smtp:a.example", "n1:1:1", 2, 30)
    await engine.acquire("smtp:a.example", "n2:1:1", 2, 30)
    await engine.admit("smtp:b.example", 10.0, 5)
    await engine.heartbeat("n1", ["smtp:a.example"])
    await engine.heartbeat("n2", ["smtp:a.example", "smtp:b.example"])
    status = await engine.status(60)
    assert sorted(name for name, _ in status.nodes) == ["n1", "n2"]
    assert all(0 <= age < 5 for _, age in status.nodes)
    rows = {d.destination: d for d in status.destinations}
    assert rows["smtp:a.example"].leases == 2
    assert rows["smtp:b.example"].leases == 0
    assert 9 < rows["smtp:b.example"].rate_backlog <= 10


async def test_unreachable_is_one_line() -> None:
    port = free_port()  # nothing listens there
    e = RedisEngine(single_client(f"redis://127.0.0.1:{port}"), timeout=2)
    with pytest.raises(FleetUnavailable) as raised:
        await e.acquire("smtp:x", "a:1", 1, 30)
    assert str(raised.value) == f"connect to 127.0.0.1:{port}: Connection refused"
    await e.close()


async def test_slow_is_unavailable(redis_server: RedisServer, redis_url: str) -> None:
    e = RedisEngine(single_client(redis_url), timeout=0.2)
    assert redis_server.proc is not None
    redis_server.proc.send_signal(19)  # SIGSTOP: connected, never answers
    try:
        with pytest.raises(FleetUnavailable, match=r"no answer within 0\.2s"):
            await e.acquire("smtp:x", "a:1", 1, 30)
    finally:
        redis_server.proc.send_signal(18)  # SIGCONT
    await e.close()

"""The connection cache: keys, age and use-count limits, idle expiry, dead sessions."""

from __future__ import annotations

import asyncio
from typing import Any

from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from tests.support.clock import FakeClock


class _Conn:
    def __init__(self) -> None:
        self.at_eof = False


class _FakeSession:
    def __init__(self, started: float = 0.0, transactions: int = 1) -> None:
        self.started = started
        self.transactions = transactions
        self.broken = False
        self.conn = _Conn()
        self.quit_calls = 0

    async def quit(self) -> None:
        self.quit_calls += 1


def _take(cache: ConnectionCache, key: str) -> object:
    """cache.take() as a plain object, to compare with the _FakeSession stand-ins parked."""
    return cache.take(key)


def _cache(**limits: Any) -> tuple[ConnectionCache, FakeClock]:
    clock = FakeClock(0.0)
    return ConnectionCache(CacheLimits(idle_time=0, **limits), clock=clock), clock


async def test_take_by_either_key_removes_from_both() -> None:
    cache, _ = _cache()
    s = _FakeSession()
    assert cache.park(s, ["dest:example.net", "addr:mx[192.0.2.1]:25"])  # type: ignore[arg-type]
    assert len(cache) == 1
    assert _take(cache, "addr:mx[192.0.2.1]:25") is s
    assert cache.take("dest:example.net") is None
    assert len(cache) == 0
    stats = cache.statistics()
    assert (stats.hits, stats.misses) == (1, 1)


async def test_reuse_time_limit() -> None:
    cache, clock = _cache(reuse_time=300)
    s = _FakeSession(started=0.0)
    cache.park(s, ["k"])  # type: ignore[arg-type]
    clock.now = 301
    assert cache.take("k") is None
    await asyncio.sleep(0)
    assert s.quit_calls == 1  # closed, not leaked
    assert not cache.park(_FakeSession(started=0.0), ["k"])  # type: ignore[arg-type]


async def test_reuse_count_limit() -> None:
    cache, _ = _cache(reuse_count=3)
    assert cache.park(_FakeSession(transactions=2), ["k"])  # type: ignore[arg-type]
    assert not cache.park(_FakeSession(transactions=3), ["k"])  # type: ignore[arg-type]


async def test_broken_and_dead_sessions_are_never_reused() -> None:
    cache, _ = _cache()
    broken = _FakeSession()
    broken.broken = True
    assert not cache.park(broken, ["k"])  # type: ignore[arg-type]
    dead = _FakeSession()
    cache.park(dead, ["k"])  # type: ignore[arg-type]
    dead.conn.at_eof = True  # the server closed it while it was parked
    assert cache.take("k") is None
    await asyncio.sleep(0)
    assert dead.quit_calls == 1


async def test_newest_first_and_keys_do_not_mix() -> None:
    cache, _ = _cache()
    a, b, other = _FakeSession(), _FakeSession(), _FakeSession()
    cache.park(a, ["k"])  # type: ignore[arg-type]
    cache.park(b, ["k"])  # type: ignore[arg-type]
    cache.park(other, ["tls=secure:k"])  # type: ignore[arg-type]
    assert _take(cache, "k") is b
    assert _take(cache, "k") is a
    assert cache.take("k") is None
    assert _take(cache, "tls=secure:k") is other


async def test_idle_sessions_are_closed() -> None:
    cache = ConnectionCache(CacheLimits(idle_time=0.01))
    s = _FakeSession()
    s.started = asyncio.get_running_loop().time()
    cache.park(s, ["k"])  # type: ignore[arg-type]
    for _ in range(500):  # wait for the event, not for a duration
        if s.quit_calls:
            break
        await asyncio.sleep(0.01)
    assert s.quit_calls == 1
    assert len(cache) == 0
    assert cache.statistics().expired == 1


async def test_close_all() -> None:
    cache, _ = _cache()
    sessions = [_FakeSession() for _ in range(3)]
    for n, s in enumerate(sessions):
        cache.park(s, [f"k{n}", "shared"])  # type: ignore[arg-type]
    await cache.close_all()
    assert [s.quit_calls for s in sessions] == [1, 1, 1]
    assert len(cache) == 0

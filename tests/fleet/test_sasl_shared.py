"""The SASL authentication-failure cache shared through the fleet's Redis (sasl/authcache.py
with fleet/shared.py): a 535 one node remembered spares another node the same refused login,
for the same password only and until smtp_sasl_auth_cache_time; a stale shared entry is
dropped; Redis away, each node keeps its own memory. One private redis-server."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.auth_step import SHARED_CACHE
from mailcarrier.fleet.gate import FleetGate, make_gate
from mailcarrier.fleet.shared import SharedEntries
from mailcarrier.log import MemoryLog
from mailcarrier.sasl.authcache import AuthFailureCache
from tests.support.peers.redis import RedisServer

Node = tuple[AuthFailureCache, SharedEntries]


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def nodes(redis_url: str) -> AsyncIterator[tuple[Callable[[str], Node], Clock]]:
    """`make(name)`: node `name`'s in-memory 535 cache (90 s) and its fleet's entries."""
    gates: list[FleetGate] = []
    clock = Clock()

    def make(name: str) -> Node:
        settings = Settings.defaults().with_overrides(
            {"shared_state_server": redis_url, "node_id": name, "fleet_timeout": "1s"}
        )
        gate = make_gate(settings, MemoryLog())
        gates.append(gate)
        shared = gate.shared(SHARED_CACHE)
        assert shared is not None
        return AuthFailureCache(90, clock=clock), shared

    yield make, clock
    for gate in gates:
        await gate.close()


async def test_a_refused_login_one_node_learned_spares_the_other(
    nodes: tuple[Callable[[str], Node], Clock],
) -> None:
    make, clock = nodes
    (one, one_shared), (two, two_shared) = make("one"), make("two")
    assert await two.find_async("mx.example", "ann", "secret", two_shared) is None
    await one.store_async(
        "MX.example", "ann", "secret", "5.7.8", "535 5.7.8 bad credentials", one_shared
    )
    found = await two.find_async("mx.example", "ann", "secret", two_shared)
    assert found is not None
    assert (found.dsn, found.text, found.stamp) == ("5.7.8", "535 5.7.8 bad credentials", clock.now)
    # Another user, or no fleet: nothing known.
    assert await two.find_async("mx.example", "bob", "secret", two_shared) is None
    assert await two.find_async("mx.example", "ann", "secret") is None


async def test_another_password_or_an_old_entry_is_not_the_fleets_either(
    nodes: tuple[Callable[[str], Node], Clock],
) -> None:
    make, clock = nodes
    (one, one_shared), (two, two_shared) = make("one"), make("two")
    await one.store_async("mx.example", "ann", "old", "5.7.8", "535 no", one_shared)
    # The password changed: the shared entry is dropped (as a local one is).
    assert await two.find_async("mx.example", "ann", "new", two_shared) is None
    assert await two_shared.get("mx.example;ann") is None
    await one.store_async("mx.example", "ann", "old", "5.7.8", "535 no", one_shared)
    clock.now += 91  # older than smtp_sasl_auth_cache_time
    assert await two.find_async("mx.example", "ann", "old", two_shared) is None
    assert await two_shared.get("mx.example;ann") is None


async def test_redis_away_each_node_keeps_its_own(
    nodes: tuple[Callable[[str], Node], Clock], redis_server: RedisServer
) -> None:
    make, _ = nodes
    (one, one_shared), (two, two_shared) = make("one"), make("two")
    redis_server.stop()  # the next test's redis_url starts it again
    await one.store_async("mx.example", "ann", "secret", "5.7.8", "535 no", one_shared)
    assert await one.find_async("mx.example", "ann", "secret", one_shared) is not None
    assert await two.find_async("mx.example", "ann", "secret", two_shared) is None

"""Fleet mode on a Redis Cluster (`shared_state_server` a list of start nodes): a private
cluster of three masters on loopback, made by the test with ``redis-cli --cluster create``.
Leases (the limit holding across two nodes, release, renewal), rates, dead destinations,
shared entries and ``fleet status`` work there: every script's keys share one hash slot
(the destination's hash tag), and destinations land on different masters."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from mailcarrier.fleet import scripts
from mailcarrier.fleet.gate import Busy, DeadDestination
from tests.support.gates import GateMaker, redis_gates
from tests.support.peers import redis as redis_peer


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis_peer.RedisClusterPeer]:
    if not redis_peer.cluster_available():
        pytest.skip("redis-server or redis-cli is not installed (Debian redis-server, redis-tools)")
    peer = redis_peer.RedisClusterPeer(Path(tmp_path_factory.mktemp("cluster"))).start()
    try:
        yield peer
    finally:
        peer.stop()


@pytest.fixture
async def gates(cluster: redis_peer.RedisClusterPeer, tmp_path: Path) -> AsyncIterator[GateMaker]:
    for server in cluster.servers:
        server.command("FLUSHALL")
    async with redis_gates(cluster.server_list, tmp_path) as make:
        yield make


# Destinations whose keys live on three different masters (their hash tags' slots).
DESTINATIONS = ("a.example", "b.example", "c.example", "d.example", "e.example")


def test_destinations_spread_over_the_masters(cluster: redis_peer.RedisClusterPeer) -> None:
    ports = {cluster.node_of(scripts.lease_key(f"smtp:{d}")).port for d in DESTINATIONS}
    assert len(ports) >= 2  # the test below crosses masters
    for d in DESTINATIONS:  # a script's keys: one slot
        lease, dead, rate = (
            scripts.lease_key(f"smtp:{d}"),
            scripts.dead_key(f"smtp:{d}"),
            scripts.rate_key(f"smtp:{d}"),
        )
        slots = {cluster.servers[0].command("CLUSTER", "KEYSLOT", k) for k in (lease, dead, rate)}
        assert len(slots) == 1


async def test_leases_hold_across_nodes_on_every_master(
    gates: GateMaker, cluster: redis_peer.RedisClusterPeer
) -> None:
    one = gates(fleet_destination_concurrency_limit="2")
    two = gates(fleet_destination_concurrency_limit="2")
    for destination in DESTINATIONS:
        first = await one.lease("smtp", destination)
        second = await two.lease("smtp", destination)
        assert not isinstance(first, Busy | DeadDestination)
        assert not isinstance(second, Busy | DeadDestination)
        assert await one.lease("smtp", destination) == Busy(1.0, "fleet connection limit 2")
        first.release()
        await asyncio.sleep(0.1)  # the release is on its way
        again = await one.lease("smtp", destination)
        assert not isinstance(again, Busy | DeadDestination)
    assert one.held() == two.held() == {f"smtp:{d}": 1 for d in DESTINATIONS}
    # Renewal: one call per destination, each on its own master.
    await one.renew_now()
    for destination in DESTINATIONS:
        key = scripts.lease_key(f"smtp:{destination}")
        held = cluster.node_of(key).command("ZCARD", key)
        assert held == "2"


async def test_rates_dead_hosts_shared_entries_and_status(gates: GateMaker) -> None:
    one = gates(fleet_destination_rate_limit="2/1h", fleet_destination_rate_burst="2")
    two = gates(fleet_destination_rate_limit="2/1h", fleet_destination_rate_burst="2")
    for destination in DESTINATIONS:
        assert await one.admit("smtp", destination) is None
        assert await two.admit("smtp", destination) is None
        busy = await one.admit("smtp", destination)
        assert isinstance(busy, Busy) and busy.reason == "fleet rate limit 2/3600s burst=2"
    one.mark_dead("smtp", "down.example", "connect to mx[192.0.2.1]:25: Connection timed out")
    await asyncio.sleep(0.1)
    assert await two.lease("smtp", "down.example") == DeadDestination(
        "connect to mx[192.0.2.1]:25: Connection timed out"
    )
    one_sts, two_sts = one.shared("mta-sts"), two.shared("mta-sts")
    assert one_sts is not None and two_sts is not None
    await one_sts.put("sts.test", "policy", 60)
    assert await two_sts.get("sts.test") == "policy"
    await one.renew_now()
    await two.renew_now()
    report = await one.engine.status(60)
    assert sorted(node for node, _ in report.nodes) == ["node1", "node2"]
    assert [d.destination for d in report.destinations] == sorted(
        [f"smtp:{d}" for d in DESTINATIONS] + ["smtp:down.example"]
    )

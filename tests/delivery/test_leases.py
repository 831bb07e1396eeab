"""Fleet leases through the delivery agent (delivery/leases.py, agent.py, reuse.py), with a
recording gate in place of Redis and real servers on loopback: a cached session reused for
another destination (same server, by address) moves its lease to that destination (or is
not used when that destination is at its fleet limit), and a happy-eyeballs race holds one
lease, for the connection kept."""

from __future__ import annotations

from typing import Any

import pytest

from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.fleet import Busy, DeadDestination, Lease
from mailcarrier.fleet.shared import SharedEntries
from mailcarrier.log import MemoryLog
from mailcarrier.status import DeliveryStatus
from tests.delivery import test_racing_delivery as racing
from tests.support.deliver import deliver_via
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.settings import make_settings

# The racing tests' fixtures: an IPv6 listener that never accepts, a dual-stack MX.
black_hole_v6 = racing.black_hole_v6
dual_dns = racing.dual_dns


class RecordingGate:
    """A FleetGate that counts the leases held per destination; `limits` makes some busy."""

    def __init__(self, **limits: int) -> None:
        self.limits = limits
        self.held: dict[str, int] = {}
        self.taken: list[str] = []

    async def lease(self, transport: str, nexthop: str) -> Lease | Busy | DeadDestination:
        destination = f"{transport}:{nexthop}"
        limit = self.limits.get(destination)
        if limit is not None and self.held.get(destination, 0) >= limit:
            return Busy(1.0, f"fleet connection limit {limit}")
        self.taken.append(destination)
        self.held[destination] = self.held.get(destination, 0) + 1
        return _Lease(self, destination)

    async def admit(self, transport: str, nexthop: str) -> Busy | None:
        return None

    def mark_dead(self, transport: str, nexthop: str, reason: str) -> None:
        pass

    def shared(self, cache: str) -> SharedEntries | None:
        return None

    def statistics(self) -> dict[str, int]:
        return {}

    async def close(self) -> None:
        pass

    def holding(self) -> dict[str, int]:
        return {d: n for d, n in self.held.items() if n}


class _Lease:
    def __init__(self, gate: RecordingGate, destination: str) -> None:
        self.gate, self.destination, self.released = gate, destination, False

    def release(self) -> None:
        assert not self.released, "a lease released twice"
        self.released = True
        self.gate.held[self.destination] -= 1


def _agent(gate: RecordingGate, cache: ConnectionCache | None, **over: str) -> DeliveryAgent:
    return DeliveryAgent(make_settings(over), log=MemoryLog(), cache=cache, fleet=gate)


async def _send(agent: DeliveryAgent, nexthop: str, rcpt: str) -> Any:
    return await deliver_via(agent, nexthop, b"Subject: c\n\nhi\n", recipients=[rcpt])


async def test_a_session_reused_for_another_destination_moves_its_lease(
    smtp_server: AiosmtpdServer, shared_dns: int
) -> None:
    gate, cache = RecordingGate(), ConnectionCache(CacheLimits())
    agent = _agent(gate, cache, dns_nameservers=f"127.0.0.1:{shared_dns}", inet_protocols="ipv4")
    one, two = f"smtp:one.test:{smtp_server.port}", f"smtp:two.test:{smtp_server.port}"
    first = await _send(agent, f"one.test:{smtp_server.port}", "a@one.test")
    assert gate.holding() == {one: 1} == agent.leases.statistics()
    second = await _send(agent, f"two.test:{smtp_server.port}", "b@two.test")
    assert [r.conn_use for r in (*first.recipients, *second.recipients)] == [1, 2]
    # One connection, now counted for the destination it serves; one's lease released.
    assert gate.holding() == {two: 1} == agent.leases.statistics()
    assert gate.taken == [one, two]
    await cache.close_all()
    assert gate.holding() == {} == agent.leases.statistics()


async def test_a_session_is_not_reused_for_a_destination_at_its_limit(
    smtp_server: AiosmtpdServer, shared_dns: int
) -> None:
    two = f"smtp:two.test:{smtp_server.port}"
    gate, cache = RecordingGate(**{two: 0}), ConnectionCache(CacheLimits())
    agent = _agent(gate, cache, dns_nameservers=f"127.0.0.1:{shared_dns}", inet_protocols="ipv4")
    await _send(agent, f"one.test:{smtp_server.port}", "a@one.test")
    result = await _send(agent, f"two.test:{smtp_server.port}", "b@two.test")
    # Busy: nothing marked, the queue tries again; the session stays one's, still cached.
    assert result.busy == 1.0 and result.recipients == ()
    assert gate.holding() == {f"smtp:one.test:{smtp_server.port}": 1}
    assert len(smtp_server.messages) == 1
    again = await _send(agent, f"one.test:{smtp_server.port}", "c@one.test")
    assert [r.conn_use for r in again.recipients] == [2]
    await cache.close_all()
    assert gate.holding() == {}


@pytest.mark.skipif(not racing._ipv6_loopback(), reason="no IPv6 loopback")
async def test_a_race_holds_one_lease_for_the_connection_kept(
    smtp_server: AiosmtpdServer, black_hole_v6: int, dual_dns: int
) -> None:
    gate, cache = RecordingGate(), ConnectionCache(CacheLimits())
    agent = _agent(
        gate,
        cache,
        dns_nameservers=f"127.0.0.1:{dual_dns}",
        inet_protocols="all",
        smtp_address_preference="ipv6",
        smtp_connect_timeout="3s",
        smtp_happy_eyeballs="yes",
        smtp_happy_eyeballs_delay="0.2s",
    )
    result = await _send(agent, f"race.test:{black_hole_v6}", "r@race.test")
    (status,) = result.recipients
    assert status.status is DeliveryStatus.SENT
    assert status.relay == f"mx.race.test[127.0.0.1]:{black_hole_v6}"  # IPv6 was tried first
    destination = f"smtp:race.test:{black_hole_v6}"
    assert gate.taken == [destination]  # two attempts, one lease
    assert gate.holding() == {destination: 1}  # the connection kept, cached
    await cache.close_all()
    assert gate.holding() == {}

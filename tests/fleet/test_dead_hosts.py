"""Dead hosts learned through delivery (delivery/agent.py with fleet/gate.py): two nodes'
delivery agents, one private redis-server, one server on loopback that accepts connections
and never greets. The first node waits out its greeting timeout and tells the fleet; the
second defers its mail at once ("delivery temporarily suspended"), without connecting."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.fleet.gate import make_gate
from mailcarrier.log import MemoryLog
from mailcarrier.status import DeliveryStatus
from tests.support.deliver import deliver_via


class SilentServer:
    """Accepts TCP connections on 127.0.0.1 and never says a word; counts them."""

    def __init__(self) -> None:
        self.connections = 0
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> SilentServer:
        async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            await reader.read()  # until the client gives up
            writer.close()

        self.server = await asyncio.start_server(hold, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()


Maker = Callable[[str], tuple[DeliveryAgent, MemoryLog]]


@pytest.fixture
async def agents(redis_url: str, tmp_path: Path) -> AsyncIterator[Maker]:
    made: list[DeliveryAgent] = []

    def make(name: str) -> tuple[DeliveryAgent, MemoryLog]:
        settings = Settings.defaults().with_overrides(
            {
                "shared_state_server": redis_url,
                "data_directory": str(tmp_path / name),
                "node_id": name,
                "smtp_helo_timeout": "1s",
                "fleet_dead_host_time": "60s",
            }
        )
        log = MemoryLog()
        agent = DeliveryAgent(settings, log=log, fleet=make_gate(settings, log))
        made.append(agent)
        return agent, log

    yield make
    for agent in made:
        await agent.fleet.close()


async def test_one_node_finding_a_host_dead_spares_the_other_its_timeout(
    agents: Maker,
) -> None:
    silent = await SilentServer().start()
    try:
        one, _ = agents("one")
        two, two_log = agents("two")
        nexthop = f"[127.0.0.1]:{silent.port}"
        first = await deliver_via(one, nexthop, b"Subject: a\n\nx\n", recipients=["a@x.test"])
        (status,) = first.recipients
        assert status.status is DeliveryStatus.DEFERRED
        reason = (
            "conversation with 127.0.0.1[127.0.0.1] timed out while receiving the initial "
            "server greeting"
        )
        assert status.diagnostic == reason
        assert silent.connections == 1
        await asyncio.sleep(0.2)  # the first node's word on its way to Redis
        started = time.monotonic()
        second = await deliver_via(two, nexthop, b"Subject: b\n\nx\n", recipients=["b@x.test"])
        assert time.monotonic() - started < 60  # a ceiling, not a speed
        (status,) = second.recipients
        assert (status.status, status.dsn, status.relay) == (
            DeliveryStatus.DEFERRED,
            "4.4.1",
            "none",
        )
        assert status.diagnostic == f"delivery temporarily suspended: {reason}"
        assert silent.connections == 1  # the second node never connected
        assert second.hop_status is not None  # the queue's negative feedback, as for its own
        assert two_log.lines[-1].endswith(
            f", dsn=4.4.1, status=deferred (delivery temporarily suspended: {reason})"
        )
    finally:
        await silent.stop()

"""The MTA-STS policy cache shared through the fleet's Redis (delivery/sts_cache.py with
fleet/shared.py): two delivery agents, each with its own data_directory, one private
redis-server. A policy one agent fetched spares the other the fetch (and lands in the other's
file cache too); a new TXT id is fetched once for both; a policy suspected after a failure is
fetched again; Redis away, each agent falls back on its files and fetches what it lacks."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.sts_cache import StsPolicies
from mailcarrier.fleet.gate import make_gate
from mailcarrier.log import MemoryLog
from tests.delivery.test_sts_cache import SETTINGS, Clock, Fetcher, TxtResolver
from tests.support.peers.redis import RedisServer

AgentMaker = Callable[[str], tuple[StsPolicies, Fetcher]]


@pytest.fixture
async def agents(redis_url: str, tmp_path: Path) -> AsyncIterator[AgentMaker]:
    """`make(name)`: the MTA-STS policies of a fresh agent of node `name` (its own
    data_directory, kept across calls: a restart), and the fetcher that counts its fetches."""
    made: list[DeliveryAgent] = []
    clock = Clock()

    def make(name: str) -> tuple[StsPolicies, Fetcher]:
        settings = Settings.defaults().with_overrides(
            {
                "shared_state_server": redis_url,
                "data_directory": str(tmp_path / name),
                "node_id": name,
                "smtp_mta_sts_enable": "yes",
                "fleet_timeout": "1s",
            }
        )
        log = MemoryLog()
        agent = DeliveryAgent(settings, log=log, wallclock=clock, fleet=make_gate(settings, log))
        made.append(agent)
        assert agent.sts is not None and agent.sts.shared is not None
        fetcher = Fetcher()
        agent.sts.fetcher = fetcher
        return agent.sts, fetcher

    yield make
    for agent in made:
        await agent.fleet.close()


async def test_a_policy_one_node_fetched_spares_the_other(
    agents: AgentMaker, tmp_path: Path
) -> None:
    one, one_fetches = agents("one")
    two, two_fetches = agents("two")
    first = await one.policy_for("sts.test", TxtResolver("1"), SETTINGS)
    assert first is not None and one_fetches.calls == 1
    second = await two.policy_for("sts.test", TxtResolver("1"), SETTINGS)
    assert second == first
    assert (two_fetches.calls, two.adopted) == (0, 1)
    # The adopted policy is in the second node's own file cache: it survives a restart.
    stored = (tmp_path / "two" / "mta-sts" / "sts.test.json").read_text()
    assert stored == (tmp_path / "one" / "mta-sts" / "sts.test.json").read_text()
    # A new policy id: the first node to see it fetches, the other takes it from the fleet.
    newer = await two.policy_for("sts.test", TxtResolver("2"), SETTINGS)
    assert newer is not None and newer.id == "2" and two_fetches.calls == 1
    assert await one.policy_for("sts.test", TxtResolver("2"), SETTINGS) == newer
    assert (one_fetches.calls, one.adopted) == (1, 1)
    # A delivery failed under the policy: that node asks the policy host itself.
    one.suspect("sts.test")
    assert await one.policy_for("sts.test", TxtResolver("2"), SETTINGS) is not None
    assert one_fetches.calls == 2


async def test_without_redis_each_node_keeps_its_files(
    agents: AgentMaker, redis_server: RedisServer
) -> None:
    one, _ = agents("one")
    assert await one.policy_for("sts.test", TxtResolver("1"), SETTINGS) is not None
    redis_server.stop()
    try:
        # The same node restarted: its file cache answers, nothing fetched.
        again, again_fetches = agents("one")
        found = await again.policy_for("sts.test", TxtResolver("1"), SETTINGS)
        assert found is not None and found.mode == "enforce" and again_fetches.calls == 0
        # A node that never had it fetches it, as without a fleet; nothing fails.
        other, other_fetches = agents("two")
        assert await other.policy_for("sts.test", TxtResolver("1"), SETTINGS) is not None
        assert (other_fetches.calls, other.adopted) == (1, 0)
    finally:
        redis_server.start()


async def test_a_malformed_fleet_entry_is_one_warning(
    agents: AgentMaker, redis_server: RedisServer
) -> None:
    redis_server.command("SET", "mailcarrier:fleet:shared:mta-sts:{sts.test}", "{not json")
    one, fetches = agents("one")
    found = await one.policy_for("sts.test", TxtResolver("1"), SETTINGS)
    assert found is not None and fetches.calls == 1
    assert isinstance(one.log, MemoryLog)
    (warning,) = one.log.lines
    assert warning.startswith("warning: MTA-STS entry of sts.test in the fleet ignored: ")
    # The fetched policy replaced it for the others.
    stored = redis_server.command("GET", "mailcarrier:fleet:shared:mta-sts:{sts.test}")
    assert '"mode": "enforce"' in stored

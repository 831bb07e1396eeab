"""`redis_gates(server, data_directory)`: fleet gates on a shared Redis for a test, each with a
node id of its own (node1, node2, ...), all closed when the test ends. Used by the gate tests
against one redis-server (tests/fleet/test_gate.py) and against a cluster (test_cluster.py)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from pathlib import Path

from mailcarrier.config.settings import Settings
from mailcarrier.fleet.gate import RedisGate, make_gate
from mailcarrier.log import LogSink

__all__ = ["GateMaker", "redis_gates"]

# make(log=None, **main_cf_parameters) -> a new RedisGate
GateMaker = Callable[..., RedisGate]


@contextlib.asynccontextmanager
async def redis_gates(server: str, data_directory: Path) -> AsyncIterator[GateMaker]:
    made: list[RedisGate] = []

    def make(log: LogSink | None = None, **params: str) -> RedisGate:
        overrides = {
            "shared_state_server": server,
            "data_directory": str(data_directory),
            "node_id": f"node{len(made) + 1}",
            **params,
        }
        gate = make_gate(Settings.defaults().with_overrides(overrides), log)
        assert isinstance(gate, RedisGate)
        made.append(gate)
        return gate

    try:
        yield make
    finally:
        for gate in made:
            await gate.close()

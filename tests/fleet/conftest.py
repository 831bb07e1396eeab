"""Fixtures of the fleet tests: a private redis-server per test module (tests/support/peers/
redis.py), skipped with a reason when Debian's redis-server is not installed, and emptied
(FLUSHALL) before each test that asks for `redis_url`."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.peers import redis as redis_peer


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[redis_peer.RedisServer]:
    if not redis_peer.available():
        pytest.skip("redis-server is not installed (Debian redis-server; make peers as root)")
    server = redis_peer.RedisServer(Path(tmp_path_factory.mktemp("redis"))).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_url(redis_server: redis_peer.RedisServer) -> str:
    if redis_server.proc is None:  # a test before stopped it
        redis_server.start()
    redis_server.command("FLUSHALL")
    return redis_server.url

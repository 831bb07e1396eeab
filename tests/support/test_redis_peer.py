"""The private redis-server of the fleet tests: starts on a free loopback port with its own
directory, answers the redis client's asyncio API (with a password when set), writes nothing
to disk, stops, and starts again on the same port."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis.asyncio

from tests.support.peers import redis as redis_peer

pytestmark = pytest.mark.skipif(
    not redis_peer.available(), reason="redis-server is not installed (Debian redis-server)"
)


async def test_start_talk_stop_restart(tmp_path: Path) -> None:
    server = redis_peer.RedisServer(tmp_path / "r", password="s3cret").start()
    try:
        client = redis.asyncio.Redis.from_url(server.url, password="s3cret")
        assert await client.set("k", "v") is True
        assert await client.get("k") == b"v"
        await client.aclose()
        assert server.command("GET", "k") == "v"
        port = server.port
        server.restart()
        assert server.port == port
        assert server.command("GET", "k") == ""  # nothing persisted
        assert not list((tmp_path / "r").glob("*.rdb"))
    finally:
        server.stop()
        server.stop()
    assert server.proc is None

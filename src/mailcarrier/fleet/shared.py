"""Shared cache entries: a cache of one node that the whole fleet reads and fills.

`SharedEntries` is the interface a node-local cache uses to share its entries through the
fleet's Redis (the SASL authentication-failure cache first: its owner, sasl/authcache.py,
decides keys, values and lifetimes; this module only stores text under a key for a time).
`RedisSharedEntries(engine, cache)` keeps them under ``mailcarrier:fleet:shared:<cache>:``;
it never fails its caller: Redis away means "nothing known" for `get` and nothing stored for
`put` (the local cache still works). A `RedisGate` hands them out (`gate.shared(name)`);
without a fleet there are none. Neighbours: engine.py (the commands), gate.py.
"""

from __future__ import annotations

from typing import Protocol

from mailcarrier.fleet.engine import FleetUnavailable, RedisEngine

__all__ = ["RedisSharedEntries", "SharedEntries"]


class SharedEntries(Protocol):
    async def get(self, key: str) -> str | None: ...
    async def put(self, key: str, value: str, ttl: float) -> None: ...
    async def delete(self, key: str) -> None: ...


class RedisSharedEntries:
    def __init__(self, engine: RedisEngine, cache: str) -> None:
        self.engine = engine
        self.cache = cache

    async def get(self, key: str) -> str | None:
        try:
            return await self.engine.shared_get(self.cache, key)
        except FleetUnavailable:
            return None

    async def put(self, key: str, value: str, ttl: float) -> None:
        try:
            await self.engine.shared_put(self.cache, key, value, ttl)
        except FleetUnavailable:
            return

    async def delete(self, key: str) -> None:
        try:
            await self.engine.shared_delete(self.cache, key)
        except FleetUnavailable:
            return

"""The Redis side of fleet mode: one object that runs the scripts and the plain commands.

`RedisEngine(client)` wraps a redis client (redis.asyncio: one server, or a Redis Cluster:
client.py makes it) and gives typed answers: `acquire()` a connection lease (`Taken`, `Full`
or `Dead`), `renew()` and `release()` leases, `admit()` a message under a rate, `mark_dead()`
a destination, `heartbeat()` of a node, `shared_get()`/`shared_put()` of shared cache
entries, and `status()` for ``mailcarrier fleet status``. Every call has a time limit; any
trouble (refused, reset, timed out, a Redis error) is raised as `FleetUnavailable` with one
line saying what happened. What to do then (fail closed or open, how often to warn) is
gate.py's. The scripts and key names are scripts.py's.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, TypeVar

from mailcarrier.errors import MailcarrierError
from mailcarrier.fleet import scripts

if TYPE_CHECKING:
    from redis.commands.core import AsyncScript

__all__ = ["Dead", "FleetUnavailable", "Full", "RedisEngine", "Taken"]

T = TypeVar("T")
_SHARED: Final = scripts.PREFIX + "shared:"


class FleetUnavailable(MailcarrierError):
    """Redis could not answer (down, unreachable, too slow, or refused the command)."""


@dataclass(frozen=True, slots=True)
class Taken:
    held: int  # leases of the destination now, this one included


@dataclass(frozen=True, slots=True)
class Full:
    held: int
    retry_after: float  # seconds until the first lease expires (if never released)


@dataclass(frozen=True, slots=True)
class Dead:
    reason: str  # a node found the destination not responding


@dataclass(frozen=True, slots=True)
class DestinationStatus:
    destination: str
    leases: int
    rate_backlog: float  # messages spent ahead of the steady rate (burst used)


@dataclass(frozen=True, slots=True)
class FleetStatus:
    nodes: tuple[tuple[str, float], ...]  # node id, seconds since last seen
    destinations: tuple[DestinationStatus, ...]


class RedisEngine:
    def __init__(self, client: Any, *, timeout: float = 2.0, name: str = "") -> None:
        self.client = client
        self.timeout = timeout
        self.name = name  # the server as configured, for messages
        self._acquire: AsyncScript = client.register_script(scripts.ACQUIRE)
        self._renew: AsyncScript = client.register_script(scripts.RENEW)
        self._gcra: AsyncScript = client.register_script(scripts.GCRA)

    async def _call(self, what: Callable[[], Awaitable[T]]) -> T:
        try:
            async with asyncio.timeout(self.timeout or None):
                return await what()
        except TimeoutError:
            raise FleetUnavailable(f"no answer within {self.timeout:g}s") from None
        except (_redis_error(), OSError) as exc:
            raise FleetUnavailable(_describe(exc)) from exc

    async def acquire(
        self, destination: str, lease_id: str, limit: int, lease_time: float
    ) -> Taken | Full | Dead:
        keys = [scripts.lease_key(destination), scripts.dead_key(destination)]
        args: list[str | int] = [lease_id, limit, round(lease_time * 1000)]
        answer = await self._call(lambda: self._acquire(keys=keys, args=args))
        if answer[0] == 1:
            return Taken(int(answer[1]))
        if answer[0] == 2:
            return Dead(_text(answer[1]))
        return Full(int(answer[1]), max(0.0, int(answer[2]) / 1000))

    async def renew(self, destination: str, lease_ids: Iterable[str], lease_time: float) -> int:
        """Renew this node's leases of `destination`; how many had to be put back."""
        args: list[str | int] = [round(lease_time * 1000), *lease_ids]
        keys = [scripts.lease_key(destination)]
        return int(await self._call(lambda: self._renew(keys=keys, args=args)))

    async def release(self, destination: str, lease_id: str) -> None:
        await self._call(lambda: self.client.zrem(scripts.lease_key(destination), lease_id))

    async def admit(self, destination: str, interval: float, burst: int) -> float | None:
        """None: the message may go; else seconds until it may."""
        granted, wait = await self.admit_many(destination, interval, burst, 1)
        return None if granted else wait

    async def admit_many(
        self, destination: str, interval: float, burst: int, wanted: int
    ) -> tuple[int, float]:
        """Up to `wanted` messages at once, in one call: (how many may go now, 0), or
        (0, seconds until one may)."""
        keys = [scripts.rate_key(destination)]
        args: list[str | int] = [repr(interval * 1000), burst, max(1, wanted)]
        answer = await self._call(lambda: self._gcra(keys=keys, args=args))
        if answer[0] == 1:
            return int(_text(answer[1])), 0.0
        return 0, float(_text(answer[1])) / 1000

    async def mark_dead(self, destination: str, reason: str, ttl: float) -> None:
        key = scripts.dead_key(destination)
        await self._call(lambda: self.client.set(key, reason, px=max(1, round(ttl * 1000))))

    async def clear_dead(self, destination: str) -> None:
        await self._call(lambda: self.client.delete(scripts.dead_key(destination)))

    async def heartbeat(self, node_id: str, destinations: Iterable[str]) -> None:
        """This node is alive; these destinations were used (for `status`)."""
        now = await self._server_ms()
        used = {d: now for d in destinations}
        await self._call(lambda: self.client.zadd(scripts.NODES, {node_id: now}))
        if used:
            await self._call(lambda: self.client.zadd(scripts.DESTINATIONS, used))

    async def shared_get(self, cache: str, key: str) -> str | None:
        """A shared cache entry (the SASL authentication-failure cache, ...), or None."""
        value = await self._call(lambda: self.client.get(f"{_SHARED}{cache}:{{{key}}}"))
        return None if value is None else _text(value)

    async def shared_put(self, cache: str, key: str, value: str, ttl: float) -> None:
        name = f"{_SHARED}{cache}:{{{key}}}"
        await self._call(lambda: self.client.set(name, value, px=max(1, round(ttl * 1000))))

    async def shared_delete(self, cache: str, key: str) -> None:
        await self._call(lambda: self.client.delete(f"{_SHARED}{cache}:{{{key}}}"))

    async def _server_ms(self) -> int:
        seconds, micros = await self._call(self.client.time)
        return int(seconds) * 1000 + int(micros) // 1000

    async def status(self, recent: float) -> FleetStatus:
        """Nodes seen in the last `recent` seconds; leases and rate use per destination
        used in that time."""
        now = await self._server_ms()
        since = now - round(recent * 1000)
        nodes = await self._call(
            lambda: self.client.zrangebyscore(scripts.NODES, since, "+inf", withscores=True)
        )
        names = await self._call(
            lambda: self.client.zrangebyscore(scripts.DESTINATIONS, since, "+inf")
        )
        out = []
        for raw in sorted(_text(n) for n in names):
            key = scripts.lease_key(raw)
            leases = await self._call(lambda k=key: self.client.zcount(k, now, "+inf"))  # type: ignore[misc]
            tat = await self._call(lambda r=raw: self.client.get(scripts.rate_key(r)))  # type: ignore[misc]
            backlog = max(0.0, float(_text(tat)) - now) if tat is not None else 0.0
            out.append(DestinationStatus(raw, int(leases), backlog / 1000))
        seen = tuple((_text(n), max(0.0, (now - s) / 1000)) for n, s in nodes)
        return FleetStatus(seen, tuple(out))

    async def close(self) -> None:
        await self.client.aclose()


@functools.cache
def _redis_error() -> type[Exception]:
    # redis (and what it imports) loads only in fleet mode: see tests/test_startup.py.
    import redis.exceptions

    return redis.exceptions.RedisError


def _text(value: object) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# redis-py's words for a failed connect: "Error 111 connecting to host:port. ..."
_CONNECT_ERROR: Final = re.compile(r"Error (\d+) connecting to (\S+?)\.(?:\s|$)")


def _describe(exc: BaseException) -> str:
    """One line, in Postfix's words for a failed connect where it is one."""
    text = str(exc).strip() or type(exc).__name__
    found = _CONNECT_ERROR.match(text)
    if found is not None:
        return f"connect to {found.group(2)}: {os.strerror(int(found.group(1)))}"
    return text.splitlines()[0]

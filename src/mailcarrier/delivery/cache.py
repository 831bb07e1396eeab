"""The connection cache (Postfix's scache, in-process): idle sessions kept for reuse.

After a successful transaction a session may be parked here instead of being closed, under
two keys, as Postfix's smtp_reuse.c does: the next-hop destination (so the next message for
the same destination skips DNS and connection set-up) and the server address (so a message
for another destination that resolves to the same server can reuse it too). Keys also carry
a label for everything that must match for reuse to be safe (transport, TLS policy, SASL
identity), so a session is never shared across policies or credentials.

Limits are Postfix's: a parked session is closed after `smtp_connection_cache_time_limit`
idle seconds; it is not reused once `smtp_connection_reuse_time_limit` has passed since it
was opened, nor after `smtp_connection_reuse_count_limit` transactions (0: no limit). A
session taken from the cache is checked by the caller (RSET) before use; a dead one is
simply dropped. This module never speaks SMTP: it only stores, expires and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from mailcarrier.aio import INF, Deadline
from mailcarrier.config.settings import AgentSettings
from mailcarrier.transport.session import Session

__all__ = ["CacheLimits", "CacheStatistics", "ConnectionCache"]


@dataclass(frozen=True, slots=True)
class CacheLimits:
    idle_time: float = 2.0  # smtp_connection_cache_time_limit
    reuse_time: float = 300.0  # smtp_connection_reuse_time_limit
    reuse_count: int = 0  # smtp_connection_reuse_count_limit (0: no limit)

    @classmethod
    def from_settings(cls, agent: AgentSettings) -> CacheLimits:
        return cls(
            idle_time=agent.params.connection_cache_time_limit,
            reuse_time=agent.params.connection_reuse_time_limit,
            reuse_count=agent.params.connection_reuse_count_limit,
        )


@dataclass(frozen=True, slots=True)
class CacheStatistics:
    parked: int
    hits: int
    misses: int
    expired: int


class _Entry:
    __slots__ = ("expires", "keys", "parked_at", "session")

    def __init__(
        self, session: Session, keys: tuple[str, ...], parked_at: float, expires: float
    ) -> None:
        self.session = session
        self.keys = keys
        self.parked_at = parked_at
        self.expires = expires  # event-loop time of the idle limit (INF: none)


class ConnectionCache:
    """Idle sessions by key. Use from one event loop; all methods are non-blocking except
    `close_all()`."""

    def __init__(self, limits: CacheLimits, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.limits = limits
        self.clock = clock
        self._by_key: dict[str, list[_Entry]] = {}
        # Every parked entry, oldest first. One timer for the cache closes idle sessions
        # (aio.py's `Deadline`): it is armed for the earliest idle limit and re-armed when
        # it fires, instead of a timer per parked session (parking and taking happen once
        # per message).
        self._parked: dict[_Entry, None] = {}
        self._idle = Deadline(self._sweep)
        # The event loop, looked up once: on Python 3.11 get_running_loop() makes a getpid()
        # system call each time, and parking happens once per message.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing: set[asyncio.Task[None]] = set()
        self._hits = self._misses = self._expired = 0

    # --- policy -----------------------------------------------------------------------
    def reusable(self, session: Session) -> bool:
        """May this session serve another transaction (age and use-count limits)?"""
        return self._reusable_at(session, self.clock())

    def _reusable_at(self, session: Session, now: float) -> bool:
        if session.broken:
            return False
        limits = self.limits
        if limits.reuse_count and session.transactions >= limits.reuse_count:
            return False
        return now - session.started < limits.reuse_time

    # --- storing and taking -------------------------------------------------------------
    def park(self, session: Session, keys: Iterable[str]) -> bool:
        """Keep `session` under `keys`; False (and nothing kept) if it may not be reused."""
        now = self.clock()
        if not self._reusable_at(session, now):
            return False
        idle = self.limits.idle_time
        expires = INF
        if idle > 0:
            loop = self._loop
            if loop is None or loop.is_closed():  # `_event_loop()`, without its call
                loop = self._event_loop()
            expires = loop.time() + idle
            if expires < self._idle.when:  # else armed early enough: no call (per message)
                self._idle.at(loop, expires)
        unique = tuple(keys)
        if len(unique) != 2 or unique[0] == unique[1]:  # two different keys: the usual
            unique = tuple(dict.fromkeys(unique))
        entry = _Entry(session, unique, now, expires)
        by_key = self._by_key
        for key in entry.keys:
            entries = by_key.get(key)
            if entries is None:
                by_key[key] = [entry]
            else:
                entries.append(entry)
        self._parked[entry] = None
        return True

    def take(self, key: str) -> Session | None:
        """The most recently parked usable session under `key`, removed from the cache."""
        entries = self._by_key.get(key)
        while entries:
            entry = entries.pop()
            self._forget(entry, taken_from=key)
            session = entry.session
            if self._reusable_at(session, self.clock()) and not session.conn.at_eof:
                self._hits += 1
                return session
            self._close(session)
        self._misses += 1
        return None

    def _forget(self, entry: _Entry, taken_from: str = "") -> None:
        """Remove `entry` from every key's list (it was already popped from the list of
        `taken_from`, if given)."""
        self._parked.pop(entry, None)
        by_key = self._by_key
        for key in entry.keys:
            entries = by_key.get(key)
            if entries is None:
                continue
            if key != taken_from and entry in entries:
                entries.remove(entry)
            if not entries:
                del by_key[key]

    def _event_loop(self) -> asyncio.AbstractEventLoop:
        loop = self._loop
        if loop is None or loop.is_closed():
            loop = self._loop = asyncio.get_running_loop()
            self._idle.cancel()  # a timer of a loop that is gone never fires
        return loop

    def _sweep(self, now: float) -> float:
        """Close the sessions whose idle limit has passed; the next idle limit."""
        due = [entry for entry in self._parked if entry.expires <= now]
        for entry in due:
            self._expire(entry)
        return min((entry.expires for entry in self._parked), default=INF)

    def _expire(self, entry: _Entry) -> None:
        self._forget(entry)
        self._expired += 1
        self._close(entry.session)

    def _close(self, session: Session) -> None:
        task = asyncio.ensure_future(session.quit())
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)

    # --- introspection and shutdown ------------------------------------------------------
    def __len__(self) -> int:
        return len({id(e) for entries in self._by_key.values() for e in entries})

    def statistics(self) -> CacheStatistics:
        return CacheStatistics(len(self), self._hits, self._misses, self._expired)

    async def close_all(self) -> None:
        """QUIT every parked session and wait for the closes to finish (those started
        before too)."""
        entries = {id(e): e for entries in self._by_key.values() for e in entries}
        for entry in entries.values():
            self._forget(entry)
        if not self._parked:
            self._idle.cancel()
        async with asyncio.TaskGroup() as closes:
            for entry in entries.values():
                closes.create_task(_quietly(entry.session.quit()))
            for task in list(self._closing):  # closes started before (expired, dead)
                closes.create_task(_quietly(task))


async def _quietly(done: Awaitable[None]) -> None:
    """Wait for a close; what it raises is of no interest any more (the session is gone)."""
    with contextlib.suppress(Exception):
        await done

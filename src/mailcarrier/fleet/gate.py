"""What the delivery agent asks of the fleet, and the answers when Redis is away.

`FleetGate` is the narrow interface delivery/ takes injected: `lease()` before opening a
connection to a destination (a `Lease` to release when the connection closes, `Busy`: try
that destination again soon, or `DeadDestination`: another node found it not responding),
`admit()` before each message (None, or `Busy` under the fleet rate; a rate faster than
ten a second hands out its tokens a few at a time: TOKEN_BATCH), `mark_dead()` after
finding a destination unreachable, `shared(cache)` (the entries a node-local cache shares
with the fleet: shared.py; None without a fleet) and `close()`. `LocalGate` is single-node
mode: every answer is yes, nothing is asked. `RedisGate` asks engine.py, holds this
process's leases and renews them every third of `fleet_lease_time` in one call per
destination (with a heartbeat that ``fleet status`` reads), so a lease costs one round trip
when the connection opens and one when it closes, however many messages the connection
carries.

Redis unreachable or slow: limits fail closed (`Busy`: no new connection, mail stays
queued) unless ``fleet_*_fail_open`` says otherwise; one warning line per
`fleet_warning_interval`, and one line when Redis answers again. A destination without
fleet limits is never held back by Redis trouble.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, Final, Protocol

from mailcarrier.config.fleetsyntax import Rate
from mailcarrier.config.settings import Settings
from mailcarrier.fleet.client import make_client, servers
from mailcarrier.fleet.engine import Dead, FleetUnavailable, Full, RedisEngine
from mailcarrier.fleet.limits import FleetLimits, Limits
from mailcarrier.fleet.node import node_id
from mailcarrier.fleet.shared import RedisSharedEntries, SharedEntries
from mailcarrier.log import LogSink, NullLog

__all__ = [
    "Busy",
    "DeadDestination",
    "FleetGate",
    "Lease",
    "LocalGate",
    "RedisGate",
    "check_fleet",
    "make_gate",
]

PROCESS: Final = "fleet"  # the process name of fleet log lines
UNAVAILABLE: Final = "shared state server unavailable"  # the reason of a Busy without Redis
# A fast rate's tokens are taken several at a time (one Redis call for up to TOKEN_BATCH
# messages) and must be spent within TOKEN_TIME seconds or are lost: never more than the
# rate emits in that time, so a rate below 1/TOKEN_TIME a second is asked message by
# message, and a faster one lets at most that many more through in a window.
TOKEN_TIME: Final = 0.1
TOKEN_BATCH: Final = 32


class Lease(Protocol):
    def release(self) -> None: ...


@dataclass(frozen=True, slots=True)
class Busy:
    retry_after: float  # seconds
    reason: str
    # The shared state server did not answer (not a limit): counted apart in the metrics;
    # not part of the value's equality (the wait is the same).
    error: bool = field(default=False, compare=False)

    @property
    def unavailable(self) -> bool:
        """Redis could not be asked (not: a fleet limit reached)."""
        return self.reason == UNAVAILABLE


@dataclass(frozen=True, slots=True)
class DeadDestination:
    reason: str


class FleetGate(Protocol):
    async def lease(self, transport: str, nexthop: str) -> Lease | Busy | DeadDestination: ...
    async def admit(self, transport: str, nexthop: str) -> Busy | None: ...
    def mark_dead(self, transport: str, nexthop: str, reason: str) -> None: ...
    def shared(self, cache: str) -> SharedEntries | None: ...
    async def close(self) -> None: ...
    def statistics(self) -> dict[str, int]: ...


class _NoLease:
    __slots__ = ()

    def release(self) -> None:
        pass


NO_LEASE: Final = _NoLease()


class LocalGate:
    """Single-node mode: no fleet, nothing to ask."""

    async def lease(self, transport: str, nexthop: str) -> Lease | Busy | DeadDestination:
        return NO_LEASE

    async def admit(self, transport: str, nexthop: str) -> Busy | None:
        return None

    def mark_dead(self, transport: str, nexthop: str, reason: str) -> None:
        pass

    def shared(self, cache: str) -> SharedEntries | None:
        return None  # nothing shared: the node's own caches only

    async def close(self) -> None:
        pass

    def statistics(self) -> dict[str, int]:
        return {}


class _RedisLease:
    __slots__ = ("destination", "gate", "lease_id")

    def __init__(self, gate: RedisGate, destination: str, lease_id: str) -> None:
        self.gate = gate
        self.destination = destination
        self.lease_id = lease_id

    def release(self) -> None:
        self.gate.release(self.destination, self.lease_id)


@dataclass(frozen=True, slots=True)
class GatePolicy:
    lease_time: float = 30.0
    busy_retry: float = 1.0
    warning_interval: float = 60.0
    dead_time: float = 60.0
    concurrency_fail_open: bool = False
    rate_fail_open: bool = False
    shared_caches: tuple[str, ...] = ()  # fleet_shared_caches

    @classmethod
    def from_settings(cls, settings: Settings) -> GatePolicy:
        p = settings.params
        return cls(
            p.fleet_lease_time,
            p.fleet_busy_retry_time,
            p.fleet_warning_interval,
            p.fleet_dead_host_time,
            p.fleet_concurrency_fail_open,
            p.fleet_rate_fail_open,
            p.fleet_shared_caches,
        )


class RedisGate:
    def __init__(
        self,
        engine: RedisEngine,
        limits: FleetLimits,
        node: str,
        policy: GatePolicy,
        *,
        log: LogSink | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.engine = engine
        self.limits = limits
        self.node = node
        self.policy = policy
        self.log: LogSink = log if log is not None else NullLog()
        self.clock = clock
        self._ids = itertools.count(1)
        self._tokens: dict[str, tuple[int, float]] = {}  # destination -> (spare, until)
        # A rate call in flight, per destination: the others wait for its answer.
        self._asking: dict[str, asyncio.Future[Busy | None]] = {}
        self._held: dict[str, set[str]] = {}
        self._used: set[str] = set()  # destinations since the last heartbeat
        self._tasks: set[asyncio.Task[None]] = set()
        self._renewing: asyncio.Task[None] | None = None
        self._down = False
        self._next_warning = 0.0
        self._warned: set[str] = set()
        self._errors = 0  # requests the shared state server failed (statistics())

    # --- the interface --------------------------------------------------------------------
    async def lease(self, transport: str, nexthop: str) -> Lease | Busy | DeadDestination:
        limits = self._limits(transport, nexthop)
        if not limits.connections and not self.policy.dead_time:
            return NO_LEASE
        destination = f"{transport}:{nexthop}"
        self._start()
        self._used.add(destination)
        lease_id = f"{self.node}:{os.getpid()}:{next(self._ids)}"
        try:
            answer = await self.engine.acquire(
                destination, lease_id, limits.connections, self.policy.lease_time
            )
        except FleetUnavailable as exc:
            self._trouble(exc)
            if self.policy.concurrency_fail_open or not limits.connections:
                return NO_LEASE
            return Busy(self.policy.busy_retry, UNAVAILABLE, error=True)
        self._recovered()
        if isinstance(answer, Dead):
            return DeadDestination(answer.reason)
        if isinstance(answer, Full):
            return Busy(self.policy.busy_retry, f"fleet connection limit {limits.connections}")
        self._held.setdefault(destination, set()).add(lease_id)
        return _RedisLease(self, destination, lease_id)

    async def admit(self, transport: str, nexthop: str) -> Busy | None:
        rate = self._limits(transport, nexthop).rate
        if rate is None:
            return None
        destination = f"{transport}:{nexthop}"
        while True:
            spare, until = self._tokens.get(destination, (0, 0.0))
            if spare and self.clock() < until:
                self._tokens[destination] = (spare - 1, until)
                return None
            asking = self._asking.get(destination)
            if asking is None:
                break
            # One call at a time: its spare tokens serve the others, its "busy" too.
            answer = await asyncio.shield(asking)
            if answer is not None:
                return answer
        asking = asyncio.get_running_loop().create_future()
        self._asking[destination] = asking
        answer = None
        try:
            answer = await self._ask_rate(destination, rate)
            return answer
        finally:
            del self._asking[destination]
            asking.set_result(answer)

    async def _ask_rate(self, destination: str, rate: Rate) -> Busy | None:
        self._start()
        self._used.add(destination)
        batch = max(1, min(TOKEN_BATCH, rate.burst, int(TOKEN_TIME / rate.interval)))
        try:
            granted, wait = await self.engine.admit_many(
                destination, rate.interval, rate.burst, batch
            )
        except FleetUnavailable as exc:
            self._trouble(exc)
            if self.policy.rate_fail_open:
                return None
            return Busy(self.policy.busy_retry, UNAVAILABLE, error=True)
        self._recovered()
        if granted:
            if granted > 1:
                self._tokens[destination] = (granted - 1, self.clock() + TOKEN_TIME)
            return None
        return Busy(max(wait, 0.001), f"fleet rate limit {rate}")

    def mark_dead(self, transport: str, nexthop: str, reason: str) -> None:
        if self.policy.dead_time:
            destination = f"{transport}:{nexthop}"
            self._spawn(self.engine.mark_dead(destination, reason, self.policy.dead_time))

    def release(self, destination: str, lease_id: str) -> None:
        held = self._held.get(destination)
        if held is None or lease_id not in held:
            return
        held.discard(lease_id)
        if not held:
            del self._held[destination]
        self._spawn(self.engine.release(destination, lease_id))

    async def close(self) -> None:
        """Release every lease still held and stop renewing (the node stops)."""
        limit = self.engine.timeout or 5.0  # a stop never waits long for Redis
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.wait({self._renewing}, timeout=limit)
        for destination, ids in list(self._held.items()):
            for lease_id in list(ids):
                self.release(destination, lease_id)
        if self._tasks:
            await asyncio.wait(set(self._tasks), timeout=limit)
        with contextlib.suppress(Exception):
            async with asyncio.timeout(limit):
                await self.engine.close()

    def shared(self, cache: str) -> SharedEntries | None:
        """Entries of a node-local cache shared through the fleet's Redis (shared.py);
        None when fleet_shared_caches does not name `cache`."""
        if cache not in self.policy.shared_caches:
            return None
        return RedisSharedEntries(self.engine, cache)

    def statistics(self) -> dict[str, int]:
        """``errors``: requests to the shared state server that failed, since the start."""
        return {"errors": self._errors}

    def held(self) -> dict[str, int]:
        """Leases this process holds, per destination (for tests and statistics)."""
        return {destination: len(ids) for destination, ids in self._held.items()}

    # --- inside ---------------------------------------------------------------------------
    def _limits(self, transport: str, nexthop: str) -> Limits:
        limits, warning = self.limits.for_destination(transport, nexthop)
        if warning and warning not in self._warned:
            self._warned.add(warning)
            self.log.warning(PROCESS, f"{warning}; using the defaults")
        return limits

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        async def quietly() -> None:
            try:
                await work
            except FleetUnavailable as exc:  # the lease expires by itself
                self._trouble(exc)

        task = asyncio.get_running_loop().create_task(quietly())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _start(self) -> None:
        if self._renewing is None or self._renewing.done():
            self._renewing = asyncio.get_running_loop().create_task(self._renew_loop())

    async def _renew_loop(self) -> None:
        while True:
            await self.renew_now()
            await asyncio.sleep(self.policy.lease_time / 3)

    async def renew_now(self) -> None:
        """Renew every lease held, and say this node is alive."""
        try:
            for destination, ids in list(self._held.items()):
                if ids:
                    await self.engine.renew(destination, list(ids), self.policy.lease_time)
            used, self._used = self._used, set()
            await self.engine.heartbeat(self.node, used | set(self._held))
        except FleetUnavailable as exc:
            self._trouble(exc)
        else:
            self._recovered()

    def _trouble(self, exc: FleetUnavailable) -> None:
        self._errors += 1
        self._down = True
        now = self.clock()
        if now >= self._next_warning:
            self._next_warning = now + self.policy.warning_interval
            self.log.warning(
                PROCESS,
                f"shared_state_server {self.engine.name}: {exc}; "
                "destinations with fleet limits wait",
            )

    def _recovered(self) -> None:
        if self._down:
            self._down = False
            self._next_warning = 0.0
            self.log.info(PROCESS, f"shared_state_server {self.engine.name}: answering again")


def check_fleet(settings: Settings) -> None:
    """Raise ConfigError now for what `make_gate` would refuse later (in each agent
    process), and make the node's name before the agent processes need it."""
    if servers(settings):
        FleetLimits.load(settings)
        node_id(settings)
        make_client(settings, settings.params.fleet_timeout)


def make_gate(settings: Settings, log: LogSink | None = None) -> FleetGate:
    """`LocalGate` without `shared_state_server`, else a `RedisGate` (ConfigError when the
    fleet configuration is wrong: limits tables, the node name, the password)."""
    if not servers(settings):
        return LocalGate()
    limits = FleetLimits.load(settings)
    timeout = settings.params.fleet_timeout
    engine = RedisEngine(
        make_client(settings, timeout), timeout=timeout, name=" ".join(servers(settings))
    )
    return RedisGate(engine, limits, node_id(settings), GatePolicy.from_settings(settings), log=log)

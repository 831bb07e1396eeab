"""Servers behind a network table: the ``hosts`` list, failover, pooled connections, timeouts.

`HostPool(hosts, connector, ...)` runs an operation on a connection to one of the hosts:
``await pool.run(op)`` where ``op(connection)`` is a coroutine (expand and quote the query
for that connection, send it, read the rows). It behaves as Postfix's dict_pgsql.c and
dict_mysql.c host handling (plpgsql_query, dict_pgsql_get_active):

- a host with open connections is used first (UNIX-domain before TCP before URI targets,
  at random among equals); otherwise the hosts not tried yet, or whose ``retry_interval``
  has passed since they failed, are tried in random order, UNIX-domain ones first;
- a host that fails to connect, or whose query fails, is logged (the warning is kept for the
  caller), closed and skipped for ``retry_interval`` seconds; the next host is tried at once;
  an operation tries each host at most once, even when its failure took longer than
  retry_interval (0: a failed host is tried again by the next operation, as LDAP does);
- a single host is listed twice ("don't blacklist the load balancer", Postfix 3.10): one
  failure is retried once at once before the host is skipped;
- when every host failed, the lookup fails temporarily (`TableLookupError`), never "not
  found";
- connections are kept and reused (several per host, for lookups that run at the same time,
  at most `max_connections`); one idle for ``idle_interval`` seconds is closed. A host gets
  one more connection only when every open one is busy and none is being opened: lookups
  that arrive while a connection is being set up wait for the first free one (a lookup takes
  far less than a connection's setup, and Postfix keeps a single connection per host), so a
  burst of lookups opens connections as the load lasts, not one per lookup;
- connecting and each operation have a `timeout`: a server that accepts and never answers
  counts as failed after it. The abandoned operation is cancelled in the background and its
  connection closed, so the caller does not wait for the driver to give up. A backend whose
  operations are coroutines of the loop with no thread behind them (``in_task=True``:
  pgsql.py) has them run in the asking task itself, cancelled at the timeout: the answer
  reaches the asker in the loop turn the reply is read, not two turns later through a task
  of its own.

A backend supplies a `Connector` (connect to a `Host`, returning a `Connection` with its
quoting function) and raises `HostError` with the text to log for a failure. A pool belongs
to one event loop: `LoopPools` keeps one per loop that asks (the caller's own, or the table
loop of netloop.py for synchronous callers). Neighbours: cfgfile.py and dbcommon.py; pgsql.py and
mysql.py are the first users, and LDAP, memcache, socketmap and tcp build on this too.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Generic, Protocol, TypeVar

from mailcarrier.tables.base import TableLookupError

__all__ = ["Connection", "Connector", "Host", "HostError", "HostPool", "LoopPools"]

RETRY_CONN_MAX: Final = 100  # as Postfix: a safety net for the connect loop
DEFAULT_RETRY_INTERVAL: Final = 60
DEFAULT_IDLE_INTERVAL: Final = 60
DEFAULT_TIMEOUT: Final = 10.0
DEFAULT_MAX_CONNECTIONS: Final = 8

T = TypeVar("T")


class HostError(Exception):
    """A server failed; the message is the warning to log (Postfix's wording where it has
    one, e.g. ``connect to pgsql server HOST: ...``)."""


@dataclass(frozen=True, slots=True)
class Host:
    """One member of ``hosts`` as written, and how a backend reaches it."""

    text: str
    rank: int = 1  # 0 UNIX-domain, 1 TCP, 2 URI: lower ranks are preferred
    target: Any = None  # the backend's parsed form


class Connection(Protocol):
    def quote(self, text: str) -> str:
        """Quote `text` for a query on this connection (its server's rules)."""

    async def close(self) -> None:
        """Close; never raises."""


C = TypeVar("C", bound=Connection)
C_co = TypeVar("C_co", bound=Connection, covariant=True)


class Connector(Protocol[C_co]):
    async def connect(self, host: Host, timeout: float) -> C_co:
        """A new connection to `host`, or `HostError`."""


class _WentDown(HostError):
    """Given to the lookups waiting for a connection to a host that has just failed."""


class _Status(enum.Enum):
    UNTRIED = "untried"
    ACTIVE = "active"
    FAIL = "fail"


@dataclass(eq=False)
class _HostState(Generic[C]):
    host: Host
    status: _Status = _Status.UNTRIED
    retry_at: float = 0.0
    generation: int = 0  # bumped when the host goes down: older connections are dropped
    idle: list[tuple[C, float]] = field(default_factory=list)  # (connection, idle since)
    count: int = 0  # open connections, idle and busy
    connecting: bool = False  # a connection is being opened
    waiters: deque[asyncio.Future[C]] = field(default_factory=deque)  # lookups waiting


class HostPool(Generic[C]):
    """Connections to the servers of one table (see the module text)."""

    def __init__(
        self,
        hosts: Sequence[Host],
        connector: Connector[C],
        *,
        where: str,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        idle_interval: float = DEFAULT_IDLE_INTERVAL,
        timeout: float = DEFAULT_TIMEOUT,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        rng: random.Random | None = None,
        in_task: bool = False,
    ) -> None:
        listed = list(hosts)
        if len(listed) == 1:
            listed.append(listed[0])  # a load balancer: one failure is retried at once
        self.states: list[_HostState[C]] = [_HostState(h) for h in listed]
        self.connector = connector
        self.where = where
        self.retry_interval = retry_interval
        self.idle_interval = idle_interval
        self.timeout = timeout
        self.max_connections = max(1, max_connections)
        self.in_task = in_task
        self.rng = rng or random.Random()
        self.warnings: list[str] = []
        self._sweep: asyncio.TimerHandle | None = None
        self._background: set[asyncio.Future[Any]] = set()
        self.guard: AsyncIterator[None] | None = None  # closes the pool at loop shutdown

    # --- choosing a host --------------------------------------------------------------
    def _pick(
        self, wanted: set[_Status], now: float, tried: set[int] | frozenset[int] = frozenset()
    ) -> _HostState[C] | None:
        ready = [
            s
            for s in self.states
            if s.status in wanted
            and not (s.status is _Status.FAIL and s.retry_at > now)
            and id(s) not in tried
        ]
        if not ready:
            return None
        best = min(s.host.rank for s in ready)
        return self.rng.choice([s for s in ready if s.host.rank == best])

    def _down(self, state: _HostState[C], now: float, problem: str) -> None:
        self.warnings.append(problem)
        state.status = _Status.FAIL
        state.retry_at = now + self.retry_interval
        state.generation += 1
        for conn, _ in state.idle:
            self._close_later(conn)
        state.count -= len(state.idle)
        state.idle.clear()
        while state.waiters:
            waiter = state.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(_WentDown(f"{self.where}: server {state.host.text} failed"))

    # --- running an operation ---------------------------------------------------------
    async def run(self, op: Callable[[C], Awaitable[T]]) -> T:
        """`op` on a connection to a working host; `TableLookupError` when none works."""
        loop = asyncio.get_running_loop()
        last = ""
        tried: set[int] = set()  # each host at most once per operation, however slow it was
        for _ in range(RETRY_CONN_MAX):
            now = loop.time()
            state = self._pick({_Status.ACTIVE}, now, tried)
            if state is None:
                state = self._pick({_Status.UNTRIED, _Status.FAIL}, now, tried)
            if state is None:
                break
            tried.add(id(state))
            try:
                conn = await self._acquire(state)
            except _WentDown as exc:
                last = str(exc)  # its failure was logged by the lookup that met it
                continue
            except HostError as exc:
                last = str(exc)
                self._down(state, loop.time(), last)
                continue
            generation = state.generation
            try:
                if self.in_task:
                    result = await self._timed_in_task(op, conn)
                else:
                    result = await self._timed(op(conn), conn)
            except asyncio.CancelledError:
                state.count -= 1  # the connection is closed, not handed back
                raise
            except HostError as exc:
                last = str(exc)
                state.count -= 1
                if state.generation == generation:
                    self._down(state, loop.time(), last)
                continue
            self._release(state, conn, generation)
            return result
        raise TableLookupError(
            f"{self.where}: lookup error: {last}" if last else f"{self.where}: no server available"
        )

    async def _acquire(self, state: _HostState[C]) -> C:
        if state.idle:
            return state.idle.pop()[0]
        if state.count < self.max_connections and not state.connecting:
            state.count += 1
            state.connecting = True
            try:
                conn = await self._timed(self.connector.connect(state.host, self.timeout), None)
            except BaseException:
                state.count -= 1
                raise
            finally:
                state.connecting = False
            state.status = _Status.ACTIVE
            return conn
        # Every connection is busy, or one is being opened: wait for one to be handed over
        # by `_release` (a failed connect hands the waiters its error, `_down`).
        waiter: asyncio.Future[C] = asyncio.get_running_loop().create_future()
        state.waiters.append(waiter)
        done, _ = await asyncio.wait({waiter}, timeout=self.timeout)
        if waiter in done:
            return waiter.result()  # a HostError when the host went down meanwhile
        state.waiters.remove(waiter)
        waiter.cancel()
        raise HostError(
            f"{self.where}: no connection to {state.host.text} free after {self.timeout:g}s"
        )

    def _release(self, state: _HostState[C], conn: C, generation: int) -> None:
        if state.generation != generation:
            state.count -= 1
            self._close_later(conn)
            return
        while state.waiters:
            waiter = state.waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)  # straight to the next lookup: no idle round
                return
        loop = asyncio.get_running_loop()
        state.idle.append((conn, loop.time()))
        if self._sweep is None:
            self._sweep = loop.call_later(self.idle_interval, self._close_idle)

    async def _timed(self, coro: Awaitable[T], conn: C | None) -> T:
        """`coro` within the timeout; after it, the work goes on in the background (then
        its connection, or the one it opened, is closed) and `HostError` is raised."""
        loop = asyncio.get_running_loop()
        task: asyncio.Future[T] = asyncio.ensure_future(coro)
        # asyncio.wait() for one task, without its sets and per-call machinery.
        waiter: asyncio.Future[None] = loop.create_future()

        def wake(_: object = None) -> None:
            if not waiter.done():
                waiter.set_result(None)

        timer = loop.call_later(self.timeout, wake)
        task.add_done_callback(wake)
        try:
            await waiter
        except asyncio.CancelledError:
            task.remove_done_callback(wake)
            task.cancel()
            self._keep(task, abandoned=conn)
            raise
        finally:
            timer.cancel()
        if task.done():
            try:
                return task.result()
            except HostError:
                if conn is not None:
                    self._close_later(conn)
                raise
            except Exception as exc:
                if conn is not None:
                    self._close_later(conn)
                raise HostError(f"{self.where}: {type(exc).__name__}: {exc}") from exc
        task.remove_done_callback(wake)
        task.cancel()
        self._keep(task, abandoned=conn)
        raise HostError(f"{self.where}: server did not answer within {self.timeout:g}s")

    async def _timed_in_task(self, op: Callable[[C], Awaitable[T]], conn: C) -> T:
        """`op(conn)` in the calling task within the timeout (``in_task`` backends): at
        the timeout, or when the caller is cancelled, the operation stops at its await and
        its connection, in an unknown state, is closed."""
        try:
            async with asyncio.timeout(self.timeout):
                return await op(conn)
        except TimeoutError:
            self._close_later(conn)
            raise HostError(
                f"{self.where}: server did not answer within {self.timeout:g}s"
            ) from None
        except HostError:
            self._close_later(conn)
            raise
        except asyncio.CancelledError:
            self._close_later(conn)
            raise
        except Exception as exc:
            self._close_later(conn)
            raise HostError(f"{self.where}: {type(exc).__name__}: {exc}") from exc

    # --- closing ----------------------------------------------------------------------
    def _keep(self, task: asyncio.Future[Any], abandoned: C | None = None) -> None:
        def finished(done: asyncio.Future[Any]) -> None:
            self._background.discard(done)
            if abandoned is not None:
                self._close_later(abandoned)
            elif not done.cancelled() and done.exception() is None:
                # A connect that finished after its timeout: nobody wants it.
                result = done.result()
                if hasattr(result, "close") and hasattr(result, "quote"):
                    self._close_later(result)

        self._background.add(task)
        task.add_done_callback(finished)

    def _close_later(self, conn: Connection) -> None:
        task = asyncio.ensure_future(conn.close())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _close_idle(self) -> None:
        self._sweep = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        remaining = False
        for state in self.states:
            keep: list[tuple[C, float]] = []
            for conn, since in state.idle:
                if now - since >= self.idle_interval - 0.001:
                    state.count -= 1
                    self._close_later(conn)
                else:
                    keep.append((conn, since))
            state.idle = keep
            remaining = remaining or bool(keep)
            if state.count == 0 and state.status is _Status.ACTIVE:
                state.status = _Status.UNTRIED  # plpgsql_close_host()
        if remaining:
            self._sweep = loop.call_later(self.idle_interval, self._close_idle)

    async def close(self) -> None:
        """Close every idle connection (busy ones close when they come back)."""
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for state in self.states:
            for conn, _ in state.idle:
                with contextlib.suppress(Exception):
                    await conn.close()
            state.count -= len(state.idle)
            state.idle.clear()
            state.generation += 1

    def take_warnings(self) -> list[str]:
        out = self.warnings[:]
        self.warnings.clear()  # in place: LoopPools' pools share one list
        return out

    def statistics(self) -> dict[str, int]:
        return {
            "open": sum(s.count for s in self.states),
            "idle": sum(len(s.idle) for s in self.states),
            "failed": sum(s.status is _Status.FAIL for s in self.states),
        }


async def _close_at_shutdown(pool: HostPool[Any]) -> AsyncIterator[None]:
    try:
        yield
    finally:
        await pool.close()


class LoopPools(Generic[C]):
    """One `HostPool` per event loop that asks: a connection belongs to the loop that
    opened it, and a lookup made on a caller's loop runs there, without a hop to another
    thread (two threads taking turns at the interpreter lock cost more than the query).
    Synchronous callers use the table loop's pool (netloop.py). A loop that goes away takes
    its pool with it."""

    def __init__(self, factory: Callable[[], HostPool[C]]) -> None:
        self.factory = factory
        self._pools: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, HostPool[C]] = (
            weakref.WeakKeyDictionary()
        )
        self._keep: asyncio.Future[None] | None = None
        self.warnings: list[str] = []

    def for_loop(self, loop: asyncio.AbstractEventLoop) -> HostPool[C]:
        pool = self._pools.get(loop)
        if pool is None:
            pool = self._pools[loop] = self.factory()
            pool.warnings = self.warnings  # one list for every loop's pool
        return pool

    def current(self) -> HostPool[C]:
        """The pool of the running loop. Its connections are closed when the loop shuts
        down its async generators (asyncio.run and the package's loops do), so a loop that
        ends leaves no connection open on the server."""
        loop = asyncio.get_running_loop()
        pool = self._pools.get(loop)
        if pool is None:
            pool = self.for_loop(loop)
            guard = _close_at_shutdown(pool)
            pool.guard = guard  # the loop keeps only a weak reference to it
            self._keep = asyncio.ensure_future(guard.__anext__())
        return pool

    def take_warnings(self) -> list[str]:
        if not self.warnings:
            return []
        out = self.warnings[:]
        self.warnings.clear()
        return out

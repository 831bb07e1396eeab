"""``mailcarrier run`` on its event loop: signals, the scopes of its tasks, and closing.

`run_once(manager)` drains what is deliverable now (``run --once``); `run_daemon(manager,
config, deliverer)` runs the scheduler until a stop signal (queue/daemon.py's `serve()`).
Both install the signal handlers (SIGTERM and SIGINT stop: the first gracefully, the next at
once; SIGHUP reloads the daemon's configuration), and both close the connection cache or the
agent processes when they end, within `CLOSE_GRACE` seconds after a stop (queue/stopping.py).
Deliveries run in the scheduler's scope (`QueueManager.running()`); agent pools replaced by
a reload finish what they run in the daemon's own TaskGroup (`_RetiredPools`): no task
outlives the command. With http_listen, the metrics and status listener (observe/, an
`HttpListener` cli_queue.py builds) serves on the same loop for the whole command. cli.py
builds what these get (the manager, the configuration, the delivery agents, the listener)
and calls them; this module reads no parameter itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

from mailcarrier.aio import on_stop_signals
from mailcarrier.config.settings import Settings
from mailcarrier.config.watch import ConfigReloader
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.queue.daemon import Controls, serve
from mailcarrier.queue.names import QMGR
from mailcarrier.queue.scheduler import Deliverer, QueueManager
from mailcarrier.queue.stopping import CLOSE_GRACE, cancel_tasks
from mailcarrier.queue.workers import AgentPool

if TYPE_CHECKING:  # imported by cli_queue.py only when http_listen is set
    from mailcarrier.observe import HttpListener

__all__ = ["run_daemon", "run_once"]


class _RetiredPools:
    """Agent pools replaced by a reload, finishing what they run (`AgentPool.close`) as
    tasks of the daemon's TaskGroup: owned by one `run`, none outlives it. An in-process
    agent replaced by a reload closes its cached sessions and its fleet gate (Redis
    connections, lease renewals) once its deliveries in flight are done (`DeliveryAgent.close`)."""

    def __init__(self, group: asyncio.TaskGroup) -> None:
        self._group = group
        self._pools: dict[asyncio.Task[None], Deliverer] = {}

    def retire(self, deliverer: Deliverer) -> None:
        """After a reload: the old agents finish what they run, then end."""
        if isinstance(deliverer, AgentPool | DeliveryAgent):
            task = self._group.create_task(deliverer.close())
            self._pools[task] = deliverer
            task.add_done_callback(self._forget)

    def _forget(self, task: asyncio.Task[None]) -> None:
        self._pools.pop(task, None)

    async def close(self, timeout: float | None) -> None:
        """Wait at most `timeout` seconds more for them; then the rest are killed."""
        if self._pools:
            _, late = await asyncio.wait(set(self._pools), timeout=timeout)
            for task in late:
                retired = self._pools[task]
                if isinstance(retired, AgentPool):
                    retired.kill()
                else:
                    task.cancel()
            if late:
                await asyncio.wait(late)


def _stop_on_signals(controls: Controls) -> None:
    """SIGTERM and SIGINT stop the scheduler: the first gracefully, the next at once."""
    on_stop_signals(controls.request_stop)


@contextlib.asynccontextmanager
async def _listening(http: HttpListener | None) -> AsyncIterator[None]:
    """The http_listen listener (observe/) while the block runs, when there is one."""
    if http is None:
        yield
        return
    async with http.running():
        yield


async def run_once(manager: QueueManager, http: HttpListener | None = None) -> int:
    """``run --once``: deliver what is deliverable now; a signal stops it as it stops the
    daemon. `http`: the metrics and status listener, serving until the end. Returns how
    many messages were left queued for want of the fleet's shared state server
    (QueueManager.run_once)."""
    controls = Controls()
    _stop_on_signals(controls)
    async with _listening(http):
        return await _drain_once(manager, controls)


async def _drain_once(manager: QueueManager, controls: Controls) -> int:
    left = 0
    try:
        # The deliveries' scope is this one, not run_once()'s: they keep their grace
        # period after a signal has cancelled run_once().
        async with manager.running():
            if isinstance(manager.deliverer, AgentPool):
                await manager.deliverer.start()  # the agents start up while the queue is read
            drain = asyncio.ensure_future(manager.run_once())
            stop = asyncio.ensure_future(controls.stop.wait())
            await asyncio.wait({drain, stop}, return_when=asyncio.FIRST_COMPLETED)
            if drain.done():
                stop.cancel()
                left = drain.result()
            else:  # a signal: stop reading the queue, give deliveries in flight their grace
                await cancel_tasks([drain])
                await manager.stop(abandon=controls.abandon)
                manager.log.info(QMGR, "terminating on signal")
    finally:
        await _close_cache(manager, CLOSE_GRACE if controls.stop.is_set() else None)
    return left


async def _close_cache(manager: QueueManager, timeout: float | None = None) -> None:
    """Close the connection cache (QUIT to idle sessions) or the agent processes; after a
    stop, within `timeout` seconds (then the agents are killed)."""
    agent = manager.deliverer
    if isinstance(agent, DeliveryAgent):
        if agent.cache is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(agent.cache.close_all(), timeout)
        await agent.fleet.close()  # after the cache: its sessions' leases are released
        await agent.close_tlsrpt()
    elif isinstance(agent, AgentPool):
        await agent.close(timeout)


def _sts_refresh(deliverer: Deliverer, *, start: bool) -> None:
    """The in-process agent's MTA-STS refresh task (agent processes run their own)."""
    if isinstance(deliverer, DeliveryAgent):
        if start:
            deliverer.start_sts_refresh()
        else:
            deliverer.stop_sts_refresh()


async def run_daemon(
    manager: QueueManager,
    config: ConfigReloader,
    deliverer: Callable[[Settings], Deliverer],
    http: HttpListener | None = None,
) -> None:
    """``run``: the scheduler until a stop signal. A reload (SIGHUP, or a changed main.cf
    or table: `config`) gives the manager new settings and new delivery agents
    (`deliverer(settings)`); the old agent processes finish what they run meanwhile.
    `http`: the metrics and status listener (started first: a bind error stops the run
    before any delivery; a reload keeps it as it is)."""
    async with _listening(http):
        await _daemon(manager, config, deliverer)


async def _daemon(
    manager: QueueManager,
    config: ConfigReloader,
    deliverer: Callable[[Settings], Deliverer],
) -> None:
    controls = Controls()
    _stop_on_signals(controls)
    asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, controls.reload.set)
    manager.log.info(QMGR, "daemon started -- mailcarrier run")
    failure: Exception | None = None
    async with asyncio.TaskGroup() as group:
        retired = _RetiredPools(group)

        def reload() -> Settings:
            new = config.reload()
            _sts_refresh(manager.deliverer, start=False)
            retired.retire(manager.deliverer)
            manager.deliverer = deliverer(new)
            _sts_refresh(manager.deliverer, start=True)
            return new

        # Cached MTA-STS policies are refreshed from the start, without waiting for mail.
        _sts_refresh(manager.deliverer, start=True)
        try:
            await serve(manager, controls, reload=reload, changed=config.changed)
        except Exception as exc:  # raised as it is below, not in the group's ExceptionGroup
            failure = exc
        finally:
            _sts_refresh(manager.deliverer, start=False)
            await _close_cache(manager, CLOSE_GRACE)
            await retired.close(CLOSE_GRACE)
    if failure is not None:
        raise failure
    manager.log.info(QMGR, "terminating on signal")

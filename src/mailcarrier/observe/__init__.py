"""Watching a running mailcarrier: Prometheus metrics, the status page and its JSON.

`HttpListener` is what ``mailcarrier run`` starts when ``http_listen`` is set: the
scheduler's observer (`Monitor`, monitor.py, fed through queue/observer.py) and the
listener serving it on the run's event loop (http.py). `serve_native()` is ``mailcarrier
observe --postfix``: the same listener serving what the Postfix-native agents counted and
Postfix's queue (`NativeMonitor`, native.py), until SIGTERM or SIGINT. The parts: metrics.py (the
Prometheus metrics), recent.py (the last hour), snapshot.py (the queue, read from the
spool), page.py (the HTML page). This package imports prometheus-client (the ``metrics``
extra): cli_queue.py imports it only when a listener is configured.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from mailcarrier.aio import on_stop_signals
from mailcarrier.log import LogSink
from mailcarrier.observe.http import PROCESS, ListenConfig, Observed, StatusServer, start_listener
from mailcarrier.observe.monitor import Monitor
from mailcarrier.observe.native import NativeMonitor

__all__ = ["HttpListener", "ListenConfig", "Monitor", "NativeMonitor", "serve_native"]


@dataclass(frozen=True, slots=True)
class HttpListener:
    config: ListenConfig
    monitor: Observed
    log: LogSink

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Serve while the block runs (binding first: a bind error is raised before it)."""
        server = StatusServer(self.monitor, token=self.config.token, log=self.log)
        listener = await start_listener(self.config, server)
        try:
            yield
        finally:
            listener.close()
            await listener.wait_closed()


async def serve_native(monitor: NativeMonitor, config: ListenConfig, log: LogSink) -> int:
    """``observe --postfix``: serve until SIGTERM or SIGINT (a bind error first raises),
    sampling the agents' counts meanwhile; 0."""
    stop = asyncio.Event()
    on_stop_signals(stop.set)
    async with HttpListener(config, monitor, log).running():
        sampler = asyncio.create_task(monitor.sampling(lambda text: log.warning(PROCESS, text)))
        try:
            await stop.wait()
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
    log.info(PROCESS, "terminating on signal")
    return 0

"""Watching a running mailcarrier: Prometheus metrics, the status page and its JSON.

`HttpListener` is what ``mailcarrier run`` starts when ``http_listen`` is set: the
scheduler's observer (`Monitor`, monitor.py, fed through queue/observer.py) and the
listener serving it on the run's event loop (http.py). The parts: metrics.py (the
Prometheus metrics), recent.py (the last hour), snapshot.py (the queue, read from the
spool), page.py (the HTML page). This package imports prometheus-client (the ``metrics``
extra): cli_queue.py imports it only when a listener is configured.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from mailcarrier.log import LogSink
from mailcarrier.observe.http import ListenConfig, StatusServer, start_listener
from mailcarrier.observe.monitor import Monitor

__all__ = ["HttpListener", "ListenConfig", "Monitor"]


@dataclass(frozen=True, slots=True)
class HttpListener:
    config: ListenConfig
    monitor: Monitor
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

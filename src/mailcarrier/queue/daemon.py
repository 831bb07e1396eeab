"""`mailcarrier run`: the long-running scheduler loop, its lock, its signals.

`QueueLock` makes sure one scheduler owns a queue directory (an flock on ``master.lock``;
a second `run` fails clearly). `serve()` recovers the active queue, then loops: activate
new mail from incoming/ every `poll_interval` seconds, scan deferred/ every
`queue_run_delay` (at once when ``queue flush`` asked for it), start deliveries as windows
allow. SIGTERM/SIGINT stop it gracefully (running deliveries finish, queued work goes back to
incoming/), SIGHUP reloads the configuration through the `reload` callable. Signals are
installed by the caller (cli.py) through `Controls`; nothing here touches global state.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

from mailcarrier.config.settings import Settings
from mailcarrier.errors import MailcarrierError
from mailcarrier.queue.names import QMGR
from mailcarrier.queue.scheduler import QueueManager

__all__ = ["FLUSH_REQUEST", "Controls", "QueueBusyError", "QueueLock", "serve"]

FLUSH_REQUEST: Final = "flush.request"


class QueueBusyError(MailcarrierError):
    """Another scheduler already runs on this queue directory."""


class QueueLock:
    def __init__(self, root: Path) -> None:
        self.path = root / "master.lock"
        self.fd = -1

    def __enter__(self) -> QueueLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise QueueBusyError(
                f"the mail system is already running on {self.path.parent}"
            ) from None
        os.ftruncate(self.fd, 0)
        os.write(self.fd, f"{os.getpid()}\n".encode())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        os.close(self.fd)


@dataclass
class Controls:
    """What signal handlers set; `serve` reacts at its next turn."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reload: asyncio.Event = field(default_factory=asyncio.Event)


async def serve(
    manager: QueueManager,
    controls: Controls,
    *,
    reload: Callable[[], Settings] | None = None,
    changed: Callable[[], bool] | None = None,
    poll_interval: float = 1.0,
) -> None:
    """Run the scheduler until `controls.stop` is set.

    `changed()` is polled once per pass (at most every `poll_interval` seconds): when it
    says main.cf or a table file changed, the configuration is reloaded at this safe point,
    between deliveries, exactly as for SIGHUP; deliveries in flight finish with the settings
    they started with.
    """
    spool = manager.spool
    manager.recover()
    next_scan = 0.0
    while not controls.stop.is_set():
        if changed is not None and reload is not None and changed():
            controls.reload.set()
        if controls.reload.is_set():
            controls.reload.clear()
            if reload is not None:
                try:
                    manager.configure(reload())
                    manager.log.info(QMGR, "reload -- configuration reloaded")
                except MailcarrierError as exc:
                    manager.log.warning(
                        QMGR, f"reload failed, keeping the old configuration: {exc}"
                    )
        now = manager.clock()
        flush = spool.root / FLUSH_REQUEST
        flushed = flush.exists()
        if flushed:
            flush.unlink(missing_ok=True)
        scan_deferred = flushed or now >= next_scan
        if scan_deferred:
            manager.revive_destinations()
            next_scan = now + manager.params.time("queue_run_delay")
        manager.activate_ready(deferred=scan_deferred)
        manager.pump()
        stop_wait = asyncio.ensure_future(controls.stop.wait())
        reload_wait = asyncio.ensure_future(controls.reload.wait())
        activity = asyncio.ensure_future(manager.wait_activity(poll_interval))
        await asyncio.wait({stop_wait, reload_wait, activity}, return_when=asyncio.FIRST_COMPLETED)
        for fut in (stop_wait, reload_wait, activity):
            fut.cancel()
    await manager.stop()

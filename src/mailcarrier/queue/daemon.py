"""`mailcarrier run`: the long-running scheduler loop, its lock, its signals.

`QueueLock` makes sure one scheduler owns a queue directory (an flock on ``master.lock``;
a second `run` fails clearly). `serve()` recovers the active queue, then loops: activate
new mail from incoming/ every `poll_interval` seconds, scan deferred/ every
`queue_run_delay` (at once when ``queue flush`` asked for it), start deliveries as windows
allow, and put back into incoming/ what a failed write left in active/. SIGTERM/SIGINT stop
it (`Controls.stop`): deliveries in flight get a few seconds to finish, the rest are
abandoned and stay queued (`QueueManager.stop`; a second signal, `Controls.abandon`, stops at
once); SIGHUP reloads the configuration through the `reload` callable. Signals are
installed by the caller (cli.py) through `Controls`; nothing here touches global state.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Final

from mailcarrier.config.settings import Settings
from mailcarrier.errors import MailcarrierError, TemporaryError
from mailcarrier.queue.names import QMGR
from mailcarrier.queue.scheduler import QueueManager

__all__ = ["FLUSH_REQUEST", "Controls", "QueueBusyError", "QueueLock", "serve"]

FLUSH_REQUEST: Final = "flush.request"


class QueueBusyError(TemporaryError):
    """Another scheduler already runs on this queue directory (exit 75: try again later)."""


class QueueLock:
    def __init__(self, root: Path) -> None:
        self.path = root / "master.lock"
        self.fd = -1

    def __enter__(self) -> QueueLock:
        try:
            self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise TemporaryError(
                f"open lock file {self.path}: {exc.strerror}",
                path=str(self.path),
                errno=exc.errno or 0,
            ) from exc
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise QueueBusyError(
                f"the mail system is already running on {self.path.parent}"
            ) from None
        # The pid is for people; a full disk must not stop the scheduler for it.
        with contextlib.suppress(OSError):
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
    """What signal handlers set; `serve` reacts at its next turn. `abandon` (a second stop
    signal) ends the grace period of deliveries in flight at once."""

    stop: asyncio.Event = field(default_factory=asyncio.Event)
    reload: asyncio.Event = field(default_factory=asyncio.Event)
    abandon: asyncio.Event = field(default_factory=asyncio.Event)

    def request_stop(self) -> None:
        """The first stop request stops gracefully, the next one at once."""
        if self.stop.is_set():
            self.abandon.set()
        self.stop.set()


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
    manager.recover()
    async with manager.running():  # the deliveries started here end here
        await _passes(manager, controls, reload, changed, poll_interval)
        await manager.stop(abandon=controls.abandon)


async def _passes(
    manager: QueueManager,
    controls: Controls,
    reload: Callable[[], Settings] | None,
    changed: Callable[[], bool] | None,
    poll_interval: float,
) -> None:
    """The passes of `serve`, until `controls.stop` is set."""
    spool = manager.spool
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
        flushed = _take_flush_request(spool.root / FLUSH_REQUEST)
        scan_deferred = flushed or now >= next_scan
        if flushed:
            manager.forget_trouble()  # asked to try everything now
        if scan_deferred:
            manager.revive_destinations()
            manager.recover()  # what a failed write left in active/
            next_scan = now + manager.params.main.queue_run_delay
        await manager.activate_ready_async(deferred=scan_deferred)
        manager.pump()
        stop_wait = asyncio.ensure_future(controls.stop.wait())
        reload_wait = asyncio.ensure_future(controls.reload.wait())
        activity = asyncio.ensure_future(manager.wait_activity(poll_interval))
        await asyncio.wait({stop_wait, reload_wait, activity}, return_when=asyncio.FIRST_COMPLETED)
        for fut in (stop_wait, reload_wait, activity):
            fut.cancel()


def _take_flush_request(path: Path) -> bool:
    """True when ``queue flush`` asked for a scan (the request is consumed; one that cannot
    be removed, on a read-only queue, is not acted on, or it would be every second)."""
    if not path.exists():
        return False
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True

"""The table loop: one background event loop per process for the synchronous callers of
network tables.

Network tables are asked from event loops (the scheduler, a delivery agent, the Postfix-native
agent) and from plain synchronous code (``mailcarrier map -q``, transport_maps, tests). The
asynchronous callers use connections of their own loop (netcore.LoopPools); the synchronous
ones run the lookup here, on a loop started on first use in a daemon thread, whose pools
outlive the callers, and wait for it (a proxymap(8) client uses it the same way):

    run_sync(table_coroutine())            # from synchronous code, blocks the thread
    await run_async(table_coroutine())     # from a loop, on this one (or inline if here)

A child process made by fork() finds the loop of its parent dead: `current()` notices the
new pid and starts a fresh loop (the parent's connections are forgotten, never used). This
module knows nothing of tables; netcore.py (host pools) and the table kinds use it.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

__all__ = ["TableLoop", "current", "run_async", "run_sync"]

T = TypeVar("T")


class TableLoop:
    """A daemon thread running an asyncio loop until the process ends."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.loop = _new_loop()
        ready = threading.Event()
        self.thread = threading.Thread(
            target=self._run, args=(ready,), name="mailcarrier-tables", daemon=True
        )
        self.thread.start()
        ready.wait()

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.call_soon(ready.set)
        self.loop.run_forever()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def in_loop(self) -> bool:
        return threading.get_ident() == self.thread.ident


def _new_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed (a dependency where it builds), as the package's other loops."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


_lock = threading.Lock()
_current: TableLoop | None = None


def current() -> TableLoop:
    """The loop of this process, started on first use (and again after a fork)."""
    global _current
    held = _current
    if held is not None and held.pid == os.getpid():
        return held
    with _lock:
        if _current is None or _current.pid != os.getpid():
            _current = TableLoop()
        return _current


async def run_async(coro: Coroutine[Any, Any, T]) -> T:
    """Await `coro` on the table loop without blocking the calling loop."""
    table_loop = current()
    if table_loop.in_loop():
        return await coro
    return await asyncio.wrap_future(table_loop.submit(coro))


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run `coro` on the table loop and wait for it (from code outside that loop)."""
    table_loop = current()
    if table_loop.in_loop():
        coro.close()
        raise RuntimeError("run_sync() called on the table loop: use run_async()")
    return table_loop.submit(coro).result()

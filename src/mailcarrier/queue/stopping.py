"""How the scheduler and its agent processes stop: a short grace period, then cancellation.

When `mailcarrier run` is asked to stop (SIGTERM, SIGINT), deliveries in flight get
`STOP_GRACE` seconds to finish; the ones still running then are abandoned: cancelled, their
connections dropped, and their recipients that have no verdict yet stay unmarked in the
queue, to be delivered by the next run (as when Postfix's master stops its smtp(8)
processes). A second signal skips the rest of the grace period. Postfix has no parameter
for this (its agents simply die), so this is a constant, not a setting.

`wait_running()` is the grace period: it returns when no delivery runs any more, when it is
over, or at a second signal. `cancel_tasks()` cancels until the tasks are really done: a
delivery may catch the first cancellation in a clean-up step that talks to the server again
(QUIT after a stalled command) and would otherwise wait for that server's long timeouts. The
scheduler (scheduler.py) and the agent processes (workers.py) use them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable
from typing import Any, Final

__all__ = ["CLOSE_GRACE", "STOP_GRACE", "cancel_tasks", "wait_running"]

# Seconds deliveries in flight may take to finish after a stop signal. A delivery that
# is about to end (the server is answering) ends well within it; a stalled one is abandoned.
STOP_GRACE: Final = 5.0
# Seconds the connection caches and the agent processes may take to close (QUIT to idle
# sessions) once deliveries have stopped; after that, agent processes are killed.
CLOSE_GRACE: Final = 2.0
_RECANCEL: Final = 0.5


async def cancel_tasks(tasks: Iterable[asyncio.Task[Any]]) -> None:
    """Cancel `tasks`, again every half second, until all of them are done."""
    left = {t for t in tasks if not t.done()}
    while left:
        for task in left:
            task.cancel()
        await asyncio.wait(left, timeout=_RECANCEL)
        left = {t for t in left if not t.done()}


async def wait_running(
    running: Collection[asyncio.Task[Any]], grace: float, abandon: asyncio.Event | None
) -> None:
    """Until `running` is empty (tasks leave it as they end), `grace` seconds pass or
    `abandon` is set."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    stop_now = asyncio.ensure_future(abandon.wait()) if abandon is not None else None
    try:
        while running and (stop_now is None or not stop_now.done()):
            left = deadline - loop.time()
            if left <= 0:
                return
            waiting: set[asyncio.Future[Any]] = set(running)
            if stop_now is not None:
                waiting.add(stop_now)
            await asyncio.wait(waiting, timeout=left, return_when=asyncio.FIRST_COMPLETED)
    finally:
        if stop_now is not None:
            stop_now.cancel()

"""How the scheduler and its agent processes stop: a short grace period, then cancellation.

When `mailcarrier run` is asked to stop (SIGTERM, SIGINT), deliveries in flight get
`STOP_GRACE` seconds to finish; the ones still running then are abandoned: cancelled, their
connections dropped, and their recipients that have no verdict yet stay unmarked in the
queue, to be delivered by the next run (as when Postfix's master stops its smtp(8)
processes). A second signal skips the rest of the grace period. Postfix has no parameter
for this (its agents simply die), so this is a constant, not a setting.

`cancel_tasks()` cancels until the tasks are really done: a delivery may catch the first
cancellation in a clean-up step that talks to the server again (QUIT after a stalled
command) and would otherwise wait for that server's long timeouts. The scheduler
(scheduler.py) and the agent processes (workers.py) both use it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Final

__all__ = ["CLOSE_GRACE", "STOP_GRACE", "cancel_tasks"]

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

"""Crash injection for tests: die like ``kill -9`` at a named point.

`crash_point("enqueue-before-rename")` kills the process with SIGKILL when the environment
variable ``MAILCARRIER_CRASH_AT`` names that point, and does nothing otherwise. The queue calls
it at the instants where a crash is most instructive (between write and fsync, between fsync
and rename, between the server's reply and the durable record, ...); the crash tests start
the real command in a subprocess with the variable set, then restart without it and check
that no recipient was lost. Points: see `POINTS`.
"""

from __future__ import annotations

import os
import signal
from typing import Final

__all__ = ["CRASH_ENV", "POINTS", "crash_point"]

CRASH_ENV: Final = "MAILCARRIER_CRASH_AT"
POINTS: Final = frozenset(
    {
        "enqueue-after-write",  # content written, nothing fsynced
        "enqueue-before-rename",  # fsynced, still a temporary file
        "enqueue-after-rename",  # durable, not yet acknowledged
        "activate-after-move",  # moved to active/, no delivery yet
        "delivery-before-record",  # the server has replied, the verdict is not yet recorded
        "delivery-after-record",  # one verdict recorded
        "notice-before-record",  # a notice is queued, the original not yet marked notified
        "finalize-before-move",  # all verdicts recorded, file still in active/
    }
)


# Read once: the queue passes several crash points per message, and the variable is set
# before the process starts.
_TARGET: Final = os.environ.get(CRASH_ENV, "")


def crash_point(name: str) -> None:
    """SIGKILL this process if MAILCARRIER_CRASH_AT named `name` when it started (a test hook)."""
    if _TARGET and name == _TARGET:
        os.kill(os.getpid(), signal.SIGKILL)

"""Event-loop helpers: `EndOfTurn` and `Deadline`, which the hot paths share, and
`run_event_loop`, which every program of the package runs its loop with.

`EndOfTurn` gathers what is produced during one turn of the event loop (one round of ready
callbacks) and hands all of it to one function, called once at the end of the turn: the
writes of every connection (transport/connection.py), the frames to an agent process
(queue/workers.py), the lines of maillog_file (loghandlers.py), the unlinks of finished
queue files (queue/spool.py). One system call, or one wake-up of a peer, then serves many
producers.

`Deadline` keeps one timer for the earliest of many deadlines: it is armed only when a new
deadline is earlier than the one it is armed for, and when it fires its owner handles every
deadline that has passed and names the next one. A connection's read and drain limits
(transport/connection.py) and the idle limits of parked sessions (delivery/cache.py) cost no
timer per operation this way.

`run_event_loop(coro)` runs a coroutine on uvloop when it is installed (a dependency where it
builds), else on asyncio's own loop: the `mailcarrier` command (cli.py), the queue's agent
processes (queue/workers.py) and the Postfix-native agents (postfix/main.py, which imports it
with `load_event_loop()` before it drops privileges). It first sets the cyclic garbage
collector for a process that holds many live sessions (`tune_collector`): with the default
young generation of 700 objects, thousands of open sessions made every collection walk them
(a fifth of the CPU at 3,000 sessions; bench/PROFILE.md). Programs only: the library's
`send`/`deliver` leave their caller's process as it is.

Neither `EndOfTurn` nor `Deadline` keeps a reference to an event loop between turns (a loop
may key a WeakKeyDictionary of them). This module imports nothing of the package; it sits
with errors.py and printable.py at the bottom of the layers. Nor does it import asyncio
until a loop is asked for: a program that never runs one (``mailcarrier sendmail``, whose
spool and log handlers hold an `EndOfTurn`) does not pay for importing it.
"""

from __future__ import annotations

import gc  # built in; imported here, not when a loop starts (postfix/main.py's preload)
import os
from collections.abc import Callable, Coroutine
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "COLLECTOR_THRESHOLDS",
    "INF",
    "SLACK",
    "Deadline",
    "EndOfTurn",
    "load_event_loop",
    "on_stop_signals",
    "run_event_loop",
    "tune_collector",
]

# gc.set_threshold() of the package's programs: a young generation of 10,000 objects (the
# default is 700), older generations collected half as often (10 -> 20).
COLLECTOR_THRESHOLDS: Final = (10_000, 20, 20)

T = TypeVar("T")

INF: Final = float("inf")
# A timer may fire up to a clock tick early (uvloop's timers have millisecond resolution):
# a deadline this close to the loop's time when the timer fires counts as passed.
SLACK: Final = 0.001


class EndOfTurn(Generic[T]):
    """Items added during one turn of the event loop, handed to `run` together at its end.

    The first `add()` of a turn schedules the call (`call_soon`: after every callback that
    is ready now); `flush()` makes the call at once (before a close, say), and the scheduled
    one then finds nothing to do. Without a running event loop, `add()` calls `run` at once
    with the one item.
    """

    __slots__ = ("_items", "_run")

    def __init__(self, run: Callable[[list[T]], None]) -> None:
        self._run = run
        self._items: list[T] = []

    def add(self, item: T, loop: asyncio.AbstractEventLoop | None = None) -> None:
        """Add `item` to this turn's; `loop` is the running loop when the caller has it at
        hand (looking it up costs a system call on Python 3.11)."""
        items = self._items
        if not items:
            if loop is None:
                import asyncio  # loaded already when a loop runs (see the opening)

                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:  # no event loop: every call is a turn of its own
                    self._run([item])
                    return
            loop.call_soon(self.flush)
        items.append(item)

    def flush(self) -> None:
        """Hand what was added to `run` now (nothing happens when nothing waits)."""
        items = self._items
        if items:
            self._items = []
            self._run(items)

    def __len__(self) -> int:
        """How many items wait for the end of the turn."""
        return len(self._items)


class Deadline:
    """One timer for the earliest of several deadlines, in event-loop time.

    `on_time(now)` runs when the timer fires: it deals with every deadline up to `now` (the
    loop's time plus `SLACK`) and returns the next deadline to arm for, `INF` for none.
    `when` is the deadline the timer is armed for (`INF`: not armed).
    """

    __slots__ = ("_handle", "_on_time", "when")

    def __init__(self, on_time: Callable[[float], float]) -> None:
        self._on_time = on_time
        self._handle: asyncio.TimerHandle | None = None
        self.when = INF

    def at(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        """Make sure the timer fires by `when`: re-armed only when that is earlier than
        the deadline it is armed for."""
        if when < self.when:
            if self._handle is not None:
                self._handle.cancel()
            self._handle = loop.call_at(when, self._fire, loop)
            self.when = when

    def cancel(self) -> None:
        """Disarm the timer."""
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None
        self.when = INF

    def _fire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._handle = None
        self.when = INF
        following = self._on_time(loop.time() + SLACK)
        if following < INF:
            self.at(loop, following)


def load_event_loop() -> bool:
    """Import now the event loop `run_event_loop` will use; True when that is uvloop. For a
    program that drops privileges before it runs its loop (the Postfix-native agents): uvloop
    imports modules of the interpreter (subprocess, ...) that the new user may not be allowed
    to read, and would then be missed without a word."""
    if os.environ.get("MAILCARRIER_EVENT_LOOP", "") == "asyncio":
        return False
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


def on_stop_signals(callback: Callable[[], object]) -> None:
    """Call `callback` on SIGTERM and SIGINT, on the running loop. Outside the main thread
    (an embedding program's) a loop takes no signal handlers: the program decides, and
    nothing is set."""
    import asyncio
    import signal

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, callback)
        except (ValueError, RuntimeError):
            return


def tune_collector() -> None:
    """Set the cyclic collector's thresholds to `COLLECTOR_THRESHOLDS` (see the module text).
    Collections happen as before, only less often: nothing that is garbage stays alive."""
    gc.set_threshold(*COLLECTOR_THRESHOLDS)


def run_event_loop(coro: Coroutine[Any, Any, T]) -> T:
    """Run on uvloop when it is installed (a dependency where it builds), else on asyncio's,
    with `tune_collector()`'s thresholds.

    MAILCARRIER_EVENT_LOOP=asyncio forces the standard loop (for comparisons and debugging).
    """
    tune_collector()
    if load_event_loop():
        import uvloop

        return uvloop.run(coro)
    import asyncio

    return asyncio.run(coro)

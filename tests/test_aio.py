"""aio.py: `EndOfTurn` hands one turn's items over together at its end; `Deadline` keeps
one timer for the earliest of several deadlines; `run_event_loop` runs on uvloop when it is
installed unless MAILCARRIER_EVENT_LOOP=asyncio. Their users' behaviour is tested with
them: tests/transport/test_write_rounds.py and test_deadlines.py (connections),
tests/delivery/test_cache.py (idle limits), tests/queue/test_workers.py (frames),
tests/test_loghandlers.py (maillog_file), tests/queue/test_spool.py (unlinks)."""

from __future__ import annotations

import asyncio
import gc
import importlib.util
import weakref

import pytest

from mailcarrier.aio import (
    COLLECTOR_THRESHOLDS,
    INF,
    SLACK,
    Deadline,
    EndOfTurn,
    on_stop_signals,
    run_event_loop,
)


async def test_one_call_per_turn_with_everything_in_order() -> None:
    runs: list[list[int]] = []
    turn: EndOfTurn[int] = EndOfTurn(runs.append)
    loop = asyncio.get_running_loop()
    loop.call_soon(turn.add, 3)  # a callback ready before the first item: same turn
    turn.add(1)
    turn.add(2, loop)
    assert runs == [] and len(turn) == 2
    await asyncio.sleep(0)
    assert runs == [[1, 2, 3]] and len(turn) == 0
    turn.add(4)
    await asyncio.sleep(0)
    assert runs == [[1, 2, 3], [4]]


async def test_flush_hands_over_at_once_and_the_end_finds_nothing() -> None:
    runs: list[list[str]] = []
    turn: EndOfTurn[str] = EndOfTurn(runs.append)
    turn.add("a")
    turn.flush()
    assert runs == [["a"]]
    turn.flush()  # nothing waits: no call
    await asyncio.sleep(0)
    assert runs == [["a"]]


async def test_items_added_while_running_go_to_the_next_turn() -> None:
    runs: list[list[int]] = []

    def run(items: list[int]) -> None:
        runs.append(items)
        if items == [1]:
            turn.add(2)

    turn: EndOfTurn[int] = EndOfTurn(run)
    turn.add(1)
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert runs == [[1], [2]]


def test_without_an_event_loop_each_item_goes_at_once() -> None:
    runs: list[list[int]] = []
    turn: EndOfTurn[int] = EndOfTurn(runs.append)
    turn.add(1)
    turn.add(2)
    assert runs == [[1], [2]] and len(turn) == 0


def test_nothing_keeps_an_event_loop_alive() -> None:
    loop = asyncio.new_event_loop()
    runs: list[list[int]] = []
    turn: EndOfTurn[int] = EndOfTurn(runs.append)
    timers = Deadline(lambda now: INF)

    async def use() -> None:
        turn.add(1)
        timers.at(asyncio.get_running_loop(), asyncio.get_running_loop().time() + 0.001)
        await asyncio.sleep(0.01)

    loop.run_until_complete(use())
    loop.close()
    gone = weakref.ref(loop)
    del loop
    gc.collect()
    assert gone() is None and runs == [[1]]


class _Clock:
    """Deadlines to watch, and what the timer saw."""

    def __init__(self) -> None:
        self.deadlines: list[float] = []
        self.fired: list[tuple[float, list[float]]] = []

    def on_time(self, now: float) -> float:
        due = [d for d in self.deadlines if d <= now]
        self.deadlines = [d for d in self.deadlines if d > now]
        self.fired.append((now, due))
        return min(self.deadlines, default=INF)


async def test_deadline_arms_only_for_an_earlier_deadline() -> None:
    loop = asyncio.get_running_loop()
    clock = _Clock()
    deadline = Deadline(clock.on_time)
    assert deadline.when == INF
    start = loop.time()
    later, sooner = start + 0.2, start + 0.05
    clock.deadlines = [later, sooner]
    deadline.at(loop, later)
    assert deadline.when == later
    deadline.at(loop, sooner)
    assert deadline.when == sooner
    deadline.at(loop, later)  # later than armed: nothing changes
    assert deadline.when == sooner
    async with asyncio.timeout(5):
        while len(clock.fired) < 2:
            await asyncio.sleep(0.01)
    (first, due_first), (second, due_second) = clock.fired
    assert due_first == [sooner] and first >= sooner
    assert due_second == [later] and second >= later  # re-armed for the next one
    assert second - SLACK <= loop.time()
    assert deadline.when == INF


async def test_deadline_cancel_disarms() -> None:
    loop = asyncio.get_running_loop()
    clock = _Clock()
    deadline = Deadline(clock.on_time)
    deadline.at(loop, loop.time() + 0.01)
    deadline.cancel()
    assert deadline.when == INF
    await asyncio.sleep(0.05)
    assert clock.fired == []
    deadline.at(loop, loop.time() + 0.01)  # armable again
    await asyncio.sleep(0.05)
    assert len(clock.fired) == 1


async def _loop_module() -> str:
    await asyncio.sleep(0)
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


def test_run_event_loop_prefers_uvloop_unless_told(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MAILCARRIER_EVENT_LOOP", raising=False)
    expected = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    assert run_event_loop(_loop_module()) == expected
    monkeypatch.setenv("MAILCARRIER_EVENT_LOOP", "asyncio")
    assert run_event_loop(_loop_module()) == "asyncio"


def test_programs_run_their_loop_with_a_larger_young_generation() -> None:
    """run_event_loop() sets the collector's thresholds for a process with many live
    sessions (the library's entry points, api.py and sending.py, run asyncio.run)."""
    before = gc.get_threshold()
    seen: list[tuple[int, int, int]] = []

    async def look() -> None:
        seen.append(gc.get_threshold())

    try:
        gc.set_threshold(700, 10, 10)
        run_event_loop(look())
        assert seen == [COLLECTOR_THRESHOLDS]
    finally:
        gc.set_threshold(*before)


def test_stop_signals_call_back_on_the_loop() -> None:
    import os
    import signal

    async def main() -> list[str]:
        seen: list[str] = []
        stopped = asyncio.Event()

        def stop() -> None:
            seen.append("stop")
            stopped.set()

        on_stop_signals(stop)
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(stopped.wait(), 5)
        finally:
            loop = asyncio.get_running_loop()
            loop.remove_signal_handler(signal.SIGTERM)
            loop.remove_signal_handler(signal.SIGINT)
        return seen

    assert asyncio.run(main()) == ["stop"]


def test_stop_signals_outside_the_main_thread_set_nothing() -> None:
    """An embedding program's loop in another thread takes no handlers: no error either."""
    import threading

    errors: list[BaseException] = []

    def in_thread() -> None:
        async def main() -> None:
            on_stop_signals(lambda: None)

        try:
            asyncio.run(main())
        except BaseException as exc:
            errors.append(exc)

    thread = threading.Thread(target=in_thread)
    thread.start()
    thread.join(10)
    assert errors == []

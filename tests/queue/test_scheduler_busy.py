"""The queue manager's fleet path (queue/scheduler.py): a delivery that comes back "busy"
(DeliveryResult.busy: the destination was at a fleet limit) is tried again soon, with no
deferral record, no concurrency feedback and nothing written to the queue file; recipients
marked before the limit was met keep their records. In `run_once()`, busy for want of the
shared state server (`fleet_unavailable`) is not waited for: the mail is left queued.

A real clock here (the busy hold is a timer of the event loop), with a hold of 10 ms."""

from __future__ import annotations

import dataclasses
import io
import time
from collections.abc import Callable
from pathlib import Path

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.log import MemoryLog
from mailcarrier.queue.scheduler import QueueManager
from mailcarrier.queue.spool import Spool
from mailcarrier.queue.submit import SubmitOptions, submit_stream
from mailcarrier.queue.window import DestinationWindow
from mailcarrier.status import DeliveryResult, DeliveryStatus, RecipientStatus
from tests.support.settings import queue_settings

HOLD = 0.01  # seconds a busy destination is held back
KEY = ("smtp", "[127.0.0.1]:2525")
OnStatus = Callable[[int, RecipientStatus], None] | None


class BusyAgent:
    """Says "busy" (after marking `mark_first` recipients) to the first `busy_times`
    requests, then sends everything. At each call it notes the queue files' bytes, the
    destination's window and the time, for the test to compare."""

    def __init__(
        self, spool: Spool, busy_times: int = 1, *, mark_first: int = 0, unavailable: bool = False
    ) -> None:
        self.spool = spool
        self.busy_times = busy_times
        self.mark_first = mark_first
        self.unavailable = unavailable
        self.manager: QueueManager | None = None
        self.calls: list[tuple[float, list[str], dict[str, bytes], DestinationWindow | None]] = []

    def _files(self) -> dict[str, bytes]:
        return {
            str(p.relative_to(self.spool.root)): p.read_bytes()
            for sub in ("incoming", "active", "deferred")
            for p in (self.spool.root / sub).rglob("*")
            if p.is_file()
        }

    async def deliver(
        self, request: DeliveryRequest, *, on_status: OnStatus = None
    ) -> DeliveryResult:
        window = None
        if self.manager is not None and KEY in self.manager._windows:
            window = dataclasses.replace(self.manager._windows[KEY])
        addresses = [r.address for r in request.recipients]
        self.calls.append((time.monotonic(), addresses, self._files(), window))
        busy = len(self.calls) <= self.busy_times
        marked = []
        for i, r in enumerate(request.recipients):
            if busy and i >= self.mark_first:
                break
            status = RecipientStatus(
                r.address, DeliveryStatus.SENT, "2.0.0", "250 2.0.0 Ok", "mx[127.0.0.1]:2525"
            )
            if on_status is not None:
                on_status(i, status)
            marked.append(status)
        if busy:
            return DeliveryResult(
                request.queue_id, tuple(marked), None, HOLD, fleet_unavailable=self.unavailable
            )
        return DeliveryResult(request.queue_id, tuple(marked))


def _setup(tmp_path: Path, **options: str) -> tuple[Spool, Settings, MemoryLog]:
    log = MemoryLog()
    settings = queue_settings(tmp_path, **options)
    return Spool(tmp_path, clock=time.time, log=log).ensure(), settings, log


def _submit(spool: Spool, settings: Settings, *recipients: str) -> str:
    options = SubmitOptions(sender="s@example.org", recipients=recipients)
    return submit_stream(
        io.BytesIO(b"Subject: t\n\nbody\n"), options, settings=settings, spool=spool
    )


async def test_a_busy_destination_is_tried_again_soon_with_nothing_recorded(tmp_path: Path) -> None:
    spool, settings, log = _setup(tmp_path)
    agent = BusyAgent(spool, busy_times=2)
    manager = QueueManager(settings, spool, agent, log=log)
    agent.manager = manager
    queue_id = _submit(spool, settings, "a@example.net")
    assert await manager.run_once() == 0
    assert len(agent.calls) == 3 and spool.find(queue_id) is None  # sent at the third try
    (first, _, files, window), (second, _, files2, window2), (third, _, files3, window3) = (
        agent.calls
    )
    # Held back at least the time it was told each time, not the minimal backoff.
    assert second - first >= HOLD and third - second >= HOLD
    # Nothing written to the queue file, no concurrency feedback (the window is as it was).
    assert files == files2 == files3 and list(files) == [f"active/{queue_id}"]
    assert window == window2 == window3 and window is not None and window.failure == 0
    assert not [line for line in log.lines if "deferred" in line]
    assert manager.statistics()["busy_destinations"] == 0


async def test_recipients_marked_before_the_limit_keep_their_records(tmp_path: Path) -> None:
    spool, settings, log = _setup(tmp_path)
    agent = BusyAgent(spool, mark_first=1)
    manager = QueueManager(settings, spool, agent, log=log)
    queue_id = _submit(spool, settings, "a@example.net", "b@example.net")
    await manager.run_once()
    assert [addresses for _, addresses, _, _ in agent.calls] == [
        ["a@example.net", "b@example.net"],
        ["b@example.net"],  # only the one not marked comes back
    ]
    before, after = agent.calls[0][2][f"active/{queue_id}"], agent.calls[1][2][f"active/{queue_id}"]
    # a's verdict is recorded (in the space reserved for it), b's space still empty.
    changed = bytes(x for x, y in zip(after, before, strict=True) if x != y)
    assert changed.startswith(b"status 0 sent 2.0.0 =mx[127.0.0.1]:2525 =250%202.0.0%20Ok ")
    assert b"status 1 " not in after and len(after) == len(before)
    assert spool.find(queue_id) is None


async def test_run_once_leaves_mail_queued_when_the_shared_state_server_is_away(
    tmp_path: Path,
) -> None:
    spool, settings, log = _setup(tmp_path)
    agent = BusyAgent(spool, busy_times=1000, unavailable=True)
    manager = QueueManager(settings, spool, agent, log=log)
    ids = [_submit(spool, settings, f"r{n}@example.net") for n in range(3)]
    files = BusyAgent(spool)._files()
    started = time.monotonic()
    assert await manager.run_once() == 3
    assert time.monotonic() - started < 60  # it ended (a ceiling, not a speed)
    # Each message tried at most once, none deferred: all back in incoming/, unchanged.
    assert len(agent.calls) <= 3
    assert all(spool.find(queue_id) == "incoming" for queue_id in ids)
    assert BusyAgent(spool)._files() == files
    assert log.lines[-1] == (
        "3 messages left in the queue for destinations with fleet limits: "
        "the shared state server cannot be reached"
    )
    assert not [line for line in log.lines if "deferred" in line]

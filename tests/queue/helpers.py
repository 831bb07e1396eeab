"""Helpers of the queue tests: a scripted deliverer (`FakeAgent`) and its verdicts, a spool,
and the real command in a subprocess. The fake clock and the queue's settings are shared with
other packages: tests/support/clock.py and tests/support/settings.py (`queue_settings`)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.log import MemoryLog
from mailcarrier.queue.crash import CRASH_ENV
from mailcarrier.queue.qfile import Envelope, QueueRecipient, status_record
from mailcarrier.queue.spool import Spool
from mailcarrier.status import DeliveryResult, DeliveryStatus, HopStatus, RecipientStatus

Verdict = tuple[DeliveryStatus, str, str]
SENT: Verdict = (DeliveryStatus.SENT, "2.0.0", "250 2.0.0 Ok")
DEFER: Verdict = (
    DeliveryStatus.DEFERRED,
    "4.4.1",
    "connect to x[192.0.2.1]:25: Connection refused",
)
# A 4xx to one RCPT: the recipient is deferred, the site is fine (no hop status).
RCPT_DEFER: Verdict = (
    DeliveryStatus.DEFERRED,
    "4.2.0",
    "host mx.example[192.0.2.1] said: 450 4.2.0 mailbox busy (in reply to RCPT TO command)",
)
BOUNCE: Verdict = (
    DeliveryStatus.BOUNCED,
    "5.1.1",
    "host mx.example[192.0.2.1] said: 550 5.1.1 No such user (in reply to RCPT TO command)",
)


class FakeAgent:
    """Marks each recipient with `verdict(address)`; counts concurrent deliveries. Like the
    real agent, it reports a hop status (status.HopStatus) for a deferral of network trouble
    (a 4.4.x DSN: the site could not be reached), and none for anything else."""

    def __init__(
        self,
        verdict: Callable[[str], Verdict] = lambda _a: SENT,
        action: str = "",
        relay: str = "mx.example[192.0.2.1]:25",
    ) -> None:
        self.verdict = verdict
        self.action = action
        self.relay = relay
        self.requests: list[DeliveryRequest] = []
        self.running = 0
        self.peak = 0
        self.gate: asyncio.Event | None = None

    async def deliver(
        self,
        request: DeliveryRequest,
        *,
        on_status: Callable[[int, RecipientStatus], None] | None = None,
    ) -> DeliveryResult:
        self.requests.append(request)
        self.running += 1
        self.peak = max(self.peak, self.running)
        try:
            await asyncio.sleep(0)
            if self.gate is not None:
                await self.gate.wait()
            out = []
            hop: HopStatus | None = None
            for i, r in enumerate(request.recipients):
                status, dsn, diag = self.verdict(r.address)
                site = status is DeliveryStatus.DEFERRED and dsn.startswith("4.4.")
                relay = self.relay if not site else "none"
                st = RecipientStatus(r.address, status, dsn, diag, relay, action=self.action)
                if on_status is not None:
                    on_status(i, st)
                out.append(st)
                if site and hop is None:
                    hop = HopStatus(dsn, diag)
            return DeliveryResult(request.queue_id, tuple(out), hop)
        finally:
            self.running -= 1

    def delivered(self) -> list[str]:
        return [r.address for req in self.requests for r in req.recipients]


def spool(queue_dir: Path, clock: Callable[[], float] | None = None) -> Spool:
    if clock is None:
        return Spool(queue_dir, log=MemoryLog()).ensure()
    return Spool(queue_dir, clock=clock, log=MemoryLog()).ensure()


def run_cli(
    args: list[str], *, stdin: bytes = b"", crash: str = "", text: bool = False
) -> subprocess.CompletedProcess[Any]:
    """The real command in a subprocess (no crash point inherited; `crash` names one)."""
    env = dict(os.environ)
    env.pop(CRASH_ENV, None)
    if crash:
        env[CRASH_ENV] = crash
    cmd = [sys.executable, "-c", "from mailcarrier.cli import main; main()", *args]
    return subprocess.run(
        cmd,
        input=None if text else stdin,
        capture_output=True,
        text=text,
        env=env,
        timeout=60,
        check=False,
    )


def put_message(
    spool: Spool,
    queue: str,
    sender: str,
    recipients: list[str],
    arrival: float,
    verdicts: dict[int, Verdict] | None = None,
) -> str:
    """A message written straight into `queue` (incoming, deferred, hold, ...) that arrived
    at `arrival`, with a recorded attempt per recipient index in `verdicts`; its queue ID."""
    envelope = Envelope(
        queue_id=spool.new_id(),
        sender=sender,
        recipients=tuple(QueueRecipient(a) for a in recipients),
        arrival_time=arrival,
    )
    with spool.create(envelope) as writer:
        writer.write(b"Subject: shape\r\n\r\nbody\r\n")
        queue_id = writer.commit()
    if queue != "incoming":
        spool.move(queue_id, "incoming", queue)
    if verdicts:
        message = spool.read(queue, queue_id)
        records = spool.records(message)
        for index, (status, dsn, diagnostic) in verdicts.items():
            records.append(status_record(index, status, dsn, "none", diagnostic, arrival))
        records.close()
    return queue_id


MINUTE = 60.0


def known_queue(root: Path, now: float) -> Spool:
    """The queue of the shape and selection tests, its ages counted from `now`: five
    messages in incoming (the default view of queue shape, with active), one in deferred.

    | message | queue    | sender        | pending recipients                 | age      |
    | 1       | incoming | a@example.org | x@, y@example.com (done@ was sent) | 1 min    |
    | 2       | incoming | b@example.org | z@example.net                      | 7 min    |
    | 3       | incoming | <>            | q@Example.COM.                     | 30 min   |
    | 4       | incoming | c@other.org   | r@mail.example.net                 | 3 hours  |
    | 5       | incoming | a@example.org | s@example.com                      | 2 days   |
    | 6       | deferred | d@example.org | t@example.com (mailbox busy)       | 10 min   |
    """
    queue = spool(root)
    rcpts = ["x@example.com", "done@example.com", "y@example.com"]
    put_message(queue, "incoming", "a@example.org", rcpts, now - 1 * MINUTE, {1: SENT})
    put_message(queue, "incoming", "b@example.org", ["z@example.net"], now - 7 * MINUTE)
    put_message(queue, "incoming", "", ["q@Example.COM."], now - 30 * MINUTE)
    put_message(queue, "incoming", "c@other.org", ["r@mail.example.net"], now - 180 * MINUTE)
    put_message(queue, "incoming", "a@example.org", ["s@example.com"], now - 2880 * MINUTE)
    put_message(
        queue, "deferred", "d@example.org", ["t@example.com"], now - 10 * MINUTE, {0: RCPT_DEFER}
    )
    return queue


class RecordingProgress:
    """A `Progress` (progress.py) that keeps what it is told: the total, what is done, and
    how many lines were written outside the bar."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0
        self.outside_calls = 0

    def grow(self, total: int) -> None:
        self.total = max(self.total, total)

    def advance(self, count: int = 1) -> None:
        self.done += count

    @contextlib.contextmanager
    def outside(self) -> Iterator[None]:
        self.outside_calls += 1
        yield

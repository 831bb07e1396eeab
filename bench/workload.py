"""The client side of the throughput benchmarks, run inside a worker process.

`deliver_many()` pushes N messages through `DeliveryAgent.deliver()` from C concurrent tasks
that share one agent and one `ConnectionCache` (the engine path: no queue, content from a file
on disk, as a queue file would be); `aiosmtplib_many()` does the same job with aiosmtplib: C
persistent `SMTP` connections calling `send_message` in a loop. Both return a `Run` with the
wall time and the count of messages the server accepted (and, for mailcarrier, the time the
QUITs of the cached sessions took after the last message); memory is read by the caller.
"""

from __future__ import annotations

import asyncio
import json
import sys
import tempfile
import time
from dataclasses import dataclass
from email import message_from_bytes, policy
from pathlib import Path

from bench.common import LOOPBACK, RECIPIENT, SENDER, install_loop, reset_peak, status_kb


@dataclass(slots=True)
class Run:
    seconds: float
    sent: int
    failed: int
    sessions: int = 0
    cpu_seconds: float = 0.0  # this process's CPU time over the same span
    close_seconds: float = 0.0  # QUIT of the cached sessions after the last message

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def message_bytes(size: int) -> bytes:
    """A plain-text message of exactly `size` bytes (headers included), CRLF lines."""
    head = (
        f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: benchmark\r\n"
        "Message-ID: <bench@example.org>\r\n\r\n"
    ).encode()
    line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    body = line * ((size - len(head)) // len(line) + 1)
    data = head + body[: size - len(head)]
    return data[:-2] + b"\r\n" if not data.endswith(b"\r\n") else data


def write_message(directory: Path, size: int) -> Path:
    """The message of `message_bytes(size)` as a file, written in 1 MB pieces (a 200 MB
    message must not sit in the worker's memory before it is measured)."""
    path = directory / f"message-{size}"
    piece = 1 << 20
    if size <= piece:
        path.write_bytes(message_bytes(size))
        return path
    head = message_bytes(piece)
    body_line = b"The quick brown fox jumps over the lazy dog, again and again and again.\r\n"
    filler = body_line * (piece // len(body_line))
    with path.open("wb") as out:
        out.write(head)
        left = size - len(head)
        while left > 0:
            block = filler[:left] if left < len(filler) else filler
            out.write(block)
            left -= len(block)
        if left == 0 and not block.endswith(b"\r\n"):
            out.seek(size - 2)
            out.write(b"\r\n")
    return path


def _shares(total: int, workers: int) -> list[int]:
    return [total // workers + (1 if i < total % workers else 0) for i in range(workers)]


async def deliver_many(
    port: int,
    content: Path,
    *,
    messages: int,
    concurrency: int,
    log_lines: bool = True,
    overrides: dict[str, str] | None = None,
) -> Run:
    from mailcarrier.config.settings import Settings
    from mailcarrier.delivery.agent import DeliveryAgent
    from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
    from mailcarrier.delivery.request import DeliveryRequest, Recipient
    from mailcarrier.status import DeliveryStatus

    settings = Settings.defaults().with_overrides(overrides or {})
    cache = ConnectionCache(CacheLimits())
    agent = DeliveryAgent(settings, cache=cache)
    nexthop = f"[{LOOPBACK}]:{port}"
    recipients = (Recipient(RECIPIENT),)
    counts = {"sent": 0, "failed": 0}

    async def worker(n: int, share: int) -> None:
        for i in range(share):
            request = DeliveryRequest(
                queue_id=f"B{n:03d}{i:06d}",
                nexthop=nexthop,
                sender=SENDER,
                recipients=recipients,
                content=content,
            )
            result = await agent.deliver(request, log_lines=log_lines)
            if result.recipients[0].status is DeliveryStatus.SENT:
                counts["sent"] += 1
            else:
                counts["failed"] += 1

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(worker(n, s) for n, s in enumerate(_shares(messages, concurrency))))
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    stats = cache.statistics()
    closing = time.perf_counter()
    await cache.close_all()
    closed = time.perf_counter() - closing
    return Run(
        seconds,
        counts["sent"],
        counts["failed"],
        sessions=stats.misses,
        cpu_seconds=cpu,
        close_seconds=closed,
    )


async def aiosmtplib_many(port: int, content: Path, *, messages: int, concurrency: int) -> Run:
    import aiosmtplib

    message = message_from_bytes(content.read_bytes(), policy=policy.SMTP)
    counts = {"sent": 0, "failed": 0}

    async def worker(share: int) -> None:
        client = aiosmtplib.SMTP(hostname=LOOPBACK, port=port, start_tls=False, use_tls=False)
        await client.connect()
        try:
            for _ in range(share):
                errors, _ = await client.send_message(
                    message, sender=SENDER, recipients=[RECIPIENT]
                )
                counts["failed" if errors else "sent"] += 1
        finally:
            await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(worker(s) for s in _shares(messages, concurrency)))
    seconds = time.perf_counter() - start
    return Run(seconds, counts["sent"], counts["failed"], sessions=concurrency)


def _open_tables(overrides: dict[str, str]) -> None:
    """Open the network tables the overrides name (``pgsql:/x.cf``...), as the code is
    imported before the clock: their client library (psycopg: ~0.1 s) loads once per
    process, not inside the measured run. The registry keeps them open, so the agent uses
    the same tables; their connections are made inside the run, as the sessions are."""
    from mailcarrier.tables import open_table
    from mailcarrier.tables.spec import NETWORK_KINDS

    for value in overrides.values():
        for word in value.replace(",", " ").split():
            if word.partition(":")[0] in NETWORK_KINDS:
                open_table(word)


def main(argv: list[str]) -> None:
    """``python -m bench.workload CLIENT LOOP PORT MESSAGES CONCURRENCY SIZE [OVERRIDES]``:
    one run in this (fresh) process; prints one JSON line with the figures and the memory
    peak. OVERRIDES (mailcarrier only) is a JSON object of main.cf parameters."""
    client, loop_name, port, messages, concurrency, size = argv[:6]
    overrides: dict[str, str] = json.loads(argv[6]) if len(argv) > 6 else {}
    loop = install_loop(loop_name)
    # Import everything first, so the memory baseline includes the code, not the traffic.
    import aiosmtplib  # noqa: F401

    import mailcarrier.delivery.agent  # noqa: F401

    _open_tables(overrides)
    with tempfile.TemporaryDirectory(prefix="mc-bench-") as tmp:
        content = write_message(Path(tmp), int(size))
        baseline = status_kb("VmRSS")
        peak_reset = reset_peak()
        if client == "mailcarrier":
            from mailcarrier.aio import tune_collector

            tune_collector()  # what the package's programs run with (aio.run_event_loop)
            coro = deliver_many(
                int(port),
                content,
                messages=int(messages),
                concurrency=int(concurrency),
                overrides=overrides,
            )
        else:
            coro = aiosmtplib_many(
                int(port), content, messages=int(messages), concurrency=int(concurrency)
            )
        run = asyncio.run(coro)
    peak = status_kb("VmHWM")
    print(
        json.dumps(
            {
                "client": client,
                "loop": loop,
                "seconds": run.seconds,
                "sent": run.sent,
                "failed": run.failed,
                "sessions": run.sessions,
                "rate": run.rate,
                "cpu_seconds": run.cpu_seconds,
                "close_seconds": run.close_seconds,
                "baseline_kb": baseline,
                "peak_kb": peak,
                "peak_reset": peak_reset,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1:])

"""CPU per message of the queue drain with no network: the scheduler over memory connections.

``python -m bench.drain_harness [--messages N] [--rounds R] [--profile FILE]`` queues N
one-recipient 4 KB messages once (as `mailcarrier.submit_sync()` does: a template spool),
then for each round copies the template into a fresh queue_directory and runs what
``mailcarrier run --once`` runs: `QueueManager.run_once()` with the queue's `DeliveryAgent`
(connection cache, concurrency 20, the maillog written in blocks), its connector replaced
by `SmtpResponder` over memory connections (transport/memory.py). It prints the process CPU
time per message (user + system, the unlink thread included), min and median over R rounds:
the queue's own cost (reading, records, scheduling, removal) plus the engine's, without the
kernel's network side and the server. ``--profile FILE`` writes a cProfile of one more round
(call counts; cProfile inflates small functions); ``--bytecodes`` counts the Python bytecodes
run per message instead (exact, whatever the machine's load; the unlink thread not counted);
``--queue-only`` replaces the agent by one that marks each recipient sent at once (the queue's own
cost). Compare two trees by pointing
``PYTHONPATH`` at each one's ``src`` (bench/PROFILE.md).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.common import RECIPIENT, SENDER, install_loop
from bench.native_harness import BytecodeCounter

if TYPE_CHECKING:
    from mailcarrier.config.settings import Settings
    from mailcarrier.log import LogSink
from bench.workload import message_bytes

SIZE = 4096


def _settings(queue: Path, maillog: Path) -> Settings:
    from mailcarrier.config.settings import Settings as Config

    return Config.defaults().with_overrides(
        {
            "queue_directory": str(queue),
            "relayhost": "[198.51.100.1]:25",
            "maillog_file": str(maillog),
            "smtp_destination_concurrency_limit": "20",
            "smtp_connection_cache_on_demand": "yes",
        }
    )


def make_template(root: Path, messages: int) -> Path:
    """A queue_directory holding `messages` queued messages."""
    import mailcarrier

    queue = root / "template"
    config = _settings(queue, root / "unused.log")
    content = message_bytes(SIZE)
    for _ in range(messages):
        mailcarrier.submit_sync(content, sender=SENDER, recipients=[RECIPIENT], config=config)
    return queue


class InstantAgent:
    """A deliverer that marks every recipient sent at once and logs its line, as the agent
    does: the drain with it is the queue's own cost (``--queue-only``)."""

    def __init__(self, log: LogSink) -> None:
        self.log = log
        self.cache = None

    async def deliver(self, request: Any, *, on_status: Any = None) -> Any:
        from mailcarrier.log import delivery_line
        from mailcarrier.status import DeliveryResult, DeliveryStatus, RecipientStatus

        done = []
        for i, rcpt in enumerate(request.recipients):
            status = RecipientStatus(
                rcpt.address, DeliveryStatus.SENT, "2.0.0", "250 2.0.0 Ok", "sink[198.51.100.1]:25"
            )
            if on_status is not None:
                on_status(i, status)
            line = delivery_line(request.queue_id, status)
            self.log.info(request.transport, line)
            done.append(status)
        await asyncio.sleep(0)
        return DeliveryResult(request.queue_id, tuple(done))


async def _drain(settings: Settings, queue_only: bool = False) -> None:
    from mailcarrier.cli_support import make_log
    from mailcarrier.queue.scheduler import QueueManager
    from mailcarrier.queue.spool import open_spool
    from mailcarrier.queue.workers import make_agent
    from mailcarrier.transport.memory import MemoryConnector, SmtpResponder

    with contextlib.ExitStack() as stack:
        log = make_log(settings, sys.stderr, stack, daemon=True)  # maillog_file only
        spool = open_spool(settings, log=log)
        agent: Any = InstantAgent(log) if queue_only else make_agent(settings, log)
        agent.connector = MemoryConnector(lambda peer: SmtpResponder())
        manager = QueueManager(settings, spool, agent, log=log)
        async with manager.running():
            await manager.run_once()
        if agent.cache is not None:
            await agent.cache.close_all()


def prepare(template: Path, work: Path) -> None:
    """A fresh copy of the template queue in `work`, no maillog."""
    shutil.rmtree(work / "queue", ignore_errors=True)
    (work / "maillog").unlink(missing_ok=True)
    shutil.copytree(template, work / "queue")


def one_round(
    template: Path, work: Path, messages: int, profiler: Any = None, queue_only: bool = False
) -> float:
    """`prepare`, then drain the queue; CPU seconds per message."""
    prepare(template, work)
    return drain_round(work, messages, profiler, queue_only)


def drain_round(work: Path, messages: int, profiler: Any = None, queue_only: bool = False) -> float:
    """Drain the queue prepared in `work` (`profiler`: enabled around it); CPU seconds per
    message."""
    queue = work / "queue"
    maillog = work / "maillog"
    settings = _settings(queue, maillog)
    start = time.process_time()
    if profiler is not None:
        profiler.enable()
    asyncio.run(_drain(settings, queue_only))
    if profiler is not None:
        profiler.disable()
    cpu = time.process_time() - start
    sent = maillog.read_text(encoding="utf-8").count(" status=sent ")
    if sent != messages:
        raise RuntimeError(f"delivered {sent} of {messages}")
    if any((queue / "active").iterdir()):
        raise RuntimeError("messages left in active/")
    return cpu / messages


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.drain_harness", description=__doc__)
    parser.add_argument("--messages", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--loop", default="uvloop")
    parser.add_argument("--profile", default="", metavar="FILE")
    parser.add_argument(
        "--queue-only", action="store_true", help="no agent: the queue's cost alone"
    )
    parser.add_argument(
        "--bytecodes", action="store_true", help="count the bytecodes run per message instead"
    )
    parser.add_argument("--dir", default="/var/tmp", help="where the queues are made (a disk)")
    args = parser.parse_args(argv)
    loop = install_loop(args.loop)
    with tempfile.TemporaryDirectory(prefix="mc-drain-harness-", dir=args.dir) as tmp:
        root = Path(tmp)
        template = make_template(root, args.messages)
        one_round(
            template, root, args.messages, queue_only=args.queue_only
        )  # warm-up: imports, caches
        if args.bytecodes:
            counter = BytecodeCounter()
            one_round(template, root, args.messages, counter, args.queue_only)
            print(counter.report(args.messages, 150))
            return
        figures = [
            one_round(template, root, args.messages, queue_only=args.queue_only)
            for _ in range(args.rounds)
        ]
        if args.profile:
            profiler = cProfile.Profile()
            one_round(template, root, args.messages, profiler, args.queue_only)
            profiler.dump_stats(args.profile)
    print(
        f"{loop}: drain CPU per message, {args.rounds} rounds of {args.messages}: "
        f"min {min(figures) * 1e6:.1f} us, median {statistics.median(figures) * 1e6:.1f} us "
        f"({', '.join(f'{f * 1e6:.1f}' for f in figures)})"
    )


if __name__ == "__main__":
    main()

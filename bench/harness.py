"""CPU per message of the delivery engine with no network: the in-memory harness.

``python -m bench.harness [--messages N] [--tasks T] [--rounds R]`` pushes N messages (4 KB,
from a file, as from a queue file) through one `DeliveryAgent` and its connection cache from
T concurrent tasks, against `SmtpResponder` over memory connections (transport/memory.py):
everything but the kernel and the server, on uvloop when installed. It prints the process
CPU time per message, the minimum over R rounds after a warm-up, which varies far less than
wall-clock rates on a shared machine: the tool for A/B comparisons of Python-side changes
(bench/PROFILE.md). An agent without an injected connector (older code) gets the memory
connections by patching its module's `open_tcp` instead.
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import RECIPIENT, SENDER, install_loop
from bench.workload import write_message


async def _cpu_per_message(content: Path, messages: int, tasks: int, warmup: int) -> float:
    from mailcarrier.config.settings import Settings
    from mailcarrier.delivery import agent as agent_module
    from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
    from mailcarrier.delivery.request import DeliveryRequest, Recipient
    from mailcarrier.transport.memory import MemoryConnector, SmtpResponder

    connector = MemoryConnector(lambda peer: SmtpResponder())
    cache = ConnectionCache(CacheLimits())
    kwargs: dict[str, Any] = {"cache": cache}
    if "connector" in inspect.signature(agent_module.DeliveryAgent).parameters:
        kwargs["connector"] = connector
    else:  # before the connector was injected

        async def open_tcp(peer: Any, **_: Any) -> Any:
            return await connector.open(peer, timeout=0)

        agent_module.open_tcp = open_tcp  # type: ignore[attr-defined]
    agent = agent_module.DeliveryAgent(Settings.defaults(), **kwargs)
    recipients = (Recipient(RECIPIENT),)

    async def worker(n: int, share: int) -> None:
        for i in range(share):
            request = DeliveryRequest(
                queue_id=f"B{n:03d}{i:06d}",
                nexthop="[198.51.100.1]:25",
                sender=SENDER,
                recipients=recipients,
                content=content,
            )
            await agent.deliver(request, log_lines=False)

    async def run(count: int) -> None:
        shares = [count // tasks + (1 if i < count % tasks else 0) for i in range(tasks)]
        await asyncio.gather(*(worker(n, s) for n, s in enumerate(shares)))

    await run(warmup)
    start = time.process_time()
    await run(messages)
    cpu = time.process_time() - start
    await cache.close_all()
    return cpu / messages


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.harness", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--tasks", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--loop", default="uvloop")
    args = parser.parse_args(argv)
    loop = install_loop(args.loop)
    with tempfile.TemporaryDirectory() as tmp:
        content = write_message(Path(tmp), 4096)
        figures = [
            asyncio.run(_cpu_per_message(content, args.messages, args.tasks, 500))
            for _ in range(args.rounds)
        ]
    print(
        f"{loop}: CPU per message, min of {args.rounds} rounds of {args.messages} over "
        f"{args.tasks} tasks: {min(figures) * 1e6:.1f} us "
        f"({', '.join(f'{f * 1e6:.1f}' for f in figures)})"
    )


if __name__ == "__main__":
    main()

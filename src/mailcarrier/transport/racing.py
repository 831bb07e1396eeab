"""RFC 8305 ("Happy Eyeballs v2") connection racing between the addresses of one server.

`race_connect()` starts a connection attempt to the first candidate, and another to the next
each time `delay` passes without success or an attempt fails (RFC 8305 5: "Connection
Attempt Delay", 250 ms recommended); the first to connect wins and every other attempt is
cancelled or closed. Candidates must be equally preferred (one MX preference level): racing
never lets a less preferred MX host win over a better one. Address ordering (interleaving the
families) is routing/selection.py's job; this module only races what it is given.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field

from mailcarrier.errors import TransportError
from mailcarrier.transport.connection import Connection, Peer

__all__ = ["RaceResult", "race_connect"]


@dataclass(slots=True)
class RaceResult:
    """The winner (if any), and what happened to the candidates that were tried.

    `failed` lists the connect errors in the order they happened; `untried` are the
    candidates never started (they stay available for a later attempt, in order).
    """

    connection: Connection | None = None
    peer: Peer | None = None
    failed: list[TransportError] = field(default_factory=list)
    untried: list[Peer] = field(default_factory=list)


async def race_connect(
    candidates: Sequence[Peer],
    connect: Callable[[Peer], Awaitable[Connection]],
    *,
    delay: float,
) -> RaceResult:
    result = RaceResult()
    pending: dict[asyncio.Task[Connection], Peer] = {}
    queue = list(candidates)
    try:
        while queue or pending:
            if queue:
                peer = queue.pop(0)
                pending[asyncio.ensure_future(connect(peer))] = peer
            done, _ = await asyncio.wait(
                pending,
                timeout=delay if queue else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
            for task in done:
                peer = pending.pop(task)
                exc = task.exception()
                if exc is None:
                    if result.connection is None:
                        result.connection, result.peer = task.result(), peer
                    else:  # two finished in the same instant: keep the first
                        task.result().abort()
                elif isinstance(exc, TransportError):
                    result.failed.append(exc)
                else:
                    raise exc
            if result.connection is not None:
                break
    finally:
        for task in pending:
            task.cancel()
        for task in pending:
            with contextlib.suppress(BaseException):
                conn = await task
                conn.abort()
    result.untried = queue
    return result

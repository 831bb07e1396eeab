"""Helpers of the SQL fault tests: a listener that accepts and never answers, a dead port,
an rng that tries hosts in the order they are listed, and a loop ticker."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from tests.support.peers.aiosmtpd_server import free_port

T = TypeVar("T")


@contextmanager
def silent_listener() -> Iterator[int]:
    """A TCP port on 127.0.0.1 whose connections complete (the kernel accepts them) and
    then hear nothing, ever: a server slow past any timeout."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield int(sock.getsockname()[1])


def dead_port() -> int:
    """A port nobody listens on (connections are refused)."""
    return free_port()


class InOrder:
    """Stands in for random.Random in HostPool: the first candidate, i.e. listed order."""

    def choice(self, seq: Sequence[T]) -> T:
        return seq[0]


async def ticks_while(coro: asyncio.Future[T] | asyncio.Task[T]) -> tuple[T | BaseException, int]:
    """Await `coro` while counting 10 ms ticks of this loop: a blocked loop would not tick."""
    count = 0
    task = asyncio.ensure_future(coro)
    while not task.done():
        await asyncio.sleep(0.01)
        count += 1
    exc = task.exception()
    return (exc if exc is not None else task.result()), count

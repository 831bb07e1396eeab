"""Servers for the table tests, each on its own event loop in a thread (so synchronous
callers such as ``mailcarrier map -q`` and async tests alike can use them).

`NetstringServer(answer)` is a socketmap server: each request netstring's payload goes to
`answer`, whose result is sent back as a netstring (bytes), sent as it is (`Raw`), or makes
the server close the connection (`CLOSE`, or after sending with ``Raw(data, close=True)``)
or never answer (`STALL`). `LineServer(answer)`
does the same for line protocols (tcp_table, memcache): `answer` gets each line with its
newline and returns the bytes to send (b"" for nothing). Both listen on 127.0.0.1 at a free
port, or on a UNIX-domain socket with `unix_path`; they record every request (`requests`) and
count connections (`connections`). `start()` returns once listening; `stop()` closes the
listener and every connection.
"""

from __future__ import annotations

import abc
import asyncio
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final, Self

from tests.support.peers.aiosmtpd_server import free_port


@dataclass(frozen=True)
class Raw:
    data: bytes
    close: bool = False  # then close the connection


CLOSE: Final = object()
STALL: Final = object()
Reply = bytes | Raw | object


class BackgroundServer(abc.ABC):
    def __init__(self, *, unix_path: Path | None = None) -> None:
        self.unix_path = unix_path
        self.port = 0 if unix_path else free_port()
        self.requests: list[bytes] = []
        self.connections = 0
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.server: asyncio.AbstractServer | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.tasks: set[asyncio.Task[None]] = set()

    @property
    def inet(self) -> str:
        return f"127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"inet:{self.inet}"

    @abc.abstractmethod
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """One client's requests and replies (the protocol of the subclass)."""

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        self.writers.add(writer)
        task = asyncio.current_task()
        if task is not None:
            self.tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        except asyncio.CancelledError:
            pass  # stop(): ended quietly (a cancelled connection task is logged as an error)
        finally:
            self.writers.discard(writer)
            if task is not None:
                self.tasks.discard(task)
            writer.close()

    async def _start(self) -> None:
        if self.unix_path is not None:
            self.server = await asyncio.start_unix_server(self._client, str(self.unix_path))
        else:
            self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    def start(self) -> Self:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)
        return self

    async def _stop(self) -> None:
        if self.server is not None:
            self.server.close()
        for writer in list(self.writers):
            writer.close()
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    def drop_connections(self) -> None:
        """Close every client connection (the server stays up): a restart, as clients see it."""

        async def drop() -> None:
            for writer in list(self.writers):
                writer.close()

        asyncio.run_coroutine_threadsafe(drop(), self.loop).result(10)

    def stop(self) -> None:
        if self.thread.is_alive():
            asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(10)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(10)


async def _send(writer: asyncio.StreamWriter, reply: Reply, wrap: Callable[[bytes], bytes]) -> bool:
    """Send `reply`; False when the connection is to end."""
    if reply is CLOSE:
        return False
    if reply is STALL:
        await asyncio.sleep(3600)
        return False
    data = reply.data if isinstance(reply, Raw) else wrap(reply)  # type: ignore[arg-type]
    writer.write(data)
    await writer.drain()
    return not (isinstance(reply, Raw) and reply.close)


class NetstringServer(BackgroundServer):
    def __init__(self, answer: Callable[[bytes], Reply], *, unix_path: Path | None = None):
        super().__init__(unix_path=unix_path)
        self.answer = answer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            head = await reader.readuntil(b":")
            payload = await reader.readexactly(int(head[:-1]))
            if await reader.readexactly(1) != b",":
                return
            self.requests.append(payload)
            if not await _send(writer, self.answer(payload), lambda d: b"%d:%s," % (len(d), d)):
                return


class LineServer(BackgroundServer):
    def __init__(self, answer: Callable[[bytes], Reply], *, unix_path: Path | None = None):
        super().__init__(unix_path=unix_path)
        self.answer = answer

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            line = await reader.readline()
            if not line:
                return
            self.requests.append(line)
            if not await _send(writer, self.answer(line), lambda d: d):
                return

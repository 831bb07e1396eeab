"""The proxymap(8) client of the Postfix-native mode: ``proxy:type:name`` tables asked through
Postfix's ``private/proxymap`` socket, as dict_proxy.c asks it.

`ProxymapClient(path)` is a `tables.proxy.ProxyService`. On a new connection the server speaks
first (``protocol=proxymap_protocol``); then each request is one attr0 list and its reply
another, in released Postfix's protocol (3.x up to 3.10):

    open:   request=open, table=TYPE:NAME, flags=N          -> status, flags
    lookup: request=lookup, table=TYPE:NAME, flags=N, key=K -> status, value
    update: request=update, table=TYPE:NAME, flags=N, key=K, value=V -> status
    delete: request=delete, table=TYPE:NAME, flags=N, key=K -> status

Updates and deletes are proxywrite(8)'s: `for_writing()` is the client of the instance's
``private/proxywrite`` service (the same program and protocol), which smtp(8) uses for its
SASL authentication failure cache.

Connections are kept and reused (one per request in flight), on the table loop
(tables/netloop.py). A connection that fails or is closed by the server (proxymap exits
after max_idle or max_use) is dropped and the request tried once more on a new one, as
clnt_stream_recover() does; a second failure is `TableLookupError` (the delivery is deferred).
Each request has a deadline (`timeout`). Statuses are interpreted by tables/proxy.py.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Final

from mailcarrier.postfix.attr import AttrError, AttrList, AttrParser, as_int, encode, expect
from mailcarrier.tables.base import TableLookupError

__all__ = ["ProxymapClient"]

DEFAULT_TIMEOUT: Final = 30.0


class _Stream:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.parser = AttrParser()

    async def read_list(self) -> AttrList:
        while True:
            found = self.parser.next_list()
            if found is not None:
                return found
            data = await self.reader.read(4096)
            self.parser.feed(data)
            if not data:
                found = self.parser.next_list()
                if found is None:
                    raise AttrError("connection closed by the server")
                return found

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class ProxymapClient:
    """Requests to one proxymap service (`path`: ``$queue_directory/private/proxymap``)."""

    def __init__(
        self,
        path: Path,
        *,
        service: str = "proxymap",
        timeout: float = DEFAULT_TIMEOUT,
        write_service: str = "proxywrite",
    ):
        self.path = path
        self.service = service
        self.timeout = timeout
        self.write_service = write_service
        self._idle: list[_Stream] = []
        self._writer: ProxymapClient | None = None

    def for_writing(self) -> ProxymapClient:
        """The client of proxywrite, beside this service's socket (made once)."""
        if self.service == self.write_service:
            return self
        if self._writer is None:
            self._writer = ProxymapClient(
                self.path.with_name(self.write_service),
                service=self.write_service,
                timeout=self.timeout,
                write_service=self.write_service,
            )
        return self._writer

    async def _connect(self) -> _Stream:
        reader, writer = await asyncio.open_unix_connection(str(self.path))
        stream = _Stream(reader, writer)
        hello = expect(await stream.read_list(), ["protocol"])
        if hello[0] != b"proxymap_protocol":
            stream.close()
            raise AttrError(f"unexpected protocol {hello[0][:40]!r}")
        return stream

    async def _request(self, pairs: list[tuple[str, str | int]]) -> AttrList:
        problem = ""
        for _ in range(2):
            stream = self._idle.pop() if self._idle else None
            try:
                async with asyncio.timeout(self.timeout):
                    if stream is None:
                        stream = await self._connect()
                    stream.writer.write(encode(pairs))
                    await stream.writer.drain()
                    reply = await stream.read_list()
            except (OSError, AttrError, TimeoutError, EOFError) as exc:
                if stream is not None:
                    stream.close()
                problem = str(exc) or type(exc).__name__
                continue
            self._idle.append(stream)
            return reply
        raise TableLookupError(f"service {self.service}: {problem}")

    async def open(self, table: str, instance_flags: int) -> tuple[int, int]:
        reply = await self._request(
            [("request", "open"), ("table", table), ("flags", instance_flags)]
        )
        try:
            status, flags = expect(reply, ["status", "flags"])
            return as_int(status, "status"), as_int(flags, "flags")
        except AttrError as exc:
            raise TableLookupError(f"service {self.service}: {exc}") from None

    async def lookup(
        self, table: str, instance_flags: int, flags: int, key: str
    ) -> tuple[int, int, str]:
        reply = await self._request(
            [("request", "lookup"), ("table", table), ("flags", flags), ("key", key)]
        )
        try:
            status, value = expect(reply, ["status", "value"])
            return as_int(status, "status"), flags, value.decode("utf-8", "surrogateescape")
        except AttrError as exc:
            raise TableLookupError(f"service {self.service}: {exc}") from None

    async def _status(self, pairs: list[tuple[str, str | int]]) -> int:
        reply = await self._request(pairs)
        try:
            (status,) = expect(reply, ["status"])
            return as_int(status, "status")
        except AttrError as exc:
            raise TableLookupError(f"service {self.service}: {exc}") from None

    async def update(self, table: str, flags: int, key: str, value: str) -> int:
        return await self._status(
            [("request", "update"), ("table", table), ("flags", flags), ("key", key),
             ("value", value)]
        )  # fmt: skip

    async def delete(self, table: str, flags: int, key: str) -> int:
        return await self._status(
            [("request", "delete"), ("table", table), ("flags", flags), ("key", key)]
        )

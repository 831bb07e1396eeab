"""``socketmap:inet:host:port:name`` and ``socketmap:unix:/path:name``: Sendmail's socketmap
protocol, as Postfix's dict_sockmap.c speaks it (socketmap_table(5)).

A lookup sends one netstring ``name key`` and reads one netstring reply: ``OK data`` (found:
`data`, possibly empty), ``NOTFOUND`` (not found), ``TEMP reason``, ``TIMEOUT reason`` or
``PERM reason`` (the lookup fails with the warning ``socketmap:NAME socketmap server
temporary error: reason``; PERM, Postfix's DICT_ERR_CONFIG, fails it too: callers defer
either way). Anything else is an "unknown error". The key is sent as given (a pattern table:
no case folding, only full keys); one longer than 10000 bytes is "not found" with Postfix's
warning, a reply longer than 100000 bytes fails the lookup (socketmap_max_query_size and
socketmap_max_reply_size's defaults). Connecting, sending and receiving each have 100
seconds; a connection is reused, closed after 10 seconds idle or 100 seconds of life, and a
server that closed it is asked again once on a new one (a server restart stays unseen).

Connections are shared by every table naming the same server (endpoint.py, on the table
loop); the lookup itself is `SocketmapTable.lookup` / `lookup_async`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mailcarrier.printable import printable
from mailcarrier.tables.base import Table, TableError, TableLookupError
from mailcarrier.tables.endpoint import EndpointError, Stream, parse_endpoint, shared_pool
from mailcarrier.tables.netloop import run_async, run_sync

__all__ = ["SocketmapLimits", "SocketmapTable", "netstring", "open_socketmap"]


@dataclass(frozen=True, slots=True)
class SocketmapLimits:
    timeout: float = 100  # connect, send, receive (DICT_SOCKMAP_DEF_TIMEOUT)
    max_reply: int = 100000  # socketmap_max_reply_size
    max_query: int = 10000  # socketmap_max_query_size
    max_idle: float = 10
    max_ttl: float = 100


DEFAULT_LIMITS: Final = SocketmapLimits()
_STATUS: Final = {"TEMP": "temporary", "TIMEOUT": "timeout", "PERM": "permanent"}


def netstring(data: bytes) -> bytes:
    """``len:data,``"""
    return b"%d:%s," % (len(data), data)


class NetstringError(Exception):
    """netstring_strerror()'s text: unexpected disconnect, time limit exceeded, ..."""

    def __init__(self, text: str, *, eof: bool = False) -> None:
        super().__init__(text)
        self.eof = eof


async def read_netstring(stream: Stream, limit: int) -> bytes:
    """One netstring's payload (netstring_get()), `NetstringError` when it cannot be read."""
    try:
        length = 0
        while True:
            byte = await stream.read_byte()
            if not byte:
                raise NetstringError("unexpected disconnect", eof=True)
            if byte == b":":
                break
            if not byte.isdigit():
                raise NetstringError("input format error")
            length = length * 10 + int(byte)
            if limit and length > limit:
                raise NetstringError("input exceeds size limit")
        payload = await stream.read_exactly(length)
        if await stream.read_byte() != b",":
            raise NetstringError("input format error")
    except EndpointError as exc:
        if exc.kind == "timeout":
            raise NetstringError("time limit exceeded") from None
        raise NetstringError("unexpected disconnect", eof=True) from None
    return payload


class SocketmapTable(Table):
    kind = "socketmap"
    fixed = False
    pattern = True
    network = True

    def __init__(self, spec: str, limits: SocketmapLimits = DEFAULT_LIMITS) -> None:
        super().__init__(spec)
        server, sep, name = spec.removeprefix("socketmap:").rpartition(":")
        if not sep or not server:
            raise TableError(f"{spec}: socketmap requires server:socketmap argument")
        self.name = name
        self.limits = limits
        self.pool = shared_pool(
            "socketmap",
            parse_endpoint(server, where=spec),
            timeout=limits.timeout,
            max_idle=limits.max_idle,
            max_ttl=limits.max_ttl,
        )

    def lookup(self, key: str) -> str | None:
        return run_sync(self._lookup(key))

    async def lookup_async(self, key: str) -> str | None:
        return await run_async(self._lookup(key))

    def _fail(self, reason: str) -> TableLookupError:
        self.lookup_warnings.append(f"table {self.spec} lookup error: {reason}")
        return TableLookupError(f"{self.spec}: lookup error: {reason}")

    async def _lookup(self, key: str) -> str | None:
        data = key.encode("utf-8", "surrogateescape")
        if self.limits.max_query and len(data) > self.limits.max_query:
            shown = printable(key[:100])
            self.lookup_warnings.append(
                f"table {self.spec} query too large: '{shown}', returning 'not found'"
            )
            return None
        request = netstring(self.name.encode("utf-8", "surrogateescape") + b" " + data)
        reply = await self._exchange(request)
        return self._answer(reply.decode("utf-8", "surrogateescape"))

    async def _exchange(self, request: bytes) -> bytes:
        """Send, receive; a connection the server closed is retried once on a new one."""
        for attempt in (0, 1):
            try:
                stream = await self.pool.acquire()
            except EndpointError as exc:
                self.lookup_warnings.append(str(exc))
                raise self._fail(exc.reason) from None
            try:
                await stream.send(request)
                reply = await read_netstring(stream, self.limits.max_reply)
            except (EndpointError, NetstringError) as exc:
                self.pool.discard(stream)
                problem = _problem(exc)
                if attempt == 0 and problem.eof:
                    continue
                raise self._fail(str(problem)) from None
            except BaseException:
                self.pool.discard(stream)
                raise
            self.pool.release(stream)
            return reply
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(self, reply: str) -> str | None:
        status, sep, payload = reply.partition(" ")
        if status == "OK":
            return payload.split("\0", 1)[0]  # a C string in Postfix
        if status == "NOTFOUND":
            return None
        kind = _STATUS.get(status, "unknown")
        reason = printable(payload.lstrip()[:200]) if sep else ""
        detail = f": {reason}" if reason else ""
        message = f"{self.spec} socketmap server {kind} error{detail}"
        self.lookup_warnings.append(message)
        raise TableLookupError(message)


def _problem(exc: EndpointError | NetstringError) -> NetstringError:
    if isinstance(exc, NetstringError):
        return exc
    if exc.kind == "timeout":
        return NetstringError("time limit exceeded")
    return NetstringError("unexpected disconnect", eof=True)


def open_socketmap(name: str, limits: SocketmapLimits = DEFAULT_LIMITS) -> SocketmapTable:
    return SocketmapTable(f"socketmap:{name}", limits)

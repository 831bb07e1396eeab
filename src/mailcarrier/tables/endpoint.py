"""Client streams to the one server of a memcache, socketmap or tcp table (auto_clnt(3)).

`parse_endpoint("inet:127.0.0.1:11211")` reads the server as Postfix's auto_clnt_create() and
inet_connect() do: ``inet:host:port`` (``[ipv6]:port`` too, a port may be a service name),
``unix:/path`` (``local:`` is taken as ``unix:``), or with `transport` given (tcp: names a
bare ``host:port``) that transport for a name without one. A bad name is a `TableError`.

`StreamPool(endpoint, timeout=...)` hands out `Stream`s: one connection per caller at a time,
idle ones kept for the next lookup unless the server closed them meanwhile (auto_clnt's read
event), closed after `max_idle` seconds without use and, from their next release on, after
`max_ttl` seconds of life (0: never). Connecting and each read and write have `timeout`
(None: no limit); a
line may have at most `line_limit` bytes before its LF (each kind sets it from Postfix's
bound). Failures are `EndpointError`, whose text is errno's as Postfix's ``%m`` prints it
(``connect to 127.0.0.1:11211: Connection refused``). Everything runs on the table loop
(netloop.py); a stream from another loop (a forked child's) is forgotten, never used.

`shared_pool(kind, endpoint, ...)` is the process's one pool for a server (socketmap and tcp
tables, which have no configuration file to be cached by, share connections through it).
This module does not know the protocols: memcache.py, socketmap.py and tcp.py speak them.
netcore.HostPool is the many-server pool of the SQL and LDAP tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import socket
from dataclasses import dataclass
from typing import Final

from mailcarrier.tables.base import TableError

__all__ = ["Endpoint", "EndpointError", "Stream", "StreamPool", "parse_endpoint", "shared_pool"]

MAX_IDLE_STREAMS: Final = 4


class EndpointError(Exception):
    """A connection failed, timed out, or the peer sent too much or closed it.

    `kind` is ``connect``, ``eof``, ``timeout`` or ``size``; `reason` errno's text or the
    problem (``Connection refused``, ``Connection timed out``)."""

    def __init__(self, kind: str, reason: str, text: str = "") -> None:
        super().__init__(text or reason)
        self.kind = kind
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Where a server listens: `text` is the endpoint as Postfix names it in its messages
    (``127.0.0.1:11211``, ``/path/to/socket``)."""

    text: str
    host: str = ""
    port: int = 0
    path: str = ""

    @property
    def unix(self) -> bool:
        return bool(self.path)


def _port(service: str, where: str) -> int:
    if service.isascii() and service.isdigit():
        return int(service)
    try:
        return socket.getservbyname(service, "tcp")
    except OSError:
        raise TableError(f"{where}: unknown service: {service}/tcp") from None


def _host_port(text: str, where: str) -> tuple[str, int]:
    """host_port(): ``[host]:port``, ``host:port``; the port is required."""
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or not rest.startswith(":"):
            raise TableError(f"{where}: missing service information: {text}")
        service = rest[1:]
    else:
        host, sep, service = text.rpartition(":")
        if not sep:
            raise TableError(f"{where}: missing service information: {text}")
    if not host or not service:
        raise TableError(f"{where}: missing host or service information: {text}")
    return host, _port(service, where)


def parse_endpoint(text: str, *, where: str, transport: str = "") -> Endpoint:
    """``inet:host:port`` or ``unix:/path``; `transport` for a name that has none."""
    kind, sep, rest = text.partition(":")
    if transport and (not sep or kind not in ("inet", "unix", "local")):
        kind, rest = transport, text
    elif not sep or not kind or not rest:
        raise TableError(f'{where}: need service transport:endpoint instead of "{text}"')
    if kind == "inet":
        host, port = _host_port(rest, where)
        return Endpoint(rest, host=host, port=port)
    if kind in ("unix", "local"):
        return Endpoint(rest, path=rest)
    raise TableError(f"{where}: invalid transport name: {kind} in service: {text}")


def _strerror(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return os.strerror(errno.ETIMEDOUT)
    if isinstance(exc, OSError):
        if exc.errno is not None:
            return os.strerror(exc.errno)
        return exc.strerror or str(exc)
    return str(exc)


class Stream:
    """One connection: reads and writes with the pool's timeout."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        timeout: float | None,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.loop = asyncio.get_running_loop()
        self.born = self.loop.time()

    def usable(self) -> bool:
        """Open, and not closed by the server since it was last used."""
        return (
            self.loop is asyncio.get_running_loop()
            and not self.writer.is_closing()
            and not self.reader.at_eof()
            and self.reader.exception() is None
        )

    async def send(self, data: bytes) -> None:
        try:
            self.writer.write(data)
            await asyncio.wait_for(self.writer.drain(), self.timeout)
        except TimeoutError:
            raise EndpointError("timeout", _strerror(TimeoutError())) from None
        except OSError as exc:
            raise EndpointError("eof", _strerror(exc)) from None

    async def _read(self, coro: asyncio.Future[bytes] | asyncio.Task[bytes]) -> bytes:
        try:
            return await asyncio.wait_for(coro, self.timeout)
        except TimeoutError:
            raise EndpointError("timeout", _strerror(TimeoutError())) from None
        except asyncio.IncompleteReadError:
            raise EndpointError("eof", "unexpected EOF") from None
        except OSError as exc:
            raise EndpointError("eof", _strerror(exc)) from None

    async def read_exactly(self, count: int) -> bytes:
        return await self._read(asyncio.ensure_future(self.reader.readexactly(count)))

    async def read_byte(self) -> bytes:
        """One byte; b"" at end of file."""
        return await self._read(asyncio.ensure_future(self.reader.read(1)))

    async def read_line(self) -> bytes:
        """A line up to and including LF, with at most the pool's `line_limit` bytes before
        the LF (``size`` when longer, ``eof`` when the end of file came first)."""
        try:
            return await asyncio.wait_for(self.reader.readuntil(b"\n"), self.timeout)
        except TimeoutError:
            raise EndpointError("timeout", _strerror(TimeoutError())) from None
        except asyncio.LimitOverrunError:
            raise EndpointError("size", "line too long") from None
        except asyncio.IncompleteReadError:
            raise EndpointError("eof", "unexpected EOF") from None
        except OSError as exc:
            raise EndpointError("eof", _strerror(exc)) from None

    def at_eof(self) -> bool:
        return self.reader.at_eof()

    def close(self) -> None:
        with contextlib.suppress(Exception):  # closing a broken stream: nothing to report
            self.writer.close()


class StreamPool:
    """Connections to one endpoint (see the module text)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        timeout: float | None,
        line_limit: int = 4096,
        max_idle: float = 0,
        max_ttl: float = 0,
    ) -> None:
        self.endpoint = endpoint
        self.line_limit = line_limit
        self.timeout = timeout
        self.max_idle = max_idle
        self.max_ttl = max_ttl
        self.idle: list[tuple[Stream, float]] = []
        self._sweep: asyncio.TimerHandle | None = None
        self._sweep_loop: asyncio.AbstractEventLoop | None = None

    async def _connect(self) -> Stream:
        ep = self.endpoint
        try:
            if ep.unix:
                opening = asyncio.open_unix_connection(ep.path, limit=self.line_limit)
            else:
                opening = asyncio.open_connection(ep.host, ep.port, limit=self.line_limit)
            reader, writer = await asyncio.wait_for(opening, self.timeout)
        except (OSError, TimeoutError) as exc:
            reason = _strerror(exc)
            raise EndpointError("connect", reason, f"connect to {ep.text}: {reason}") from None
        return Stream(reader, writer, self.timeout)

    def _expired(self, stream: Stream) -> bool:
        loop = asyncio.get_running_loop()
        return bool(self.max_ttl) and loop.time() - stream.born >= self.max_ttl

    async def acquire(self) -> Stream:
        """An idle stream that still works, else a new connection (`EndpointError`)."""
        while self.idle:
            stream, _ = self.idle.pop()
            if stream.usable() and not self._expired(stream):
                return stream
            if stream.loop is asyncio.get_running_loop():
                stream.close()
        return await self._connect()

    def release(self, stream: Stream) -> None:
        """Keep `stream` for the next caller (after a complete exchange only)."""
        if not stream.usable() or self._expired(stream) or len(self.idle) >= MAX_IDLE_STREAMS:
            stream.close()
            return
        loop = asyncio.get_running_loop()
        self.idle.append((stream, loop.time()))
        if self.max_idle and (self._sweep is None or self._sweep_loop is not loop):
            # (a timer of another loop: a forked child's pool, whose parent's loop is gone)
            self._sweep = loop.call_later(self.max_idle, self._close_idle)
            self._sweep_loop = loop

    def discard(self, stream: Stream) -> None:
        """Close `stream` (auto_clnt_recover(): the next caller connects again)."""
        stream.close()

    def _close_idle(self) -> None:
        self._sweep = None
        loop = asyncio.get_running_loop()
        now = loop.time()
        keep: list[tuple[Stream, float]] = []
        for stream, since in self.idle:
            if now - since >= self.max_idle - 0.001:
                stream.close()
            else:
                keep.append((stream, since))
        self.idle = keep
        if keep:
            self._sweep = loop.call_later(self.max_idle, self._close_idle)

    def close(self) -> None:
        if self._sweep is not None:
            self._sweep.cancel()
            self._sweep = None
        for stream, _ in self.idle:
            stream.close()
        self.idle.clear()

    def statistics(self) -> dict[str, int]:
        return {"idle": len(self.idle)}


_shared: dict[tuple[object, ...], StreamPool] = {}


def shared_pool(
    kind: str,
    endpoint: Endpoint,
    *,
    timeout: float | None,
    line_limit: int = 4096,
    max_idle: float = 0,
    max_ttl: float = 0,
) -> StreamPool:
    """The process's pool for `kind` tables naming `endpoint` with these settings: every
    table of a server shares its connections (Postfix's dict_sockmap handles), however often
    it is opened."""
    key = (kind, endpoint, timeout, line_limit, max_idle, max_ttl)
    pool = _shared.get(key)
    if pool is None:
        pool = StreamPool(
            endpoint, timeout=timeout, line_limit=line_limit, max_idle=max_idle, max_ttl=max_ttl
        )
        pool = _shared.setdefault(key, pool)
    return pool

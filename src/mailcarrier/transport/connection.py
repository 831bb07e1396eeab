"""asyncio byte streams to SMTP/LMTP servers, with a deadline on every read and write.

`open_tcp()` and `open_unix()` return a `Connection`: the socket plus who is at the other end
(`Peer`, printed as Postfix prints it, ``host[addr]:port``). Every operation takes a timeout
and a `Stage`; failures raise `TransportError` whose reason is Postfix's wording ("lost
connection with h[a] while sending RCPT TO", "conversation with h[a] timed out while ...",
"connect to h[a]:25: Connection refused"). This module knows nothing of SMTP replies;
`session.py` drives the protocol over it.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
from dataclasses import dataclass
from typing import Final

from mailcarrier.errors import TransportError
from mailcarrier.protocol.stages import Stage

__all__ = ["Connection", "Peer", "open_tcp", "open_unix"]

READ_SIZE: Final = 65536
# Write-buffer level above which the sender waits for the socket to drain.
HIGH_WATER: Final = 256 * 1024


@dataclass(frozen=True, slots=True)
class Peer:
    """The other end. For unix sockets `address` is the path and `port` is 0."""

    hostname: str
    address: str
    port: int
    family: int = socket.AF_INET

    @property
    def namaddr(self) -> str:
        """``host[addr]``: how Postfix names a server in diagnostics."""
        return f"{self.hostname}[{self.address}]"

    @property
    def relay(self) -> str:
        """``host[addr]:port`` (``host[path]`` for unix sockets): the log's relay= field."""
        return self.namaddr if self.family == socket.AF_UNIX else f"{self.namaddr}:{self.port}"


def _strerror(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "Connection refused"
    if exc.errno is not None:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def _deadline(seconds: float) -> float | None:
    """Postfix time limits of 0 mean "no limit of our own"."""
    return seconds if seconds > 0 else None


class Connection:
    """A connected stream with per-operation deadlines."""

    __slots__ = ("_eof", "peer", "reader", "tls", "tls_verified", "writer")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: Peer):
        self.reader = reader
        self.writer = writer
        self.peer = peer
        self.tls = False
        # Set by the TLS policy step: the server certificate was verified (name matched),
        # which selects smtp_sasl_tls_verified_security_options for AUTH.
        self.tls_verified = False
        self._eof = False

    def lost_error(self, stage: Stage) -> TransportError:
        return TransportError(
            f"lost connection with {self.peer.namaddr} while {stage.while_phrase}",
            stage=stage.name.lower(),
            peer=self.peer.relay,
        )

    def timeout_error(self, stage: Stage) -> TransportError:
        return TransportError(
            f"conversation with {self.peer.namaddr} timed out while {stage.while_phrase}",
            stage=stage.name.lower(),
            peer=self.peer.relay,
        )

    async def read(self, timeout: float, stage: Stage) -> bytes:
        """Up to READ_SIZE bytes; ``b""`` at end of file."""
        try:
            async with asyncio.timeout(_deadline(timeout)):
                data = await self.reader.read(READ_SIZE)
        except TimeoutError:
            raise self.timeout_error(stage) from None
        except (OSError, ssl.SSLError) as exc:
            raise self.lost_error(stage) from exc
        if not data:
            self._eof = True
        return data

    def write(self, data: bytes, stage: Stage) -> None:
        """Queue bytes without waiting (pipelining: replies are read while this drains)."""
        if self.writer.is_closing():
            raise self.lost_error(stage)
        self.writer.write(data)

    @property
    def must_drain(self) -> bool:
        return self.writer.transport.get_write_buffer_size() > HIGH_WATER

    async def drain(self, timeout: float, stage: Stage) -> None:
        try:
            async with asyncio.timeout(_deadline(timeout)):
                await self.writer.drain()
        except TimeoutError:
            raise self.timeout_error(stage) from None
        except (OSError, ssl.SSLError) as exc:
            raise self.lost_error(stage) from exc

    async def start_tls(
        self, context: ssl.SSLContext, server_hostname: str | None, timeout: float
    ) -> None:
        try:
            async with asyncio.timeout(_deadline(timeout)):
                await self.writer.start_tls(context, server_hostname=server_hostname)
        except TimeoutError:
            raise self.timeout_error(Stage.STARTTLS) from None
        except (OSError, ssl.SSLError) as exc:
            raise TransportError(
                f"TLS handshake failed with {self.peer.namaddr}: {exc}",
                stage="starttls",
                peer=self.peer.relay,
            ) from exc
        self.tls = True

    @property
    def buffered(self) -> int:
        """Bytes received but not yet read (after STARTTLS any of these is an injection)."""
        return len(getattr(self.reader, "_buffer", b""))

    @property
    def ssl_object(self) -> ssl.SSLObject | None:
        """The TLS state after `start_tls()` or a wrapper-mode connect."""
        obj = self.writer.get_extra_info("ssl_object")
        return obj if isinstance(obj, ssl.SSLObject) else None

    @property
    def at_eof(self) -> bool:
        return self._eof

    def abort(self) -> None:
        """Close at once, discarding unsent data (after errors)."""
        transport = self.writer.transport
        if not transport.is_closing():
            transport.abort()

    async def close(self) -> None:
        """Close politely; never raises."""
        try:
            self.writer.close()
            async with asyncio.timeout(2):
                await self.writer.wait_closed()
        except (OSError, ssl.SSLError, TimeoutError):
            self.abort()


def _connect_error(peer: Peer, exc: BaseException) -> TransportError:
    if isinstance(exc, TimeoutError):
        reason = "Connection timed out"
    elif isinstance(exc, OSError):
        reason = _strerror(exc)
    else:
        reason = str(exc)
    where = peer.namaddr if peer.family == socket.AF_UNIX else f"{peer.namaddr}:{peer.port}"
    return TransportError(f"connect to {where}: {reason}", stage="connect", peer=peer.relay)


async def open_tcp(
    peer: Peer,
    *,
    timeout: float,
    bind_address: str = "",
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> Connection:
    """Connect to `peer` (an address, not a name: resolution is routing's job)."""
    local = (bind_address, 0) if bind_address else None
    try:
        async with asyncio.timeout(_deadline(timeout)):
            reader, writer = await asyncio.open_connection(
                peer.address,
                peer.port,
                family=peer.family,
                local_addr=local,
                ssl=ssl_context,
                server_hostname=server_hostname if ssl_context else None,
                limit=READ_SIZE,
            )
    except (OSError, TimeoutError) as exc:
        raise _connect_error(peer, exc) from exc
    sock = writer.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn = Connection(reader, writer, peer)
    conn.tls = ssl_context is not None
    return conn


async def open_unix(peer: Peer, *, timeout: float) -> Connection:
    try:
        async with asyncio.timeout(_deadline(timeout)):
            reader, writer = await asyncio.open_unix_connection(peer.address, limit=READ_SIZE)
    except (OSError, TimeoutError) as exc:
        raise _connect_error(peer, exc) from exc
    return Connection(reader, writer, peer)

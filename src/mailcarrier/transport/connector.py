"""How the delivery agent opens connections: the `Connector` protocol and its socket
implementation.

The agent never opens a socket itself (`open_tcp()`, `open_unix()`): it is given a
connector, so that tests can hand it connections that are not sockets (an in-memory pair,
memory.py) and check delivery logic byte for byte with both ends in one process.
`SocketConnector` is the real one: TCP for inet peers (with a bind address and, for
wrapper-mode TLS, a context), a unix stream socket for unix peers, with Postfix's wording for
a failed connect ("connect to h[a]:25: Connection refused"). Neighbours: connection.py (the
`Connection` it returns), racing.py (which races a connector's attempts).
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
import ssl
from typing import Protocol

from mailcarrier.errors import TransportError
from mailcarrier.stages import Stage
from mailcarrier.transport.connection import Connection, Peer, time_limit

__all__ = ["Connector", "SocketConnector", "open_tcp", "open_unix"]


class Connector(Protocol):
    """Opens a connection to `peer` (an address, never a name) or raises TransportError
    with Postfix's wording ("connect to h[a]:25: Connection refused")."""

    async def open(
        self,
        peer: Peer,
        *,
        timeout: float,
        bind_address: str = "",
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> Connection: ...


class SocketConnector:
    """TCP or unix-domain sockets, as `peer.family` says."""

    async def open(
        self,
        peer: Peer,
        *,
        timeout: float,
        bind_address: str = "",
        ssl_context: ssl.SSLContext | None = None,
        server_hostname: str | None = None,
    ) -> Connection:
        if peer.family == socket.AF_UNIX:
            return await open_unix(peer, timeout=timeout)
        return await open_tcp(
            peer,
            timeout=timeout,
            bind_address=bind_address,
            ssl_context=ssl_context,
            server_hostname=server_hostname,
        )


def _strerror(exc: OSError) -> str:
    if isinstance(exc, ConnectionRefusedError) or exc.errno == errno.ECONNREFUSED:
        return "Connection refused"
    if exc.errno is not None:
        return os.strerror(exc.errno)
    return str(exc) or type(exc).__name__


def _connect_error(peer: Peer, exc: BaseException) -> TransportError:
    if isinstance(exc, TimeoutError):
        reason = "Connection timed out"
    elif isinstance(exc, OSError):
        reason = _strerror(exc)
    else:
        reason = str(exc)
    where = peer.namaddr if peer.family == socket.AF_UNIX else f"{peer.namaddr}:{peer.port}"
    return TransportError(f"connect to {where}: {reason}", stage=Stage.CONNECT, peer=peer.relay)


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
    loop = asyncio.get_running_loop()
    conn = Connection(peer, loop)
    try:
        async with asyncio.timeout(time_limit(timeout)):
            transport, _ = await loop.create_connection(
                lambda: conn,
                peer.address,
                peer.port,
                family=peer.family,
                local_addr=local,
                ssl=ssl_context,
                server_hostname=server_hostname if ssl_context else None,
            )
    except (OSError, TimeoutError) as exc:
        raise _connect_error(peer, exc) from exc
    sock = transport.get_extra_info("socket")
    if sock is not None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    conn.tls = ssl_context is not None
    return conn


async def open_unix(peer: Peer, *, timeout: float) -> Connection:
    loop = asyncio.get_running_loop()
    conn = Connection(peer, loop)
    try:
        async with asyncio.timeout(time_limit(timeout)):
            await loop.create_unix_connection(lambda: conn, peer.address)
    except (OSError, TimeoutError) as exc:
        raise _connect_error(peer, exc) from exc
    return conn

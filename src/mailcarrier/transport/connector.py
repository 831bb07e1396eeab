"""How the delivery agent opens connections: the `Connector` protocol and its socket
implementation.

The agent never calls `open_tcp()` or `open_unix()` itself: it is given a connector, so that
tests can hand it connections that are not sockets (an in-memory pair, tests/support) and
check delivery logic byte for byte with both ends in one process. `SocketConnector` is the
real one: TCP for inet peers (with a bind address and, for wrapper-mode TLS, a context), a
unix stream socket for unix peers. Neighbours: connection.py (the `Connection` it returns),
racing.py (which races a connector's attempts).
"""

from __future__ import annotations

import socket
import ssl
from typing import Protocol

from mailcarrier.transport.connection import Connection, Peer, open_tcp, open_unix

__all__ = ["Connector", "SocketConnector"]


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

"""STARTTLS (RFC 3207) on a `Session`: the command, the handshake, and the injection checks.

`starttls()` sends STARTTLS and, after a 2xx, upgrades the connection in place. Bytes the
server sent after its 220 and before the handshake (in the same segment or already buffered)
are an injection attempt (CVE-2011-0411 class): they never reach the reply parser, and the
session ends with a protocol error instead. The TLS policy (which context, whether the
certificate is good enough) is delivery/tls_step.py's; `Session.starttls` is the entry point.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailcarrier.errors import RemoteProtocolError, TransportError
from mailcarrier.protocol.commands import StartTls
from mailcarrier.protocol.reply import Reply
from mailcarrier.protocol.stages import Stage

if TYPE_CHECKING:
    import ssl

    from mailcarrier.transport.session import Session

__all__ = ["starttls"]

_INJECTION = "unexpected plaintext data received after STARTTLS reply"


async def starttls(
    session: Session, context: ssl.SSLContext, server_hostname: str | None
) -> Reply | None:
    """STARTTLS and the handshake. Returns the server's reply if it refused (not 2xx),
    None once TLS is up; the caller checks the certificate and then says `hello()`
    again (RFC 3207 4.2: every pre-TLS capability is already forgotten). A handshake
    failure, or any plaintext byte after the 220, raises `TransportError`."""
    session._send(StartTls())
    reply = await session._reply()
    if reply.code // 100 != 2:
        return reply
    conn = session.conn
    if conn.buffered or session.proto.has_buffered_data:
        # Bytes after the 220 (in the same segment or already buffered): an injection
        # attempt (CVE-2011-0411 class). They never reach the parser; no handshake.
        raise session._protocol_error(Stage.STARTTLS, RemoteProtocolError(_INJECTION))
    try:
        await conn.start_tls(context, server_hostname, session.options.timeout(Stage.STARTTLS))
    except TransportError:
        session.broken = True
        raise
    try:
        session.proto.tls_established()
        if conn.buffered:
            raise RemoteProtocolError(_INJECTION)
    except RemoteProtocolError as exc:
        raise session._protocol_error(Stage.STARTTLS, exc) from exc
    return None

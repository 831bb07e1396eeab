"""STARTTLS (RFC 3207) on a `Channel`: the command, the handshake, and the injection checks.

`starttls()` sends STARTTLS and, after a 2xx, upgrades the connection in place. Bytes the
server sent after its 220 and before the handshake (in the same segment or already buffered)
are an injection attempt (CVE-2011-0411 class): they never reach the reply parser, and the
session ends with a protocol error instead. The TLS policy (which context, whether the
certificate is good enough) is delivery/tls_step.py's; `Session.starttls` is the entry point.
"""

from __future__ import annotations

import ssl

from mailcarrier.errors import RemoteProtocolError, TransportError
from mailcarrier.protocol.commands import StartTls
from mailcarrier.protocol.reply import Reply
from mailcarrier.protocol.stages import Stage
from mailcarrier.transport.channel import Channel

__all__ = ["starttls"]

_INJECTION = "unexpected plaintext data received after STARTTLS reply"


async def starttls(
    channel: Channel, context: ssl.SSLContext, server_hostname: str | None
) -> Reply | None:
    """STARTTLS and the handshake. Returns the server's reply if it refused (not 2xx),
    None once TLS is up; the caller checks the certificate and then says hello again
    (RFC 3207 4.2: every pre-TLS capability is already forgotten). A handshake failure,
    or any plaintext byte after the 220, raises `TransportError`."""
    channel.send(StartTls())
    reply = await channel.reply()
    if reply.code // 100 != 2:
        return reply
    conn = channel.conn
    if conn.buffered or channel.proto.has_buffered_data:
        # Bytes after the 220 (in the same segment or already buffered): an injection
        # attempt (CVE-2011-0411 class). They never reach the parser; no handshake.
        raise channel.fail(Stage.STARTTLS, RemoteProtocolError(_INJECTION))
    try:
        await conn.start_tls(context, server_hostname, channel.options.timeout(Stage.STARTTLS))
    except TransportError:
        channel.lose()
        raise
    try:
        channel.proto.tls_established()
        if conn.buffered:
            raise RemoteProtocolError(_INJECTION)
    except RemoteProtocolError as exc:
        raise channel.fail(Stage.STARTTLS, exc) from exc
    return None

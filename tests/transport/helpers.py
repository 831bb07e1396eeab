"""Shared values for scripted-server tests: wire bytes of a standard session, and a runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import mailcarrier
from mailcarrier.config.settings import Settings
from mailcarrier.log import MemoryLog
from mailcarrier.status import DeliveryResult
from tests.transport.scripted import ScriptedServer

HELO_NAME = "client.example"
SENDER = "a@example.org"
GREETING = b"220 mx.example ESMTP ready\r\n"
EHLO = b"EHLO client.example\r\n"
HELO = b"HELO client.example\r\n"
LHLO = b"LHLO client.example\r\n"
DATA = b"DATA\r\n"
QUIT = b"QUIT\r\n"
RSET = b"RSET\r\n"
BODY = b"Subject: test\n\nhello\n"
WIRE_BODY = b"Subject: test\r\n\r\nhello\r\n.\r\n"


def ehlo_reply(*keywords: str, code: int = 250) -> bytes:
    """A multi-line EHLO/LHLO reply announcing `keywords`."""
    lines = ["mx.example", *keywords]
    return b"".join(
        f"{code}{'-' if i < len(lines) - 1 else ' '}{line}\r\n".encode()
        for i, line in enumerate(lines)
    )


PIPELINING = ehlo_reply("PIPELINING", "ENHANCEDSTATUSCODES")
LOCKSTEP = ehlo_reply("ENHANCEDSTATUSCODES")


def mail(sender: str = SENDER) -> bytes:
    return f"MAIL FROM:<{sender}>\r\n".encode()


def rcpt(address: str) -> bytes:
    return f"RCPT TO:<{address}>\r\n".encode()


def settings(overrides: Mapping[str, str] | None = None) -> Settings:
    values = {"smtp_helo_name": HELO_NAME, "lmtp_lhlo_name": HELO_NAME}
    values.update(overrides or {})
    return Settings.defaults().with_overrides(values)


async def deliver(
    server: ScriptedServer | str,
    recipients: Sequence[str] = ("b@example.net",),
    *,
    body: bytes = BODY,
    sender: str = SENDER,
    transport: str = "smtp",
    overrides: Mapping[str, str] | None = None,
) -> tuple[DeliveryResult, MemoryLog]:
    """Deliver one message to `server` (or a next-hop text); return the result and log."""
    nexthop = server if isinstance(server, str) else server.nexthop
    if transport == "lmtp" and not isinstance(server, str):
        nexthop = f"inet:{nexthop}"
    log = MemoryLog()
    request = mailcarrier.make_request(
        body,
        sender=sender,
        recipients=list(recipients),
        nexthop=nexthop,
        transport=transport,
        queue_id="4ABCDEF123",
    )
    result = await mailcarrier.deliver(request, config=settings(overrides), log=log)
    return result, log

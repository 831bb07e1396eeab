"""Wire bytes of a standard SMTP/LMTP session, for scripts of the scripted server.

The client of these tests says `EHLO client.example` (tests/support/settings.py `CLIENT`),
sends `MAIL FROM:<a@example.org>` and the message `BODY`, which arrives as `WIRE_BODY`. The
server side: a `GREETING`, EHLO replies built by `ehlo_reply(*keywords)` (`PIPELINING` and
`LOCKSTEP` are the two common ones), and the openings every fault script starts with
(`PIPELINED_START`, `LOCKSTEP_START`, `LMTP_START`) and the first pipelined batch (`BATCH1`).

It holds bytes only: the server that plays them is tests/support/scripted.py, the delivery
that produces them tests/support/deliver.py.
"""

from __future__ import annotations

from mailcarrier import DeliveryStatus
from tests.support.deliver import SENDER
from tests.support.scripted import Expect, Send, Step
from tests.support.settings import HELO_NAME

__all__ = [
    "BATCH1",
    "BOUNCED",
    "DATA",
    "DEFERRED",
    "EHLO",
    "GREETING",
    "HELO",
    "LHLO",
    "LMTP_START",
    "LOCKSTEP",
    "LOCKSTEP_START",
    "PIPELINED_START",
    "PIPELINING",
    "QUIT",
    "RCPT1",
    "RSET",
    "SENT",
    "WIRE_BODY",
    "ehlo_reply",
    "mail",
    "rcpt",
]

GREETING = b"220 mx.example ESMTP ready\r\n"
EHLO = f"EHLO {HELO_NAME}\r\n".encode()
HELO = f"HELO {HELO_NAME}\r\n".encode()
LHLO = f"LHLO {HELO_NAME}\r\n".encode()
DATA = b"DATA\r\n"
QUIT = b"QUIT\r\n"
RSET = b"RSET\r\n"
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


# --- the openings of the session-fault scripts ----------------------------------------------

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED
RCPT1 = "b@example.net"
PIPELINED_START: list[Step] = [Send(GREETING), Expect(EHLO), Send(PIPELINING)]
LOCKSTEP_START: list[Step] = [Send(GREETING), Expect(EHLO), Send(LOCKSTEP)]
BATCH1 = mail() + rcpt(RCPT1) + DATA

LMTP_START: list[Step] = [
    Send(b"220 lmtp.example LMTP ready\r\n"),
    Expect(LHLO),
    Send(b"250-lmtp.example\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"),
]

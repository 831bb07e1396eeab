"""CHUNKING/BDAT (RFC 3030) behind smtp_use_chunking, against scripted servers.

The content goes in BDAT chunks with no dot-stuffing and no final dot. With PIPELINING the
chunks follow the RCPT replies without waiting for each other's replies; without it, each
chunk waits. The content is read in 64 KiB blocks and gathered into chunks of at least
`BDAT_CHUNK` octets, so a 300000-octet message with CRLF line ends goes as one 262144-octet
chunk and a LAST chunk of the rest. Recipients get the same results as with DATA (LMTP: one
reply per accepted recipient after BDAT LAST).
"""

from __future__ import annotations

from mailcarrier import DeliveryStatus
from mailcarrier.transport.bdat import BDAT_CHUNK
from tests.support.deliver import deliver_to
from tests.support.scripted import Expect, ReadRest, Send, StartScripted, Step
from tests.support.settings import client_settings
from tests.support.wire import DATA, EHLO, GREETING, LHLO, ehlo_reply, mail, rcpt

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED
CHUNKING = ehlo_reply("PIPELINING", "CHUNKING", "ENHANCEDSTATUSCODES")
ON = {"smtp_use_chunking": "yes", "lmtp_use_chunking": "yes"}
# A line that starts with a dot: DATA would stuff it, BDAT must not.
BODY = b"Subject: test\n\n.dot line\nhello\n"
WIRE = b"Subject: test\r\n\r\n.dot line\r\nhello\r\n"


def start(caps: bytes = CHUNKING) -> list[Step]:
    return [Send(GREETING), Expect(EHLO), Send(caps)]


async def test_small_message_is_one_bdat_last(scripted: StartScripted) -> None:
    server = await scripted(
        [
            *start(),
            Expect(mail() + rcpt("b@example.net") + rcpt("c@example.net")),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 unknown\r\n"),
            Expect(f"BDAT {len(WIRE)} LAST\r\n".encode() + WIRE),
            Send(b"250 2.0.0 Ok: 35 bytes queued as 4Zx9\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(
        server,
        recipients=["b@example.net", "c@example.net"],
        body=BODY,
        config=client_settings(**ON),
    )
    await server.wait_done()
    server.check()
    b, c = result.recipients
    assert (b.status, b.diagnostic) == (SENT, "250 2.0.0 Ok: 35 bytes queued as 4Zx9")
    assert (c.status, c.dsn) == (BOUNCED, "5.1.1")
    assert server.conn.captured["rest"] == b"QUIT\r\n"


async def test_chunking_is_off_by_default_and_needs_the_keyword(scripted: StartScripted) -> None:
    stuffed = b"Subject: test\r\n\r\n..dot line\r\nhello\r\n.\r\n"
    data_session = [
        Expect(mail() + rcpt("b@example.net") + DATA),
        Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"),
        Expect(stuffed),
        Send(b"250 2.0.0 Ok\r\n"),
        ReadRest(),
    ]
    off = await scripted([*start(), *data_session])
    await deliver_to(off, body=BODY)
    unannounced = await scripted([*start(ehlo_reply("PIPELINING")), *data_session])
    await deliver_to(unannounced, body=BODY, config=client_settings(**ON))
    for server in (off, unannounced):
        await server.wait_done()
        server.check()


async def test_large_message_in_pipelined_chunks(scripted: StartScripted) -> None:
    line = b"x" * 98 + b"\r\n"
    content = b"Subject: big\r\n\r\n" + line * 3000  # 300016 octets
    first, rest = content[:BDAT_CHUNK], content[BDAT_CHUNK:]
    server = await scripted(
        [
            *start(),
            Expect(mail() + rcpt("b@example.net")),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
            # Both chunks before any reply: pipelined (RFC 3030 4.2).
            Expect(
                f"BDAT {BDAT_CHUNK}\r\n".encode()
                + first
                + f"BDAT {len(rest)} LAST\r\n".encode()
                + rest
            ),
            Send(b"250 2.0.0 262144 octets\r\n250 2.0.0 Ok: queued\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, body=content, config=client_settings(**ON))
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.diagnostic) == (SENT, "250 2.0.0 Ok: queued")


async def test_refused_pipelined_chunk_decides(scripted: StartScripted) -> None:
    content = b"Subject: big\r\n\r\n" + (b"y" * 98 + b"\r\n") * 3000
    server = await scripted(
        [
            *start(),
            Expect(mail() + rcpt("b@example.net")),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
            Expect(f"BDAT {BDAT_CHUNK}\r\n".encode() + content[:BDAT_CHUNK], alone=False),
            Send(b"552 5.3.4 Message too big\r\n503 5.5.1 no transaction\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, body=content, config=client_settings(**ON))
    await server.wait_done()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (BOUNCED, "5.3.4")
    assert r.diagnostic == (
        f"host {server.namaddr} said: 552 5.3.4 Message too big (in reply to BDAT command)"
    )
    # The rest of the content went out before the refusal was read; then only QUIT.
    assert server.conn.captured["rest"].endswith(b"QUIT\r\n")


async def test_lockstep_stops_after_a_refused_chunk(scripted: StartScripted) -> None:
    content = b"Subject: big\r\n\r\n" + (b"z" * 98 + b"\r\n") * 3000
    server = await scripted(
        [
            *start(ehlo_reply("CHUNKING")),
            Expect(mail()),
            Send(b"250 2.1.0 Ok\r\n"),
            Expect(rcpt("b@example.net")),
            Send(b"250 2.1.5 Ok\r\n"),
            Expect(f"BDAT {BDAT_CHUNK}\r\n".encode() + content[:BDAT_CHUNK]),
            Send(b"451 4.3.0 Temporary failure\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, body=content, config=client_settings(**ON))
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.3.0")
    # RFC 3030 2: no further BDAT after the refusal.
    assert b"BDAT" not in server.conn.captured["rest"]


async def test_lmtp_one_reply_per_recipient_after_last(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(b"220 lmtp.example LMTP\r\n"),
            Expect(LHLO),
            Send(CHUNKING),
            Expect(mail() + rcpt("b@example.net") + rcpt("c@example.net") + rcpt("d@example.net")),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 no\r\n250 2.1.5 Ok\r\n"),
            Expect(f"BDAT {len(WIRE)} LAST\r\n".encode() + WIRE),
            Send(b"250 2.0.0 b Saved\r\n452 4.2.2 d Quota exceeded\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(
        server,
        recipients=["b@example.net", "c@example.net", "d@example.net"],
        body=BODY,
        transport="lmtp",
        config=client_settings(**ON),
    )
    await server.wait_done()
    server.check()
    b, c, d = result.recipients
    assert (b.status, b.diagnostic) == (SENT, "250 2.0.0 b Saved")
    assert (c.status, c.dsn) == (BOUNCED, "5.1.1")
    assert (d.status, d.dsn) == (DEFERRED, "4.2.2")
    assert "in reply to BDAT command" in d.diagnostic


async def test_lmtp_refused_chunk_is_every_recipients_verdict(scripted: StartScripted) -> None:
    content = b"Subject: big\r\n\r\n" + (b"w" * 98 + b"\r\n") * 3000
    server = await scripted(
        [
            Send(b"220 lmtp.example LMTP\r\n"),
            Expect(LHLO),
            Send(CHUNKING),
            Expect(mail() + rcpt("b@example.net") + rcpt("c@example.net")),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n"),
            Expect(f"BDAT {BDAT_CHUNK}\r\n".encode() + content[:BDAT_CHUNK], alone=False),
            # One reply to the refused chunk, one to BDAT LAST: not one per recipient.
            Send(b"452 4.3.1 Insufficient system storage\r\n503 5.5.1 no transaction\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(
        server,
        recipients=["b@example.net", "c@example.net"],
        body=content,
        transport="lmtp",
        config=client_settings(**ON),
    )
    await server.wait_done()
    assert [(r.status, r.dsn) for r in result.recipients] == [(DEFERRED, "4.3.1")] * 2

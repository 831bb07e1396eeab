"""Session faults before the mail transaction, against a scripted server: a refused
connection, a refused greeting (smtp_skip_5xx_greeting, soft_bounce), EHLO refused (HELO
fallback, 421), HELO and LHLO refused; and the scripted server noticing a wrong client.

Each test plays a server script (tests/support/scripted.py) that asserts the exact bytes the
client sent, then checks the per-recipient verdicts and Postfix's wording of the diagnostics.
Disconnects are in test_faults_disconnect.py, refusals of MAIL, RCPT, DATA and the final dot in
test_faults_transaction.py; the fault modes no real server produces (garbage, over-long lines,
endless replies, stalls) in test_hostile_server.py.
"""

from __future__ import annotations

import pytest

from mailcarrier import DeliveryStatus
from tests.support.deliver import deliver_to
from tests.support.scripted import Close, Expect, ExpectEOF, ReadRest, Send, StartScripted
from tests.support.wire import (
    BOUNCED,
    DATA,
    DEFERRED,
    EHLO,
    GREETING,
    HELO,
    QUIT,
    RCPT1,
    SENT,
    WIRE_BODY,
    mail,
    rcpt,
)

# --- refused connection ---------------------------------------------------------------------------


async def test_connection_refused_wording(scripted: StartScripted) -> None:
    server = await scripted([Close()])
    port = server.port
    await server.stop()  # nothing listens on the port any more
    result, log = await deliver_to(f"[127.0.0.1]:{port}")
    (r,) = result.recipients
    assert (r.status, r.dsn, r.relay) == (DEFERRED, "4.4.1", "none")
    assert r.diagnostic == f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"
    assert log.lines[0] == f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"
    assert log.lines[-1].startswith("4ABCDEF123: to=<b@example.net>, relay=none, delay=")
    assert log.lines[-1].endswith(
        f"dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused)"
    )


# --- refused greeting -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("greeting", "skip", "status", "dsn"),
    [
        (b"421 4.3.2 Service shutting down\r\n", "yes", DEFERRED, "4.3.2"),
        (b"450 busy, try later\r\n", "yes", DEFERRED, "4.0.0"),
        (b"554 5.7.1 No SMTP service here\r\n", "yes", DEFERRED, "4.7.1"),
        (b"554 5.7.1 No SMTP service here\r\n", "no", BOUNCED, "5.7.1"),
        (b"554 go away\r\n", "no", BOUNCED, "5.0.0"),
    ],
)
async def test_greeting_refusal(
    scripted: StartScripted, greeting: bytes, skip: str, status: DeliveryStatus, dsn: str
) -> None:
    server = await scripted([Send(greeting), ReadRest()])
    result, _ = await deliver_to(server, smtp_skip_5xx_greeting=skip)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (status, dsn)
    text = greeting.decode().rstrip("\r\n")
    assert r.diagnostic == f"host {server.namaddr} refused to talk to me: {text}"
    # Nothing but (maybe) QUIT after a refused greeting; never EHLO or MAIL.
    assert server.conn.captured["rest"] in (b"", QUIT)


async def test_soft_bounce_greeting(scripted: StartScripted) -> None:
    server = await scripted([Send(b"554 5.7.1 go away\r\n"), ReadRest()])
    result, _ = await deliver_to(server, soft_bounce="yes", smtp_skip_5xx_greeting="no")
    await server.wait_done()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.7.1")


# --- refused EHLO, HELO, LHLO ---------------------------------------------------------------------


async def test_ehlo_5xx_falls_back_to_helo_and_lockstep(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(b"502 5.5.2 Error: command not recognized\r\n"),
            Expect(HELO),
            Send(b"250 mx.example\r\n"),
            # HELO means no ESMTP: no PIPELINING, so each command waits for its reply.
            Expect(mail()),
            Send(b"250 Ok\r\n"),
            Expect(rcpt(RCPT1)),
            Send(b"250 Ok\r\n"),
            Expect(DATA),
            Send(b"354 go ahead\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 Ok: queued as 1234\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn, r.diagnostic) == (SENT, "2.0.0", "250 Ok: queued as 1234")
    assert server.conn.captured["rest"] == QUIT


async def test_ehlo_421_is_a_refusal(scripted: StartScripted) -> None:
    server = await scripted(
        [Send(GREETING), Expect(EHLO), Send(b"421 4.7.0 mx.example closing\r\n"), ReadRest()]
    )
    result, _ = await deliver_to(server)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.7.0")
    assert "421 4.7.0 mx.example closing" in r.diagnostic
    assert server.conn.captured["rest"] == b""  # no HELO, no QUIT after 421


async def test_helo_refusal_wording_is_postfix(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(b"502 5.5.2 Error: command not recognized\r\n"),
            Expect(HELO),
            Send(b"550 5.7.1 go away\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server)
    await server.wait_done()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (BOUNCED, "5.7.1")
    assert r.diagnostic == f"host {server.namaddr} refused to talk to me: 550 5.7.1 go away"


async def test_ehlo_4xx_falls_back_to_helo(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(b"451 4.3.0 EHLO temporarily unavailable\r\n"),
            Expect(HELO),
            Send(b"250 mx.example\r\n"),
            Expect(mail()),
            Send(b"250 Ok\r\n"),
            Expect(rcpt(RCPT1)),
            Send(b"250 Ok\r\n"),
            Expect(DATA),
            Send(b"354 go ahead\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 Ok\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server)
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT


async def test_lmtp_lhlo_refused(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(b"220 lmtp.example LMTP\r\n"),
            Expect(b"LHLO client.example\r\n"),
            Send(b"500 5.5.1 unrecognized command\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, transport="lmtp")
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    # No HELO fallback in LMTP (RFC 2033).
    assert r.status is not SENT
    assert b"HELO" not in server.conn.received.replace(b"LHLO", b"")
    assert "500 5.5.1 unrecognized command" in r.diagnostic


# --- the scripted server itself must notice a wrong client ------------------------------------


async def test_scripted_server_reports_unexpected_bytes(scripted: StartScripted) -> None:
    server = await scripted([Send(GREETING), Expect(b"HELO someone.else\r\n"), ExpectEOF()])
    result, _ = await deliver_to(server)
    await server.wait_done()
    assert result.recipients[0].status is DEFERRED
    with pytest.raises(AssertionError, match=r"EHLO client\.example"):
        server.check()

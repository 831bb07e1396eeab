"""Session faults in the mail transaction, against a scripted server: MAIL FROM, RCPT TO, DATA
and the final dot refused or answered with 421, pipelined and in lockstep; course correction
(no content after a rejected MAIL, all RCPTs or DATA); soft_bounce and the default enhanced
status codes; LMTP's per-recipient replies after the dot.

Each test plays a server script (tests/support/scripted.py) that asserts the exact bytes the
client sent, then checks the per-recipient verdicts and Postfix's wording of the diagnostics.
Pipelining itself is in test_pipelining.py, refusals before MAIL in test_faults_connect.py,
disconnects in test_faults_disconnect.py.
"""

from __future__ import annotations

import pytest

from mailcarrier import DeliveryStatus
from tests.support.deliver import deliver_to
from tests.support.scripted import Close, Expect, ReadRest, Send, StartScripted, Step
from tests.support.wire import (
    BATCH1,
    BOUNCED,
    DATA,
    DEFERRED,
    EHLO,
    LMTP_START,
    LOCKSTEP_START,
    PIPELINED_START,
    QUIT,
    RCPT1,
    SENT,
    WIRE_BODY,
    mail,
    rcpt,
)

# --- MAIL FROM ------------------------------------------------------------------------------------

MAIL_REJECTS = [
    (b"451 4.3.0 Temporary lookup failure\r\n", DEFERRED, "4.3.0"),
    (b"553 5.7.1 Sender address rejected\r\n", BOUNCED, "5.7.1"),
    (b"452 insufficient system storage\r\n", DEFERRED, "4.0.0"),
    (b"550 sender unknown\r\n", BOUNCED, "5.0.0"),
]


@pytest.mark.parametrize(("reply", "status", "dsn"), MAIL_REJECTS)
async def test_mail_rejected_pipelined(
    scripted: StartScripted, reply: bytes, status: DeliveryStatus, dsn: str
) -> None:
    server = await scripted(
        [
            *PIPELINED_START,
            Expect(mail() + rcpt(RCPT1) + rcpt("c@example.net") + DATA),
            Send(reply + b"503 5.5.1 Error: need MAIL command\r\n" * 3),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, recipients=[RCPT1, "c@example.net"])
    await server.wait_done()
    server.check()
    text = reply.decode().rstrip("\r\n")
    expected = f"host {server.namaddr} said: {text} (in reply to MAIL FROM command)"
    assert [(r.status, r.dsn, r.diagnostic) for r in result.recipients] == [
        (status, dsn, expected)
    ] * 2
    # Course correction: no content after a rejected MAIL, only QUIT (or RSET).
    assert server.conn.captured["rest"] in (QUIT, b"RSET\r\n" + QUIT)


@pytest.mark.parametrize(("reply", "status", "dsn"), MAIL_REJECTS)
async def test_mail_rejected_lockstep_sends_no_rcpt(
    scripted: StartScripted, reply: bytes, status: DeliveryStatus, dsn: str
) -> None:
    server = await scripted([*LOCKSTEP_START, Expect(mail()), Send(reply), ReadRest()])
    result, _ = await deliver_to(server)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (status, dsn)
    assert r.diagnostic.endswith("(in reply to MAIL FROM command)")
    assert server.conn.captured["rest"] in (QUIT, b"RSET\r\n" + QUIT)


# --- RCPT TO --------------------------------------------------------------------------------------


async def test_mixed_rcpt_replies_pipelined(scripted: StartScripted) -> None:
    rcpts = ["ok@example.net", "later@example.net", "gone@example.net", "ok2@example.net"]
    server = await scripted(
        [
            *PIPELINED_START,
            Expect(mail() + b"".join(rcpt(a) for a in rcpts) + DATA),
            Send(
                b"250 2.1.0 Ok\r\n"
                b"250 2.1.5 Ok\r\n"
                b"450 4.2.0 <later@example.net>: Recipient address rejected: Greylisted\r\n"
                b"550-5.1.1 <gone@example.net>: Recipient address rejected:\r\n"
                b"550 5.1.1 User unknown in virtual mailbox table\r\n"
                b"250 2.1.5 Ok\r\n"
                b"354 End data with <CR><LF>.<CR><LF>\r\n"
            ),
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 Ok: queued as 4Xyz\r\n"),
            ReadRest(),
        ]
    )
    result, log = await deliver_to(server, recipients=rcpts)
    await server.wait_done()
    server.check()
    said = f"host {server.namaddr} said:"
    assert [(r.address, r.status, r.dsn, r.diagnostic) for r in result.recipients] == [
        ("ok@example.net", SENT, "2.0.0", "250 2.0.0 Ok: queued as 4Xyz"),
        (
            "later@example.net",
            DEFERRED,
            "4.2.0",
            f"{said} 450 4.2.0 <later@example.net>: Recipient address rejected: Greylisted "
            "(in reply to RCPT TO command)",
        ),
        (
            "gone@example.net",
            BOUNCED,
            "5.1.1",
            f"{said} 550-5.1.1 <gone@example.net>: Recipient address rejected: "
            "550 5.1.1 User unknown in virtual mailbox table (in reply to RCPT TO command)",
        ),
        ("ok2@example.net", SENT, "2.0.0", "250 2.0.0 Ok: queued as 4Xyz"),
    ]
    # One log line per recipient, in Postfix's format.
    assert len(log.lines) == 4
    assert all(line.startswith("4ABCDEF123: to=<") for line in log.lines)
    assert server.conn.captured["rest"] == QUIT


async def test_mixed_rcpt_replies_lockstep(scripted: StartScripted) -> None:
    server = await scripted(
        [
            *LOCKSTEP_START,
            Expect(mail()),
            Send(b"250 2.1.0 Ok\r\n"),
            Expect(rcpt("x@example.net")),
            Send(b"550 5.1.1 unknown\r\n"),
            Expect(rcpt("y@example.net")),
            Send(b"250 2.1.5 Ok\r\n"),
            Expect(DATA),
            Send(b"354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 Ok\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, recipients=["x@example.net", "y@example.net"])
    await server.wait_done()
    server.check()
    assert [(r.status, r.dsn) for r in result.recipients] == [
        (BOUNCED, "5.1.1"),
        (SENT, "2.0.0"),
    ]


async def test_all_rcpts_rejected_sends_no_content(scripted: StartScripted) -> None:
    server = await scripted(
        [
            *PIPELINED_START,
            Expect(mail() + rcpt("x@example.net") + rcpt("y@example.net") + DATA),
            Send(
                b"250 2.1.0 Ok\r\n550 5.1.1 x unknown\r\n450 4.1.1 y later\r\n"
                b"554 5.5.1 Error: no valid recipients\r\n"
            ),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, recipients=["x@example.net", "y@example.net"])
    await server.wait_done()
    server.check()
    assert [(r.status, r.dsn) for r in result.recipients] == [
        (BOUNCED, "5.1.1"),
        (DEFERRED, "4.1.1"),
    ]
    assert all(r.diagnostic.endswith("(in reply to RCPT TO command)") for r in result.recipients)
    assert server.conn.captured["rest"] in (QUIT, b"RSET\r\n" + QUIT)


async def test_354_after_all_rcpts_rejected_ends_empty_message(
    scripted: StartScripted,
) -> None:
    """A broken server says 354 although no recipient was accepted: send only the dot."""
    server = await scripted(
        [
            *PIPELINED_START,
            Expect(BATCH1),
            Send(b"250 2.1.0 Ok\r\n550 5.1.1 unknown\r\n354 go ahead anyway\r\n"),
            Expect(b".\r\n"),
            Send(b"554 5.5.1 no valid recipients\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (BOUNCED, "5.1.1")
    assert r.diagnostic.endswith("(in reply to RCPT TO command)")
    assert b"Subject" not in server.conn.received


# --- DATA, the final dot, 421 mid-session ---------------------------------------------------------


@pytest.mark.parametrize(
    ("reply", "status", "dsn"),
    [
        (b"451 4.3.0 Error: queue file write error\r\n", DEFERRED, "4.3.0"),
        (b"554 5.5.1 Error: no valid recipients\r\n", BOUNCED, "5.5.1"),
        (b"421 4.3.2 Service shutting down\r\n", DEFERRED, "4.3.2"),
        (b"550 rejected\r\n", BOUNCED, "5.0.0"),
    ],
)
async def test_data_rejected_sends_no_content(
    scripted: StartScripted, reply: bytes, status: DeliveryStatus, dsn: str
) -> None:
    server = await scripted(
        [*PIPELINED_START, Expect(BATCH1), Send(b"250 Ok\r\n250 Ok\r\n" + reply), ReadRest()]
    )
    result, _ = await deliver_to(server)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    text = reply.decode().rstrip("\r\n")
    assert (r.status, r.dsn) == (status, dsn)
    assert r.diagnostic == f"host {server.namaddr} said: {text} (in reply to DATA command)"
    rest = server.conn.captured["rest"]
    assert b"Subject" not in rest
    # After 421 the client neither says QUIT nor waits; otherwise QUIT (or RSET).
    assert rest == b"" if reply.startswith(b"421") else rest in (QUIT, b"RSET\r\n" + QUIT)


@pytest.mark.parametrize(
    ("reply", "status", "dsn"),
    [
        (b"250 Ok: queued as 1234\r\n", SENT, "2.0.0"),
        (b"250 2.6.0 Ok: queued as 1234\r\n", SENT, "2.6.0"),
        (b"452 4.3.1 Insufficient system storage\r\n", DEFERRED, "4.3.1"),
        (b"451 local error in processing\r\n", DEFERRED, "4.0.0"),
        (b"554 5.7.1 Message rejected as spam\r\n", BOUNCED, "5.7.1"),
        (b"552 message too big\r\n", BOUNCED, "5.0.0"),
        (b"421 4.4.2 timeout exceeded\r\n", DEFERRED, "4.4.2"),
    ],
)
async def test_final_dot_replies(
    scripted: StartScripted, reply: bytes, status: DeliveryStatus, dsn: str
) -> None:
    server = await scripted(
        [
            *PIPELINED_START,
            Expect(mail() + rcpt("x@example.net") + rcpt("y@example.net") + DATA),
            Send(b"250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n"),
            Expect(WIRE_BODY),
            Send(reply),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, recipients=["x@example.net", "y@example.net"])
    await server.wait_done()
    server.check()
    text = reply.decode().rstrip("\r\n")
    diagnostic = (
        text
        if status is SENT
        else f"host {server.namaddr} said: {text} (in reply to end of DATA command)"
    )
    assert [(r.status, r.dsn, r.diagnostic) for r in result.recipients] == [
        (status, dsn, diagnostic)
    ] * 2
    rest = server.conn.captured["rest"]
    assert rest == b"" if reply.startswith(b"421") else rest == QUIT


@pytest.mark.parametrize(
    "stage", ["mail", "rcpt", "data"], ids=["421-to-MAIL", "421-to-RCPT", "421-to-DATA"]
)
async def test_421_mid_session_defers_and_hangs_up(scripted: StartScripted, stage: str) -> None:
    before = {"mail": b"", "rcpt": b"250 2.1.0 Ok\r\n", "data": b"250 2.1.0 Ok\r\n250 Ok\r\n"}
    server = await scripted(
        [
            *PIPELINED_START,
            Expect(BATCH1),
            Send(before[stage] + b"421 4.3.2 Service shutting down\r\n"),
            Close(),
        ]
    )
    result, _ = await deliver_to(server)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.3.2")
    phrase = {"mail": "MAIL FROM", "rcpt": "RCPT TO", "data": "DATA"}[stage]
    assert r.diagnostic == (
        f"host {server.namaddr} said: 421 4.3.2 Service shutting down "
        f"(in reply to {phrase} command)"
    )


# --- soft_bounce and default codes ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("stage_reply", "dsn"),
    [("mail", "4.7.1"), ("rcpt", "4.1.1"), ("data", "4.5.1"), ("dot", "4.6.0")],
)
async def test_soft_bounce_turns_5xx_into_deferral(
    scripted: StartScripted, stage_reply: str, dsn: str
) -> None:
    replies = {
        "mail": b"553 5.7.1 no\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n",
        "rcpt": b"250 Ok\r\n550 5.1.1 no\r\n554 5.5.1 no\r\n",
        "data": b"250 Ok\r\n250 Ok\r\n554 5.5.1 no\r\n",
        "dot": b"250 Ok\r\n250 Ok\r\n354 go\r\n",
    }
    script: list[Step] = [*PIPELINED_START, Expect(BATCH1), Send(replies[stage_reply])]
    if stage_reply == "dot":
        script += [Expect(WIRE_BODY), Send(b"554 5.6.0 content rejected\r\n")]
    server = await scripted([*script, ReadRest()])
    result, log = await deliver_to(server, soft_bounce="yes")
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, dsn)
    assert r.diagnostic.startswith(f"host {server.namaddr} said: 5")
    assert log.lines[-1].endswith(f"dsn={dsn}, status=SOFTBOUNCE ({r.diagnostic})")


async def test_default_enhanced_codes_without_enhancedstatuscodes(
    scripted: StartScripted,
) -> None:
    rcpts = ["ok@example.net", "tmp@example.net", "bad@example.net"]
    server = await scripted(
        [
            Send(b"220 mx.example ESMTP\r\n"),
            Expect(EHLO),
            Send(b"250-mx.example\r\n250 PIPELINING\r\n"),
            Expect(mail() + b"".join(rcpt(a) for a in rcpts) + DATA),
            Send(b"250 Ok\r\n250 Ok\r\n450 try later\r\n550 no such user\r\n354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 Ok\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, recipients=rcpts)
    await server.wait_done()
    server.check()
    assert [(r.status, r.dsn) for r in result.recipients] == [
        (SENT, "2.0.0"),
        (DEFERRED, "4.0.0"),
        (BOUNCED, "5.0.0"),
    ]


# --- LMTP -----------------------------------------------------------------------------------------


async def test_lmtp_per_recipient_replies_after_dot(scripted: StartScripted) -> None:
    rcpts = ["one@example.net", "two@example.net", "three@example.net", "four@example.net"]
    server = await scripted(
        [
            *LMTP_START,
            Expect(mail() + b"".join(rcpt(a) for a in rcpts) + DATA),
            Send(
                b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <two@example.net> unknown\r\n"
                b"250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"
            ),
            Expect(WIRE_BODY),
            Send(
                b"250 2.0.0 <one@example.net> Saved\r\n"
                b"452 4.2.2 <three@example.net> Mailbox full\r\n"
                b"552 5.2.2 <four@example.net> Quota exceeded\r\n"
            ),
            ReadRest(),
        ]
    )
    result, log = await deliver_to(server, recipients=rcpts, transport="lmtp")
    await server.wait_done()
    server.check()
    said = f"host {server.namaddr} said:"
    assert [(r.status, r.dsn, r.diagnostic) for r in result.recipients] == [
        (SENT, "2.0.0", "250 2.0.0 <one@example.net> Saved"),
        (
            BOUNCED,
            "5.1.1",
            f"{said} 550 5.1.1 <two@example.net> unknown (in reply to RCPT TO command)",
        ),
        (
            DEFERRED,
            "4.2.2",
            f"{said} 452 4.2.2 <three@example.net> Mailbox full (in reply to end of DATA command)",
        ),
        (
            BOUNCED,
            "5.2.2",
            f"{said} 552 5.2.2 <four@example.net> Quota exceeded (in reply to end of DATA command)",
        ),
    ]
    assert server.conn.captured["rest"] == QUIT
    assert all(" lmtp" not in line for line in log.lines)

"""Session faults against a scripted server: disconnects, refusals and replies at every stage.

Each test plays a server script (tests/transport/scripted.py) that asserts the exact bytes the
client sent, then checks the per-recipient verdicts and Postfix's wording of the diagnostics.
Pipelining, course correction and the fault modes no real server produces (garbage, over-long
lines, endless replies, stalls) have their own modules next to this one.
"""

from __future__ import annotations

import pytest

from mailcarrier import DeliveryStatus
from tests.transport.conftest import StartScripted
from tests.transport.helpers import (
    DATA,
    EHLO,
    GREETING,
    HELO,
    LOCKSTEP,
    PIPELINING,
    QUIT,
    WIRE_BODY,
    deliver,
    mail,
    rcpt,
)
from tests.transport.scripted import (
    Close,
    Expect,
    ExpectEOF,
    ReadRest,
    ReadUntil,
    Send,
    Step,
)

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED
RCPT1 = "b@example.net"
PIPELINED_START: list[Step] = [Send(GREETING), Expect(EHLO), Send(PIPELINING)]
LOCKSTEP_START: list[Step] = [Send(GREETING), Expect(EHLO), Send(LOCKSTEP)]
BATCH1 = mail() + rcpt(RCPT1) + DATA


def lost(server_namaddr: str, phrase: str) -> str:
    return f"lost connection with {server_namaddr} while {phrase}"


# --- disconnects ----------------------------------------------------------------------------

DISCONNECTS: dict[str, tuple[list[Step], str]] = {
    "after-greeting": ([Send(GREETING), Close()], "performing the EHLO handshake"),
    "during-ehlo": (
        [Send(GREETING), Expect(EHLO), Send(b"250-mx.example\r\n250-PIPE"), Close()],
        "performing the EHLO handshake",
    ),
    "after-mail": ([*PIPELINED_START, Expect(BATCH1), Close()], "sending MAIL FROM"),
    "after-rcpt": (
        [*PIPELINED_START, Expect(BATCH1), Send(b"250 2.1.0 Ok\r\n"), Close()],
        "sending RCPT TO",
    ),
    "after-data": (
        [*PIPELINED_START, Expect(BATCH1), Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"), Close()],
        "sending DATA command",
    ),
    "lockstep-after-mail": ([*LOCKSTEP_START, Expect(mail()), Close()], "sending MAIL FROM"),
    "lockstep-after-rcpt": (
        [*LOCKSTEP_START, Expect(mail()), Send(b"250 2.1.0 Ok\r\n"), Expect(rcpt(RCPT1)), Close()],
        "sending RCPT TO",
    ),
    "lockstep-after-data": (
        [
            *LOCKSTEP_START,
            Expect(mail()),
            Send(b"250 2.1.0 Ok\r\n"),
            Expect(rcpt(RCPT1)),
            Send(b"250 2.1.5 Ok\r\n"),
            Expect(DATA),
            Close(),
        ],
        "sending DATA command",
    ),
    "after-final-dot": (
        [
            *PIPELINED_START,
            Expect(BATCH1),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n"),
            Expect(WIRE_BODY),
            Close(),
        ],
        "sending end of data -- message may be sent more than once",
    ),
}


@pytest.mark.parametrize("case", list(DISCONNECTS))
async def test_disconnect_defers_with_postfix_wording(scripted: StartScripted, case: str) -> None:
    script, phrase = DISCONNECTS[case]
    server = await scripted(script)
    result, log = await deliver(server)
    await server.wait_done()
    server.check()
    (status,) = result.recipients
    assert status.status is DEFERRED
    assert status.dsn == "4.4.2"
    assert status.diagnostic == lost(server.namaddr, phrase)
    assert status.relay == server.relay
    assert log.lines[-1].endswith(
        f"dsn=4.4.2, status=deferred (lost connection with {server.namaddr} while {phrase})"
    )


async def test_disconnect_mid_body_defers(scripted: StartScripted) -> None:
    """The server resets the connection after part of a large body: the write fails."""
    body = b"Subject: big\n\n" + b"x" * 70 + b"\n"
    body = body * (32 * 1024 * 1024 // len(body))
    server = await scripted(
        [
            *PIPELINED_START,
            Expect(BATCH1),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"),
            ReadUntil(b"xxxx\r\nSubject: big\r\n", keep=False),
            Close(reset=True),
        ]
    )
    result, _ = await deliver(server, body=body)
    await server.wait_done()
    server.check()
    (status,) = result.recipients
    assert status.status is DEFERRED
    assert status.dsn == "4.4.2"
    assert status.diagnostic == lost(server.namaddr, "sending message body")


async def test_final_dot_disconnect_is_logged_with_duplicate_warning(
    scripted: StartScripted,
) -> None:
    server = await scripted(
        [
            *PIPELINED_START,
            Expect(mail() + rcpt("b@example.net") + rcpt("c@example.net") + DATA),
            Send(b"250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n"),
            Expect(WIRE_BODY),
            Close(),
        ]
    )
    result, log = await deliver(server, ["b@example.net", "c@example.net"])
    await server.wait_done()
    server.check()
    assert [r.status for r in result.recipients] == [DEFERRED, DEFERRED]
    deliveries = [line for line in log.lines if ", status=" in line]
    assert len(deliveries) == 2
    assert all(
        line.endswith(
            "status=deferred (lost connection with 127.0.0.1[127.0.0.1] while "
            "sending end of data -- message may be sent more than once)"
        )
        for line in deliveries
    )


async def test_no_skip_line_for_the_last_server(scripted: StartScripted) -> None:
    """Postfix logs "QUEUEID: reason" only when a backup server is left (smtp_bulk_fail)."""
    server = await scripted([*PIPELINED_START, Expect(BATCH1), Send(b"250 2.1.0 Ok\r\n"), Close()])
    _, log = await deliver(server)
    await server.wait_done()
    assert len(log.lines) == 1
    assert log.lines[0].startswith("4ABCDEF123: to=<b@example.net>")


# --- refusals at every stage ----------------------------------------------------------------


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
    result, _ = await deliver(server, overrides={"smtp_skip_5xx_greeting": skip})
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (status, dsn)
    text = greeting.decode().rstrip("\r\n")
    assert r.diagnostic == f"host {server.namaddr} refused to talk to me: {text}"
    # Nothing but (maybe) QUIT after a refused greeting; never EHLO or MAIL.
    assert server.conn.captured["rest"] in (b"", QUIT)


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
    result, _ = await deliver(server)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn, r.diagnostic) == (SENT, "2.0.0", "250 Ok: queued as 1234")
    assert server.conn.captured["rest"] == QUIT


async def test_ehlo_421_is_a_refusal(scripted: StartScripted) -> None:
    server = await scripted(
        [Send(GREETING), Expect(EHLO), Send(b"421 4.7.0 mx.example closing\r\n"), ReadRest()]
    )
    result, _ = await deliver(server)
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
    result, _ = await deliver(server)
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
    result, _ = await deliver(server)
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT


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
    result, _ = await deliver(server, [RCPT1, "c@example.net"])
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
    result, _ = await deliver(server)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (status, dsn)
    assert r.diagnostic.endswith("(in reply to MAIL FROM command)")
    assert server.conn.captured["rest"] in (QUIT, b"RSET\r\n" + QUIT)


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
    result, log = await deliver(server, rcpts)
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
    result, _ = await deliver(server, ["x@example.net", "y@example.net"])
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
    result, _ = await deliver(server, ["x@example.net", "y@example.net"])
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
    result, _ = await deliver(server)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (BOUNCED, "5.1.1")
    assert r.diagnostic.endswith("(in reply to RCPT TO command)")
    assert b"Subject" not in server.conn.received


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
    result, _ = await deliver(server)
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
    result, _ = await deliver(server, ["x@example.net", "y@example.net"])
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
    result, _ = await deliver(server)
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.3.2")
    phrase = {"mail": "MAIL FROM", "rcpt": "RCPT TO", "data": "DATA"}[stage]
    assert r.diagnostic == (
        f"host {server.namaddr} said: 421 4.3.2 Service shutting down "
        f"(in reply to {phrase} command)"
    )


# --- soft_bounce and default codes ------------------------------------------------------------


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
    result, log = await deliver(server, overrides={"soft_bounce": "yes"})
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, dsn)
    assert r.diagnostic.startswith(f"host {server.namaddr} said: 5")
    assert log.lines[-1].endswith(f"dsn={dsn}, status=deferred ({r.diagnostic})")


async def test_soft_bounce_greeting(scripted: StartScripted) -> None:
    server = await scripted([Send(b"554 5.7.1 go away\r\n"), ReadRest()])
    result, _ = await deliver(
        server, overrides={"soft_bounce": "yes", "smtp_skip_5xx_greeting": "no"}
    )
    await server.wait_done()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.7.1")


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
    result, _ = await deliver(server, rcpts)
    await server.wait_done()
    server.check()
    assert [(r.status, r.dsn) for r in result.recipients] == [
        (SENT, "2.0.0"),
        (DEFERRED, "4.0.0"),
        (BOUNCED, "5.0.0"),
    ]


async def test_connection_refused_wording(scripted: StartScripted) -> None:
    server = await scripted([Close()])
    port = server.port
    await server.stop()  # nothing listens on the port any more
    result, log = await deliver(f"[127.0.0.1]:{port}")
    (r,) = result.recipients
    assert (r.status, r.dsn, r.relay) == (DEFERRED, "4.4.1", "none")
    assert r.diagnostic == f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"
    assert log.lines[0] == f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"
    assert log.lines[-1].startswith("4ABCDEF123: to=<b@example.net>, relay=none, delay=")
    assert log.lines[-1].endswith(
        f"dsn=4.4.1, status=deferred (connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused)"
    )


# --- LMTP -----------------------------------------------------------------------------------

LMTP_START: list[Step] = [
    Send(b"220 lmtp.example LMTP ready\r\n"),
    Expect(b"LHLO client.example\r\n"),
    Send(b"250-lmtp.example\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"),
]


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
    result, log = await deliver(server, rcpts, transport="lmtp")
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


async def test_lmtp_lost_after_some_recipient_replies(scripted: StartScripted) -> None:
    rcpts = ["one@example.net", "two@example.net"]
    server = await scripted(
        [
            *LMTP_START,
            Expect(mail() + b"".join(rcpt(a) for a in rcpts) + DATA),
            Send(b"250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 one saved\r\n"),
            Close(),
        ]
    )
    result, _ = await deliver(server, rcpts, transport="lmtp")
    await server.wait_done()
    server.check()
    assert [(r.status, r.dsn) for r in result.recipients] == [(SENT, "2.0.0"), (DEFERRED, "4.4.2")]
    assert result.recipients[1].diagnostic == lost(
        server.namaddr, "sending end of data -- message may be sent more than once"
    )


async def test_lmtp_lhlo_refused(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(b"220 lmtp.example LMTP\r\n"),
            Expect(b"LHLO client.example\r\n"),
            Send(b"500 5.5.1 unrecognized command\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver(server, transport="lmtp")
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
    result, _ = await deliver(server)
    await server.wait_done()
    assert result.recipients[0].status is DEFERRED
    with pytest.raises(AssertionError, match=r"EHLO client\.example"):
        server.check()

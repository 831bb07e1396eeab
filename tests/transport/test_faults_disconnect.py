"""Session faults: the server disconnects, at every stage of a session, against a scripted
server: Postfix's "lost connection with h[a] while ..." wording, the duplicate-delivery warning
after the final dot, a reset in the middle of the body, an LMTP server lost between per-recipient
replies.

Each test plays a server script (tests/support/scripted.py) that asserts the exact bytes the
client sent, then checks the per-recipient verdicts and Postfix's wording of the diagnostics.
Refusals are in test_faults_connect.py and test_faults_transaction.py.
"""

from __future__ import annotations

import pytest

from tests.support.deliver import deliver_to
from tests.support.scripted import Close, Expect, ReadUntil, Send, StartScripted, Step
from tests.support.wire import (
    BATCH1,
    DATA,
    DEFERRED,
    EHLO,
    GREETING,
    LMTP_START,
    LOCKSTEP_START,
    PIPELINED_START,
    RCPT1,
    SENT,
    WIRE_BODY,
    mail,
    rcpt,
)


def lost(server_namaddr: str, phrase: str) -> str:
    return f"lost connection with {server_namaddr} while {phrase}"


# --- disconnects ----------------------------------------------------------------------------------

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
    result, log = await deliver_to(server)
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
    result, _ = await deliver_to(server, body=body)
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
    result, log = await deliver_to(server, recipients=["b@example.net", "c@example.net"])
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
    _, log = await deliver_to(server)
    await server.wait_done()
    assert len(log.lines) == 1
    assert log.lines[0].startswith("4ABCDEF123: to=<b@example.net>")


# --- LMTP -----------------------------------------------------------------------------------------


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
    result, _ = await deliver_to(server, recipients=rcpts, transport="lmtp")
    await server.wait_done()
    server.check()
    assert [(r.status, r.dsn) for r in result.recipients] == [(SENT, "2.0.0"), (DEFERRED, "4.4.2")]
    assert result.recipients[1].diagnostic == lost(
        server.namaddr, "sending end of data -- message may be sent more than once"
    )

"""RFC 2920 pipelining as Postfix does it, checked on the wire by a scripted server.

With PIPELINING announced, MAIL, every RCPT and DATA must reach the server before it says
anything; without it, each command waits for its reply. Also checked here: the exact MAIL and
RCPT parameters when SIZE and DSN are announced, and the exact DATA bytes (dot-stuffing, CRLF
normalisation against SMTP smuggling).
"""

from __future__ import annotations

import pytest

from mailcarrier import DeliveryStatus
from mailcarrier.transport import connection as connection_module
from tests.support.deliver import SENDER, deliver_to
from tests.support.scripted import Expect, ReadRest, Send, StartScripted
from tests.support.wire import (
    DATA,
    EHLO,
    GREETING,
    LOCKSTEP,
    PIPELINING,
    QUIT,
    WIRE_BODY,
    ehlo_reply,
    mail,
    rcpt,
)

RCPTS = ["one@example.net", "two@example.net", "three@example.net"]


async def test_pipelined_group_arrives_before_any_reply(scripted: StartScripted) -> None:
    group = mail() + b"".join(rcpt(a) for a in RCPTS) + DATA
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(PIPELINING),
            Expect(group),
            Send(b"250 2.1.0 Ok\r\n" + b"250 2.1.5 Ok\r\n" * 3 + b"354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 Ok\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, recipients=RCPTS)
    await server.wait_done()
    server.check()
    assert {r.status for r in result.recipients} == {DeliveryStatus.SENT}
    # One read per client turn: EHLO, the whole group, the content, QUIT.
    assert server.conn.reads == [EHLO, group, WIRE_BODY, QUIT]


async def test_pipelined_replies_trickling_in_one_by_one(scripted: StartScripted) -> None:
    """Replies that arrive in separate segments are matched to their commands in order."""
    group = mail() + b"".join(rcpt(a) for a in RCPTS) + DATA
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(PIPELINING),
            Expect(group),
            Send(b"250 2.1.0 Ok\r\n"),
            Send(b"250 2.1.5 Ok\r\n"),
            Send(b"550 5.1.1 <two@example.net> unknown\r\n"),
            Send(b"25"),
            Send(b"0 2.1.5 Ok\r\n35"),
            Send(b"4 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 Ok\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, recipients=RCPTS)
    await server.wait_done()
    server.check()
    assert [r.status for r in result.recipients] == [
        DeliveryStatus.SENT,
        DeliveryStatus.BOUNCED,
        DeliveryStatus.SENT,
    ]


async def test_lockstep_without_pipelining(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(LOCKSTEP),
            Expect(mail()),
            Send(b"250 2.1.0 Ok\r\n"),
            Expect(rcpt(RCPTS[0])),
            Send(b"250 2.1.5 Ok\r\n"),
            Expect(rcpt(RCPTS[1])),
            Send(b"450 4.2.0 greylisted\r\n"),
            Expect(rcpt(RCPTS[2])),
            Send(b"250 2.1.5 Ok\r\n"),
            Expect(DATA),
            Send(b"354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 Ok\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, recipients=RCPTS)
    await server.wait_done()
    server.check()
    assert [r.status for r in result.recipients] == [
        DeliveryStatus.SENT,
        DeliveryStatus.DEFERRED,
        DeliveryStatus.SENT,
    ]
    assert server.conn.reads == [
        EHLO,
        mail(),
        rcpt(RCPTS[0]),
        rcpt(RCPTS[1]),
        rcpt(RCPTS[2]),
        DATA,
        WIRE_BODY,
        QUIT,
    ]


async def test_pipelined_group_is_one_write(
    scripted: StartScripted, monkeypatch: pytest.MonkeyPatch
) -> None:
    writes: list[bytes] = []
    original = connection_module.Connection.write

    def recording_write(self: connection_module.Connection, data: bytes, stage: object) -> None:
        writes.append(data)
        original(self, data, stage)  # type: ignore[arg-type]

    monkeypatch.setattr(connection_module.Connection, "write", recording_write)
    group = mail() + b"".join(rcpt(a) for a in RCPTS) + DATA
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(PIPELINING),
            Expect(group),
            Send(b"250 Ok\r\n" * 4 + b"354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 Ok\r\n"),
            ReadRest(),
        ]
    )
    await deliver_to(server, recipients=RCPTS)
    await server.wait_done()
    assert group in writes


async def test_mail_and_rcpt_parameters_when_announced(scripted: StartScripted) -> None:
    body = b"Subject: dsn\n\nbody\n"
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(ehlo_reply("PIPELINING", "SIZE 10240000", "DSN", "8BITMIME")),
            Expect(
                f"MAIL FROM:<{SENDER}> SIZE={len(body)} ENVID=env+2Bid+3D1 RET=HDRS\r\n".encode()
                + b"RCPT TO:<one@example.net> NOTIFY=SUCCESS,FAILURE\r\n"
                + b"RCPT TO:<two@example.net> NOTIFY=SUCCESS,FAILURE\r\n"
                + DATA
            ),
            Send(b"250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n"),
            Expect(b"Subject: dsn\r\n\r\nbody\r\n.\r\n"),
            Send(b"250 Ok\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(
        server,
        body,
        sender=SENDER,
        recipients=["one@example.net", "two@example.net"],
        notify="success,failure",
        ret="hdrs",
        envid="env+id=1",
    )
    await server.wait_done()
    server.check()
    assert {r.status for r in result.recipients} == {DeliveryStatus.SENT}


async def test_no_dsn_parameters_unless_announced(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(PIPELINING),
            Expect(mail() + rcpt("one@example.net") + DATA),
            Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 Ok\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(
        server,
        b"Subject: test\n\nhello\n",
        sender=SENDER,
        recipients=["one@example.net"],
        notify="SUCCESS",
        ret="FULL",
        envid="x",
    )
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is DeliveryStatus.SENT


async def test_null_sender_on_the_wire(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(PIPELINING),
            Expect(b"MAIL FROM:<>\r\n" + rcpt("one@example.net") + DATA),
            Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 Ok\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, recipients=["one@example.net"], sender="")
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is DeliveryStatus.SENT


async def test_content_is_normalised_and_dot_stuffed_on_the_wire(
    scripted: StartScripted,
) -> None:
    """No bare LF, bare CR or unstuffed dot can end DATA early (SMTP smuggling)."""
    body = (
        b"Subject: smuggle\n\n"
        b".starts with dot\n"
        b"line\n.\nMAIL FROM:<evil@example.com>\n"
        b"cr\r.\r\nRCPT TO:<x@example.com>\r\n"
        b"..two dots\r\n"
        b"no newline at end"
    )
    wire = (
        b"Subject: smuggle\r\n\r\n"
        b"..starts with dot\r\n"
        b"line\r\n..\r\nMAIL FROM:<evil@example.com>\r\n"
        b"cr\r\n..\r\nRCPT TO:<x@example.com>\r\n"
        b"...two dots\r\n"
        b"no newline at end\r\n.\r\n"
    )
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(PIPELINING),
            Expect(mail() + rcpt("one@example.net") + DATA),
            Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
            Expect(wire),
            Send(b"250 Ok\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, recipients=["one@example.net"], body=body)
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is DeliveryStatus.SENT


async def test_empty_message_sends_only_the_dot(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(PIPELINING),
            Expect(mail() + rcpt("one@example.net") + DATA),
            Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
            Expect(b".\r\n"),
            Send(b"250 Ok\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, recipients=["one@example.net"], body=b"")
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is DeliveryStatus.SENT

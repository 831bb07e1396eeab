"""MAIL FROM parameters Postfix's smtp(8) decides on: SMTPUTF8 with smtputf8_enable=no, and
BODY=.

smtputf8_enable=no: Postfix handles mail "as before" SMTPUTF8 support (SMTPUTF8_README): the
client never sends SMTPUTF8 and never requires it, so there is no 5.6.7 bounce; domains still
go out in A-labels where IDNA allows (a server without SMTPUTF8 cannot take UTF-8 domains),
and a UTF-8 local part goes as it is.

BODY=: Postfix sends BODY=8BITMIME for an 8bit request to a server that announces 8BITMIME.
Its smtp_proto.c sends BODY=7BIT only for a request whose encoding was *declared* 7bit (a
client's BODY=7BIT or sendmail -B 7BIT); a message nobody declared has no encoding and gets
no BODY=. mailcarrier's "7bit" means "no 8-bit byte found", Postfix's undeclared case, so a
7bit request gets no BODY= at all; a server without 8BITMIME never gets BODY=.
"""

from __future__ import annotations

import dataclasses

import pytest

from mailcarrier import DeliveryStatus
from mailcarrier.delivery.smtputf8 import smtputf8_envelope
from mailcarrier.protocol.commands import RcptTo
from mailcarrier.protocol.ehlo import Capabilities
from mailcarrier.protocol.reply import Reply
from mailcarrier.status import DeliveryResult
from mailcarrier.transport.records import Envelope
from tests.support.deliver import deliver_request, deliver_to, request_to
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.scripted import Expect, ReadRest, ScriptedServer, Send, Step
from tests.support.settings import client_settings
from tests.support.wire import DATA, EHLO, GREETING, WIRE_BODY, ehlo_reply

SENT = DeliveryStatus.SENT
NO_UTF8 = {"smtputf8_enable": "no"}


def _caps(*keywords: str) -> Capabilities:
    lines = ["mx.example", *keywords]
    return Capabilities.parse(
        Reply(
            250, tuple(f"250{'-' if i < len(lines) - 1 else ' '}{t}" for i, t in enumerate(lines))
        )
    )


def _envelope(sender: str, *rcpts: str) -> Envelope:
    return Envelope(sender, tuple(RcptTo(r, index=i) for i, r in enumerate(rcpts)))


# --- smtputf8_enable=no: unit -------------------------------------------------------------


@pytest.mark.parametrize("caps", [("SMTPUTF8", "8BITMIME"), ("8BITMIME",), ()])
@pytest.mark.parametrize("requested", [True, False])
def test_disabled_never_requests_and_never_bounces(caps: tuple[str, ...], requested: bool) -> None:
    env = _envelope("jörg@bücher.example", "zoë@example.net", "b@münchen.example")
    out = smtputf8_envelope(env, requested, _caps(*caps), "mx[192.0.2.1]", enabled=False)
    assert isinstance(out, Envelope)
    assert not out.smtputf8
    assert out.sender == "jörg@xn--bcher-kva.example"
    assert [r.address for r in out.recipients] == ["zoë@example.net", "b@xn--mnchen-3ya.example"]


def test_disabled_ascii_envelope_is_unchanged() -> None:
    env = _envelope("a@example.org", "b@example.net")
    out = smtputf8_envelope(env, True, _caps("SMTPUTF8"), "mx", enabled=False)
    assert out == env


# --- smtputf8_enable=no: on the wire ------------------------------------------------------


async def _wire(
    caps: bytes, mail: str, rcpt: str, overrides: dict[str, str]
) -> tuple[DeliveryResult, ScriptedServer]:
    script: list[Step] = [
        Send(GREETING),
        Expect(EHLO),
        Send(caps),
        Expect(f"{mail}\r\n{rcpt}\r\n".encode() + DATA),
        Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"),
        Expect(WIRE_BODY),
        Send(b"250 2.0.0 Ok: queued\r\n"),
        ReadRest(),
    ]
    server = await ScriptedServer(script).start()
    try:
        result, _ = await deliver_to(
            server,
            sender="jörg@bücher.example",
            recipients=["zoë@example.net"],
            queue_id="4UTF8OFF1",
            smtputf8=True,
            config=client_settings(**overrides),
        )
        await server.wait_done()
        server.check()
    finally:
        await server.stop()
    return result, server


async def test_disabled_sends_no_smtputf8_to_a_server_that_offers_it() -> None:
    result, _ = await _wire(
        ehlo_reply("PIPELINING", "8BITMIME", "SMTPUTF8"),
        "MAIL FROM:<jörg@xn--bcher-kva.example>",
        "RCPT TO:<zoë@example.net>",
        NO_UTF8,
    )
    assert result.recipients[0].status is SENT


async def test_disabled_delivers_to_a_server_without_smtputf8() -> None:
    # Enabled, this request would bounce with 5.6.7 (see test_smtputf8_wire.py).
    result, _ = await _wire(
        ehlo_reply("PIPELINING", "8BITMIME"),
        "MAIL FROM:<jörg@xn--bcher-kva.example>",
        "RCPT TO:<zoë@example.net>",
        NO_UTF8,
    )
    (status,) = result.recipients
    assert (status.status, status.dsn) == (SENT, "2.0.0")


# --- BODY= --------------------------------------------------------------------------------


async def _body_options(server: AiosmtpdServer, body: bytes, encoding: str) -> list[str]:
    request = dataclasses.replace(request_to(server, body, queue_id="4BODY0001"), encoding=encoding)
    result, _ = await deliver_request(request)
    assert result.recipients[0].status is SENT
    return server.messages[-1].mail_options


async def test_7bit_request_sends_no_body_parameter(smtp_server: AiosmtpdServer) -> None:
    options = await _body_options(smtp_server, b"Subject: x\n\nascii\n", "7bit")
    assert not any(o.upper().startswith("BODY=") for o in options)


async def test_8bit_request_sends_body_8bitmime(smtp_server: AiosmtpdServer) -> None:
    options = await _body_options(smtp_server, "Subject: x\n\nGrüße\n".encode(), "8bit")
    assert "BODY=8BITMIME" in options
    assert "BODY=7BIT" not in options

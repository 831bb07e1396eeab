"""XFORWARD (smtp_send_xforward_command) and AUTH=<> (smtp_send_dummy_mail_auth) on the wire.

Postfix XFORWARD_README: the client sends XFORWARD before MAIL only when the parameter is on
and the server announced XFORWARD, with only the attributes the server listed, in two commands
(NAME ADDR PORT, then PROTO HELO IDENT SOURCE); values are xtext, ``[UNAVAILABLE]`` stands for
what is not known; a refusal is logged and the transaction goes on.
"""

from __future__ import annotations

import dataclasses

from mailcarrier import DeliveryStatus
from tests.support.deliver import Delivery, deliver_request, request_to
from tests.support.scripted import Expect, ReadRest, Send, StartScripted, Step
from tests.support.settings import client_settings
from tests.support.wire import DATA, EHLO, GREETING, WIRE_BODY, ehlo_reply, mail, rcpt

SENT = DeliveryStatus.SENT
ALL = "XFORWARD NAME ADDR PROTO HELO SOURCE PORT IDENT"
ON = {"smtp_send_xforward_command": "yes"}


async def _deliver(nexthop: str, overrides: dict[str, str], **client: str) -> Delivery:
    """One delivery whose request carries the client attributes `client` (XFORWARD's values)."""
    request = dataclasses.replace(request_to(nexthop), **client)  # type: ignore[arg-type]
    return await deliver_request(request, config=client_settings(**overrides))


def pipelined(
    caps: bytes, before_mail: bytes, replies: bytes = b"", mail_line: bytes = b""
) -> list[Step]:
    return [
        Send(GREETING),
        Expect(EHLO),
        Send(caps),
        Expect(before_mail + (mail_line or mail()) + rcpt("b@example.net") + DATA),
        Send(replies + b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"),
        Expect(WIRE_BODY),
        Send(b"250 2.0.0 Ok: queued\r\n"),
        ReadRest(),
    ]


async def test_all_attributes_in_two_commands(scripted: StartScripted) -> None:
    server = await scripted(
        pipelined(
            ehlo_reply("PIPELINING", ALL),
            b"XFORWARD NAME=client.example ADDR=192.0.2.7 PORT=51234\r\n"
            b"XFORWARD PROTO=ESMTP HELO=[192.0.2.7] IDENT=4XYZ SOURCE=REMOTE\r\n",
            b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n",
        )
    )
    result, log = await _deliver(
        server.nexthop,
        ON,
        client_name="client.example",
        client_addr="192.0.2.7",
        client_port="51234",
        client_proto="ESMTP",
        client_helo="[192.0.2.7]",
        log_ident="4XYZ",
        rewrite_context="remote",
    )
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert not [line for line in log.lines if line.startswith("warning: ")]


async def test_only_listed_attributes_and_unavailable(scripted: StartScripted) -> None:
    server = await scripted(
        pipelined(
            ehlo_reply("PIPELINING", "XFORWARD NAME HELO IDENT"),
            b"XFORWARD NAME=[UNAVAILABLE]\r\nXFORWARD HELO=a+20b IDENT=4ABCDEF123\r\n",
            b"250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n",
        )
    )
    result, _ = await _deliver(server.nexthop, ON, client_helo="a b")
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT


async def test_parameter_off_or_not_announced_sends_no_xforward(scripted: StartScripted) -> None:
    off = await scripted(pipelined(ehlo_reply("PIPELINING", ALL), b""))
    await _deliver(off.nexthop, {}, client_name="client.example")
    unannounced = await scripted(pipelined(ehlo_reply("PIPELINING"), b""))
    await _deliver(unannounced.nexthop, ON, client_name="client.example")
    for server in (off, unannounced):
        await server.wait_done()
        server.check()


async def test_refused_xforward_is_logged_and_delivery_goes_on(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(ehlo_reply("XFORWARD NAME ADDR")),
            Expect(b"XFORWARD NAME=c.example ADDR=[UNAVAILABLE]\r\n"),
            Send(b"550 5.7.0 Permission denied\r\n"),
            Expect(mail()),
            Send(b"250 2.1.0 Ok\r\n"),
            Expect(rcpt("b@example.net")),
            Send(b"250 2.1.5 Ok\r\n"),
            Expect(DATA),
            Send(b"354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 Ok: queued\r\n"),
            ReadRest(),
        ]
    )
    result, log = await _deliver(server.nexthop, ON, client_name="c.example")
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT
    assert (
        f"warning: host {server.namaddr} said: 550 5.7.0 Permission denied "
        "(in reply to XFORWARD command)"
    ) in log.lines


async def test_dummy_mail_auth(scripted: StartScripted) -> None:
    dummy = {
        "smtp_sasl_auth_enable": "yes",
        "smtp_send_dummy_mail_auth": "yes",
        "smtp_sasl_password_maps": "inline:{ other.example=u:p }",
    }
    caps = ehlo_reply("PIPELINING", "AUTH PLAIN")
    # SASL on, AUTH announced, no credentials for this server: AUTH=<> on MAIL (RFC 4954 5).
    sent = await scripted(pipelined(caps, b"", mail_line=b"MAIL FROM:<a@example.org> AUTH=<>\r\n"))
    result, _ = await _deliver(sent.nexthop, dummy)
    assert result.recipients[0].status is SENT
    # Not without SASL, and not to a server that did not announce AUTH.
    no_sasl = await scripted(pipelined(caps, b""))
    await _deliver(no_sasl.nexthop, {"smtp_send_dummy_mail_auth": "yes"})
    no_auth = await scripted(pipelined(ehlo_reply("PIPELINING"), b""))
    await _deliver(no_auth.nexthop, dummy)
    for server in (sent, no_sasl, no_auth):
        await server.wait_done()
        server.check()

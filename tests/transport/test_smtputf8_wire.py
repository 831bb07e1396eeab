"""SMTPUTF8 (RFC 6531) on the wire, through the delivery agent, against scripted servers.

A server that announces SMTPUTF8 gets ``SMTPUTF8`` on MAIL and the UTF-8 envelope as is; one
that does not gets A-label domains when only domains are non-ASCII, and otherwise nothing at
all: the next server is tried, and the last one's failure is the 5.6.7 bounce of Postfix 3.11.
"""

from __future__ import annotations

import mailcarrier
from mailcarrier import DeliveryStatus
from mailcarrier.log import MemoryLog
from mailcarrier.status import DeliveryResult
from tests.transport.conftest import StartScripted
from tests.transport.helpers import DATA, EHLO, GREETING, WIRE_BODY, ehlo_reply, settings
from tests.transport.scripted import Expect, ReadRest, Send, Step

SENT, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.BOUNCED
UTF8 = ehlo_reply("PIPELINING", "8BITMIME", "SMTPUTF8")
PLAIN = ehlo_reply("PIPELINING", "8BITMIME")


def session(caps: bytes, mail: str, rcpt: str) -> list[Step]:
    return [
        Send(GREETING),
        Expect(EHLO),
        Send(caps),
        Expect(f"{mail}\r\n{rcpt}\r\n".encode() + DATA),
        Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n"),
        Expect(WIRE_BODY),
        Send(b"250 2.0.0 Ok: queued\r\n"),
        ReadRest(),
    ]


def refused_before_mail(caps: bytes) -> list[Step]:
    return [Send(GREETING), Expect(EHLO), Send(caps), ReadRest()]


async def _deliver(
    nexthop: str, sender: str, rcpt: str, *, smtputf8: bool = False
) -> tuple[DeliveryResult, MemoryLog]:
    log = MemoryLog()
    request = mailcarrier.make_request(
        b"Subject: test\n\nhello\n",
        sender=sender,
        recipients=[rcpt],
        nexthop=nexthop,
        queue_id="4ABCDEF123",
        smtputf8=smtputf8,
    )
    return await mailcarrier.deliver(request, config=settings(), log=log), log


async def test_utf8_envelope_to_server_with_smtputf8(scripted: StartScripted) -> None:
    server = await scripted(
        session(UTF8, "MAIL FROM:<jörg@bücher.example> SMTPUTF8", "RCPT TO:<zoë@example.net>")
    )
    result, _ = await _deliver(
        server.nexthop, "jörg@bücher.example", "zoë@example.net", smtputf8=True
    )
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT


async def test_unflagged_utf8_domain_uses_smtputf8_when_offered(scripted: StartScripted) -> None:
    server = await scripted(
        session(UTF8, "MAIL FROM:<a@bücher.example> SMTPUTF8", "RCPT TO:<b@example.net>")
    )
    result, _ = await _deliver(server.nexthop, "a@bücher.example", "b@example.net")
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT


async def test_utf8_domains_become_a_labels_without_smtputf8(scripted: StartScripted) -> None:
    server = await scripted(
        session(
            PLAIN,
            "MAIL FROM:<a@xn--bcher-kva.example>",
            "RCPT TO:<b@xn--mnchen-3ya.example>",
        )
    )
    result, _ = await _deliver(server.nexthop, "a@bücher.example", "b@münchen.example")
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert r.status is SENT
    assert r.diagnostic == "250 2.0.0 Ok: queued"


async def test_required_smtputf8_tries_next_server(scripted: StartScripted) -> None:
    first = await scripted(refused_before_mail(PLAIN))
    second = await scripted(
        session(UTF8, "MAIL FROM:<a@example.org> SMTPUTF8", "RCPT TO:<zoë@example.net>")
    )
    result, log = await _deliver(
        f"{first.nexthop}, {second.nexthop}", "a@example.org", "zoë@example.net", smtputf8=True
    )
    await second.wait_done()
    first.check()
    second.check()
    (r,) = result.recipients
    assert (r.status, r.relay) == (SENT, second.relay)
    assert (
        "4ABCDEF123: message requires SMTPUTF8, but no server was found that supports "
        f"SMTPUTF8. The last attempted server was {first.namaddr}"
    ) in log.lines
    await first.wait_done()
    assert first.conn.received == EHLO + b"QUIT\r\n"  # no MAIL to this server


async def test_no_server_with_smtputf8_bounces_5_6_7(scripted: StartScripted) -> None:
    first = await scripted(refused_before_mail(PLAIN))
    second = await scripted(refused_before_mail(PLAIN))
    result, _ = await _deliver(
        f"{first.nexthop}, {second.nexthop}", "jörg@example.org", "b@example.net"
    )
    (r,) = result.recipients
    assert (r.status, r.dsn, r.relay) == (BOUNCED, "5.6.7", second.relay)
    assert r.diagnostic == (
        "message requires SMTPUTF8, but no server was found that supports SMTPUTF8. "
        f"The last attempted server was {second.namaddr}"
    )

"""SMTPUTF8 (RFC 6531) on the wire, through the delivery agent, against scripted servers.

A server that announces SMTPUTF8 gets ``SMTPUTF8`` on MAIL and the UTF-8 envelope as is; one
that does not gets A-label domains when only domains are non-ASCII, and otherwise nothing at
all: the next server is tried, and the last one's failure is the 5.6.7 bounce of Postfix 3.11.
"""

from __future__ import annotations

from mailcarrier import DeliveryStatus
from tests.support.deliver import deliver_to
from tests.support.scripted import Expect, ReadRest, Send, StartScripted, Step
from tests.support.wire import DATA, EHLO, GREETING, WIRE_BODY, ehlo_reply

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


async def test_utf8_envelope_to_server_with_smtputf8(scripted: StartScripted) -> None:
    server = await scripted(
        session(UTF8, "MAIL FROM:<jörg@bücher.example> SMTPUTF8", "RCPT TO:<zoë@example.net>")
    )
    result, _ = await deliver_to(
        server.nexthop, sender="jörg@bücher.example", recipients=["zoë@example.net"], smtputf8=True
    )
    await server.wait_done()
    server.check()
    assert result.recipients[0].status is SENT


async def test_unflagged_utf8_domain_uses_smtputf8_when_offered(scripted: StartScripted) -> None:
    server = await scripted(
        session(UTF8, "MAIL FROM:<a@bücher.example> SMTPUTF8", "RCPT TO:<b@example.net>")
    )
    result, _ = await deliver_to(
        server.nexthop, sender="a@bücher.example", recipients=["b@example.net"]
    )
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
    result, _ = await deliver_to(
        server.nexthop, sender="a@bücher.example", recipients=["b@münchen.example"]
    )
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
    result, log = await deliver_to(
        f"{first.nexthop}, {second.nexthop}",
        sender="a@example.org",
        recipients=["zoë@example.net"],
        smtputf8=True,
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
    result, _ = await deliver_to(
        f"{first.nexthop}, {second.nexthop}",
        sender="jörg@example.org",
        recipients=["b@example.net"],
    )
    (r,) = result.recipients
    assert (r.status, r.dsn, r.relay) == (BOUNCED, "5.6.7", second.relay)
    assert r.diagnostic == (
        "message requires SMTPUTF8, but no server was found that supports SMTPUTF8. "
        f"The last attempted server was {second.namaddr}"
    )

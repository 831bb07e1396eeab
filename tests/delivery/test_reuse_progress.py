"""No loop without progress (delivery/reuse.py): a cached session that cannot take a message
is not taken again for the same request.

The case seen in the field: a message that needs SMTPUTF8, a cached session to a server
without it; the agent took the session, found it unusable without a byte of I/O, parked it
again and took it again, 31.7 million times in 300 s. Its siblings are every other reason a
session cannot serve one request: 8-bit content that may not be converted for a server
without 8BITMIME, a generic-map result that is not an address, and (with I/O, but just as
endless) a server that answers 4xx to MAIL on the reused session. Each must end in bounded
time with one verdict per recipient and a handful of log lines.
"""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path

from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.status import DeliveryStatus, RecipientStatus
from tests.support.deliver import CachingAgent, caching_agent, request_to
from tests.support.scripted import Expect, ReadRest, ReadUntil, Send, StartScripted, Step
from tests.support.settings import HELO_NAME, make_settings
from tests.support.wire import DATA, EHLO, GREETING, QUIT, RSET, ehlo_reply, mail, rcpt

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED
# Far beyond what any of these needs; a loop without progress never gets there.
CEILING = 20.0
PLAIN = ehlo_reply("PIPELINING", "ENHANCEDSTATUSCODES")
OK_GROUP = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"


def _first_message(*, more: list[Step], caps: bytes = PLAIN) -> list[Step]:
    """A connection that takes one plain message and is then parked by the client."""
    return [
        Send(GREETING),
        Expect(EHLO),
        Send(caps),
        Expect(mail() + rcpt("b@example.net") + DATA),
        Send(OK_GROUP),
        ReadUntil(b"\r\n.\r\n"),
        Send(b"250 2.0.0 Ok: queued\r\n"),
        *more,
    ]


def _agent(**overrides: str) -> CachingAgent:
    return caching_agent(make_settings({"smtp_helo_name": HELO_NAME}, **overrides))


async def _send(
    agent: DeliveryAgent,
    nexthop: str,
    body: bytes = b"Subject: one\n\nhello\n",
    *,
    sender: str = "a@example.org",
    recipient: str = "b@example.net",
    smtputf8: bool = False,
) -> RecipientStatus:
    request = request_to(nexthop, body, sender=sender, recipients=[recipient], smtputf8=smtputf8)
    if not body.isascii():
        request = dataclasses.replace(request, encoding="8bit")
    async with asyncio.timeout(CEILING):
        (status,) = (await agent.deliver(request)).recipients
    return status


async def test_smtputf8_message_and_a_cached_session_without_it(scripted: StartScripted) -> None:
    # The parked session is never used for the SMTPUTF8 message: a new connection is made,
    # the server still lacks SMTPUTF8, and the message bounces with Postfix 3.11's 5.6.7.
    server = await scripted(
        _first_message(more=[ReadRest()]),
        [Send(GREETING), Expect(EHLO), Send(PLAIN), Expect(QUIT), ReadRest()],
    )
    agent, cache, log = _agent()
    first = await _send(agent, server.nexthop)
    second = await _send(agent, server.nexthop, smtputf8=True)
    await cache.close_all()
    assert first.status is SENT
    assert (second.status, second.dsn) == (BOUNCED, "5.6.7")
    assert len(server.connections) == 2
    assert len(log.lines) < 10


async def test_8bit_without_conversion_and_a_cached_session_without_8bitmime(
    scripted: StartScripted,
) -> None:
    server = await scripted(
        _first_message(more=[ReadRest()]),
        [Send(GREETING), Expect(EHLO), Send(PLAIN), Expect(QUIT), ReadRest()],
    )
    agent, cache, log = _agent(disable_mime_output_conversion="yes")
    first = await _send(agent, server.nexthop)
    second = await _send(agent, server.nexthop, "Subject: 8\n\ncaf\u00e9\n".encode())
    await cache.close_all()
    assert first.status is SENT
    assert (second.status, second.dsn) == (BOUNCED, "5.6.3")
    assert len(log.lines) < 10


async def test_generic_map_result_that_is_not_an_address(
    scripted: StartScripted, tmp_path: Path
) -> None:
    table = tmp_path / "generic"
    table.write_text("bad@example.org evil@example.com> NOTIFY=NEVER\n")
    server = await scripted(
        _first_message(more=[ReadRest()]),
        [Send(GREETING), Expect(EHLO), Send(PLAIN), Expect(QUIT), ReadRest()],
    )
    agent, cache, log = _agent(smtp_generic_maps=f"texthash:{table}")
    first = await _send(agent, server.nexthop)
    second = await _send(agent, server.nexthop, sender="bad@example.org")
    await cache.close_all()
    assert first.status is SENT
    assert (second.status, second.dsn) == (DEFERRED, "4.3.0")
    assert not any(b"evil" in c.received for c in server.connections)
    assert len(log.lines) < 10


async def test_4xx_to_mail_on_a_reused_session_is_not_retried_on_it(
    scripted: StartScripted,
) -> None:
    reused: list[Step] = [
        Expect(RSET + mail() + rcpt("b@example.net") + DATA),
        Send(b"250 2.0.0 Ok\r\n451 4.3.0 try later\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n"),
        Expect(RSET),
        Send(b"250 2.0.0 Ok\r\n"),
        ReadRest(),
    ]
    fresh: list[Step] = [
        Send(GREETING),
        Expect(EHLO),
        Send(PLAIN),
        Expect(mail() + rcpt("b@example.net") + DATA),
        Send(b"451 4.3.0 try later\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n"),
        Expect(RSET),
        Send(b"250 2.0.0 Ok\r\n"),
        ReadRest(),
    ]
    server = await scripted(_first_message(more=reused), fresh)
    agent, cache, _ = _agent()
    first = await _send(agent, server.nexthop)
    second = await _send(agent, server.nexthop)
    await cache.close_all()
    await server.wait_done()
    assert first.status is SENT
    assert (second.status, second.dsn) == (DEFERRED, "4.3.0")
    # One try on the reused session, one on a new connection: no third MAIL anywhere.
    assert [c.received.count(b"MAIL FROM") for c in server.connections] == [2, 1]

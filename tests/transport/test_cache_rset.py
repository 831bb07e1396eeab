"""The RSET check of a reused session, on the wire: pipelined with the next transaction
(RFC 2920 3.1), and a refused or dead check drops the session without failing anyone."""

from __future__ import annotations

import mailcarrier
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.status import DeliveryStatus
from tests.support.deliver import CachingAgent, caching_agent, deliver_via
from tests.support.scripted import Expect, ReadRest, ReadUntil, Send, StartScripted
from tests.support.settings import HELO_NAME, make_settings
from tests.support.wire import DATA, EHLO, GREETING, PIPELINING, QUIT, RSET, WIRE_BODY, mail, rcpt

OK_GROUP = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"
SENT = b"250 2.0.0 Ok: queued\r\n"


def _agent() -> CachingAgent:
    return caching_agent(make_settings(smtp_helo_name=HELO_NAME))


async def _send(agent: DeliveryAgent, nexthop: str) -> mailcarrier.RecipientStatus:
    (status,) = (await deliver_via(agent, nexthop)).recipients
    return status


async def test_rset_rides_with_the_next_transaction(scripted: StartScripted) -> None:
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(PIPELINING),
            Expect(mail() + rcpt("b@example.net") + DATA),
            Send(OK_GROUP),
            ReadUntil(b"\r\n.\r\n"),
            Send(SENT),
            # The reused session: one write carries RSET, MAIL, RCPT and DATA.
            Expect(RSET + mail() + rcpt("b@example.net") + DATA),
            Send(b"250 2.0.0 Ok\r\n" + OK_GROUP),
            ReadUntil(b"\r\n.\r\n"),
            Send(SENT),
            Expect(QUIT),
            ReadRest(),
        ]
    )
    agent, cache, _ = _agent()
    first = await _send(agent, server.nexthop)
    second = await _send(agent, server.nexthop)
    await cache.close_all()
    await server.wait_done()
    server.check()
    assert (first.conn_use, second.conn_use) == (1, 2)
    assert second.status is DeliveryStatus.SENT
    assert WIRE_BODY in server.connections[0].received


async def test_refused_rset_drops_the_session_and_fails_nobody(scripted: StartScripted) -> None:
    first_conn = [
        Send(GREETING),
        Expect(EHLO),
        Send(PIPELINING),
        Expect(mail() + rcpt("b@example.net") + DATA),
        Send(OK_GROUP),
        ReadUntil(b"\r\n.\r\n"),
        Send(SENT),
        Expect(RSET + mail() + rcpt("b@example.net") + DATA),
        # RSET refused: the rest of the group is answered, but nothing may be sent.
        Send(b"500 5.5.1 confused\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n503 5.5.1 no\r\n"),
        ReadRest(),
    ]
    second_conn = [
        Send(GREETING),
        Expect(EHLO),
        Send(PIPELINING),
        Expect(mail() + rcpt("b@example.net") + DATA),
        Send(OK_GROUP),
        ReadUntil(b"\r\n.\r\n"),
        Send(SENT),
        ReadRest(),
    ]
    server = await scripted(first_conn, second_conn)
    agent, cache, log = _agent()
    await _send(agent, server.nexthop)
    status = await _send(agent, server.nexthop)
    await cache.close_all()
    await server.wait_done()
    server.check()
    assert status.status is DeliveryStatus.SENT
    assert status.conn_use == 1  # a fresh session
    assert len(server.connections) == 2
    assert b"hello" not in server.connections[0].received.split(RSET, 1)[1]
    assert not any("confused" in line for line in log.lines)

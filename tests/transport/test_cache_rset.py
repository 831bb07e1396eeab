"""The RSET check of a reused session, on the wire: pipelined with the next transaction
(RFC 2920 3.1), and a refused or dead check drops the session without failing anyone."""

from __future__ import annotations

import mailcarrier
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.log import MemoryLog
from mailcarrier.status import DeliveryStatus
from tests.transport.conftest import StartScripted
from tests.transport.helpers import (
    DATA,
    EHLO,
    GREETING,
    HELO_NAME,
    PIPELINING,
    QUIT,
    RSET,
    WIRE_BODY,
    mail,
    rcpt,
)
from tests.transport.scripted import Expect, ReadRest, ReadUntil, Send

OK_GROUP = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go ahead\r\n"
SENT = b"250 2.0.0 Ok: queued\r\n"


def _agent() -> tuple[DeliveryAgent, ConnectionCache, MemoryLog]:
    cache = ConnectionCache(CacheLimits())
    log = MemoryLog()
    settings = Settings.defaults().with_overrides({"smtp_helo_name": HELO_NAME})
    return DeliveryAgent(settings, log=log, cache=cache), cache, log


async def _send(agent: DeliveryAgent, nexthop: str) -> mailcarrier.RecipientStatus:
    request = mailcarrier.make_request(
        b"Subject: test\n\nhello\n",
        sender="a@example.org",
        recipients=["b@example.net"],
        nexthop=nexthop,
    )
    (status,) = (await agent.deliver(request)).recipients
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

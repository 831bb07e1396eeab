"""conn_use: how many transactions the connection had carried, this one included (Postfix's
log field); 0 for a recipient whose delivery never reached a connection."""

from __future__ import annotations

from mailcarrier.status import DeliveryStatus
from tests.support.deliver import caching_agent, deliver_to, deliver_via
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, free_port
from tests.support.scripted import ReadRest, Send, StartScripted
from tests.support.settings import HELO_NAME, make_settings

DEFERRED, BOUNCED = DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED


async def test_connect_failure_is_0() -> None:
    result, _ = await deliver_to(f"[127.0.0.1]:{free_port()}")
    (r,) = result.recipients
    assert (r.status, r.conn_use) == (DEFERRED, 0)
    assert r.to_json()["conn_use"] == 0


async def test_refused_greeting_reached_a_connection(scripted: StartScripted) -> None:
    server = await scripted([Send(b"554 5.7.1 go away\r\n"), ReadRest()])
    result, _ = await deliver_to(server, smtp_skip_5xx_greeting="no")
    (r,) = result.recipients
    assert (r.status, r.conn_use) == (BOUNCED, 1)


async def test_new_then_reused(smtp_server: AiosmtpdServer) -> None:
    agent, cache, _ = caching_agent(make_settings(smtp_helo_name=HELO_NAME))
    uses = []
    for _ in range(3):
        (status,) = (await deliver_via(agent, smtp_server, b"Subject: x\n\ny\n")).recipients
        uses.append(status.conn_use)
    await cache.close_all()
    assert uses == [1, 2, 3]

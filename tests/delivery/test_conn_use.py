"""conn_use: how many transactions the connection had carried, this one included (Postfix's
log field); 0 for a recipient whose delivery never reached a connection."""

from __future__ import annotations

import mailcarrier
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.status import DeliveryStatus
from tests.peers.aiosmtpd_server import AiosmtpdServer, free_port
from tests.transport.helpers import HELO_NAME, deliver
from tests.transport.scripted import ReadRest, Send, StartScripted

DEFERRED, BOUNCED = DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED


async def test_connect_failure_is_0() -> None:
    result, _ = await deliver(f"[127.0.0.1]:{free_port()}")
    (r,) = result.recipients
    assert (r.status, r.conn_use) == (DEFERRED, 0)
    assert r.to_json()["conn_use"] == 0


async def test_refused_greeting_reached_a_connection(scripted: StartScripted) -> None:
    server = await scripted([Send(b"554 5.7.1 go away\r\n"), ReadRest()])
    result, _ = await deliver(server, overrides={"smtp_skip_5xx_greeting": "no"})
    (r,) = result.recipients
    assert (r.status, r.conn_use) == (BOUNCED, 1)


async def test_new_then_reused(smtp_server: AiosmtpdServer) -> None:
    settings = Settings.defaults().with_overrides({"smtp_helo_name": HELO_NAME})
    cache = ConnectionCache(CacheLimits())
    agent = DeliveryAgent(settings, cache=cache)
    uses = []
    for _ in range(3):
        request = mailcarrier.make_request(
            b"Subject: x\n\ny\n",
            sender="a@example.org",
            recipients=["b@example.net"],
            nexthop=smtp_server.nexthop,
        )
        (status,) = (await agent.deliver(request)).recipients
        uses.append(status.conn_use)
    await cache.close_all()
    assert uses == [1, 2, 3]

"""The hop status (status.HopStatus): the agent reports a site-level failure with its result,
as Postfix's smtp(8) does for smtp_site_fail, smtp_sess_fail and stream exceptions, and never
for a recipient's, the message's or the content's 4xx (smtp_rcpt_fail, smtp_mesg_fail)."""

from __future__ import annotations

from mailcarrier.status import DeliveryStatus, HopStatus
from tests.support.deliver import deliver_to
from tests.support.peers.aiosmtpd_server import free_port
from tests.support.scripted import Expect, ReadRest, Send, Stall, StartScripted
from tests.support.wire import BATCH1, PIPELINED_START

DEFERRED = DeliveryStatus.DEFERRED


async def test_connect_failure_is_a_hop_status() -> None:
    port = free_port()
    result, _ = await deliver_to(f"[127.0.0.1]:{port}")
    assert result.hop_status == HopStatus(
        "4.4.1", f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"
    )


async def test_refused_greeting_is_a_hop_status(scripted: StartScripted) -> None:
    server = await scripted([Send(b"421 4.3.2 busy\r\n"), ReadRest()])
    result, _ = await deliver_to(server)
    (r,) = result.recipients
    assert r.status is DEFERRED
    assert result.hop_status == HopStatus(r.dsn, r.diagnostic)


async def test_timeout_is_a_hop_status(scripted: StartScripted) -> None:
    server = await scripted([*PIPELINED_START, Expect(BATCH1), Stall()])
    result, _ = await deliver_to(server, smtp_mail_timeout="1s")
    assert result.hop_status is not None and "timed out" in result.hop_status.reason


async def test_recipient_and_message_4xx_are_not(scripted: StartScripted) -> None:
    rcpt_450 = [*PIPELINED_START, Expect(BATCH1), Send(b"250 Ok\r\n450 4.2.0 busy\r\n503 no\r\n")]
    mail_451 = [*PIPELINED_START, Expect(BATCH1), Send(b"451 4.3.0 later\r\n503 no\r\n503 no\r\n")]
    for script in (rcpt_450, mail_451):
        server = await scripted([*script, ReadRest()])
        result, _ = await deliver_to(server)
        (r,) = result.recipients
        assert r.status is DEFERRED
        assert result.hop_status is None

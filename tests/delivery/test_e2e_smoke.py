"""First end-to-end checks against real servers (aiosmtpd, Postfix smtp-sink)."""

from __future__ import annotations

import io

from mailcarrier import DeliveryStatus, deliver, make_request
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.peers.postfix_sink import SmtpSink


async def test_aiosmtpd_receives_normalised_content(smtp_server: AiosmtpdServer) -> None:
    body = b"Subject: t\n\n.leading dot\nbare cr\rend\n"
    request = make_request(
        body, sender="a@example.org", recipients=["b@example.net"], nexthop=smtp_server.nexthop
    )
    result = await deliver(request)
    assert [r.status for r in result.recipients] == [DeliveryStatus.SENT]
    assert (
        smtp_server.messages[0].content == b"Subject: t\r\n\r\n.leading dot\r\nbare cr\r\nend\r\n"
    )


async def test_smtp_sink(smtp_sink: SmtpSink) -> None:
    request = make_request(
        io.BytesIO(b"Subject: x\n\nhello\n"),
        sender="",
        recipients=["a@example.net", "b@example.net"],
        nexthop=smtp_sink.nexthop,
    )
    result = await deliver(request)
    assert {r.status for r in result.recipients} == {DeliveryStatus.SENT}
    assert result.recipients[0].relay == f"127.0.0.1[127.0.0.1]:{smtp_sink.port}"


async def test_lmtp_sink_unix_socket(lmtp_sink: SmtpSink) -> None:
    request = make_request(
        b"Subject: x\n\nhello\n",
        sender="a@example.org",
        recipients=["a@example.net", "b@example.net"],
        nexthop=lmtp_sink.nexthop,
        transport="lmtp",
    )
    result = await deliver(request)
    assert [r.status for r in result.recipients] == [DeliveryStatus.SENT] * 2
    assert result.recipients[0].relay.endswith(f"[{lmtp_sink.unix_path}]")

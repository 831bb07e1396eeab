"""Failure classification: Postfix's wording and codes for every kind of trouble."""

from __future__ import annotations

from mailcarrier.delivery.trouble import (
    handshake_verdict,
    reply_verdict,
    size_verdict,
    soften,
    transport_verdict,
)
from mailcarrier.errors import TransportError
from mailcarrier.protocol.reply import Reply
from mailcarrier.protocol.stages import Stage
from mailcarrier.status import DeliveryStatus

PEER = "mx.example.net[192.0.2.1]"


def test_2xx_is_sent_with_the_reply_as_diagnostic() -> None:
    v = reply_verdict(PEER, Reply.make(250, "2.0.0 Ok: queued as ABC"), Stage.DOT)
    assert (v.status, v.dsn, v.diagnostic) == (
        DeliveryStatus.SENT,
        "2.0.0",
        "250 2.0.0 Ok: queued as ABC",
    )
    assert v.final


def test_5xx_bounces_with_postfix_wording() -> None:
    v = reply_verdict(PEER, Reply.make(550, "5.1.1 <b@example.net>: User unknown"), Stage.RCPT)
    assert v.status is DeliveryStatus.BOUNCED
    assert v.dsn == "5.1.1"
    assert v.diagnostic == (
        "host mx.example.net[192.0.2.1] said: 550 5.1.1 <b@example.net>: User unknown "
        "(in reply to RCPT TO command)"
    )


def test_4xx_defers_and_is_not_final() -> None:
    v = reply_verdict(PEER, Reply.make(451, "4.3.0 try later"), Stage.DOT)
    assert (v.status, v.dsn) == (DeliveryStatus.DEFERRED, "4.3.0")
    assert v.diagnostic.endswith("(in reply to end of DATA command)")
    assert not v.final


def test_default_enhanced_codes_when_the_server_sends_none() -> None:
    assert reply_verdict(PEER, Reply.make(550, "no"), Stage.MAIL).dsn == "5.0.0"
    assert reply_verdict(PEER, Reply.make(452, "full"), Stage.RCPT).dsn == "4.0.0"
    assert reply_verdict(PEER, Reply.make(250, "ok"), Stage.DOT).dsn == "2.0.0"


def test_multi_line_reply_is_joined_as_postfix_prints_it() -> None:
    reply = Reply(550, ("550-5.7.1 first", "550 5.7.1 second"), "5.7.1")
    v = reply_verdict(PEER, reply, Stage.DATA)
    assert "said: 550-5.7.1 first 550 5.7.1 second (in reply to DATA command)" in v.diagnostic


def test_soft_bounce_turns_bounces_into_4xx_deferrals() -> None:
    v = reply_verdict(PEER, Reply.make(554, "5.7.1 rejected"), Stage.RCPT, soft_bounce=True)
    assert (v.status, v.dsn) == (DeliveryStatus.DEFERRED, "4.7.1")
    sent = reply_verdict(PEER, Reply.make(250, "ok"), Stage.DOT, soft_bounce=True)
    assert sent.status is DeliveryStatus.SENT
    assert soften(sent) is sent


def test_greeting_refusal() -> None:
    reply = Reply.make(554, "5.7.1 go away")
    hard = handshake_verdict(
        PEER, reply, Stage.GREETING, skip_5xx_greeting=False, soft_bounce=False
    )
    assert hard.status is DeliveryStatus.BOUNCED
    assert (
        hard.diagnostic == "host mx.example.net[192.0.2.1] refused to talk to me: 554 5.7.1 go away"
    )
    skipped = handshake_verdict(
        PEER, reply, Stage.GREETING, skip_5xx_greeting=True, soft_bounce=False
    )
    assert (skipped.status, skipped.dsn) == (DeliveryStatus.DEFERRED, "4.7.1")


def test_helo_refusal_says_in_reply_to() -> None:
    v = handshake_verdict(
        PEER, Reply.make(421, "4.3.2 busy"), Stage.EHLO, skip_5xx_greeting=True, soft_bounce=False
    )
    assert v.status is DeliveryStatus.DEFERRED
    assert v.diagnostic == "host mx.example.net[192.0.2.1] refused to talk to me: 421 4.3.2 busy"


def test_transport_errors_defer() -> None:
    refused = TransportError("connect to h[a]:25: Connection refused", stage=Stage.CONNECT)
    assert (transport_verdict(refused).dsn, transport_verdict(refused).status) == (
        "4.4.1",
        DeliveryStatus.DEFERRED,
    )
    lost = TransportError("lost connection with h[a] while sending RCPT TO", stage=Stage.RCPT)
    assert transport_verdict(lost).dsn == "4.4.2"
    assert transport_verdict(lost).diagnostic == lost.reason


def test_size_limit() -> None:
    v = size_verdict(2000, 1000, PEER)
    assert (v.status, v.dsn) == (DeliveryStatus.BOUNCED, "5.3.4")
    assert v.diagnostic == "message size 2000 exceeds size limit 1000 of server " + PEER

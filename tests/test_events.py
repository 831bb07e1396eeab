"""events.py: the records as exact JSON text, the response split, RFC 3339 time, and hostile
text (replies, addresses) that stays one line of valid JSON whatever it holds (hypothesis)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.events import (
    delivery_event,
    notice_event,
    operator_event,
    render_event,
    rfc3339,
    split_response,
)
from mailcarrier.status import Delays, DeliveryStatus, RecipientStatus, TlsSession

WHEN = 1_764_762_725.5  # 2025-12-03T11:52:05.5Z
PREFIX = (
    '{"time":"2025-12-03T11:52:05.500000Z","event":"delivery","node_id":"n1",'
    '"host":"mc.example","process":"smtp","pid":42,"queue_id":"Q1",'
)


def _render(status: RecipientStatus, attempt: int = 1) -> str:
    event = delivery_event("Q1", status, attempt)
    return render_event(event, when=WHEN, node_id="n1", host="mc.example", process="smtp", pid=42)


def _sent(**kw: object) -> RecipientStatus:
    values: dict[str, object] = {
        "address": "a@example.net",
        "status": DeliveryStatus.SENT,
        "dsn": "2.0.0",
        "diagnostic": "250 2.0.0 Ok: queued as X",
        "relay": "mx.example.net[192.0.2.1]:25",
        "delays": Delays(0.5, 0.01, 0.25, 0.125),
        "conn_use": 2,
    }
    values.update(kw)
    return RecipientStatus(**values)  # type: ignore[arg-type]


def test_delivery_record_exact() -> None:
    session = TlsSession("Verified", "TLSv1.3", "TLS_AES_256_GCM_SHA384", 256)
    text = _render(_sent(tls="verify", tls_session=session, orig_address="A@example.net"), 3)
    assert text == PREFIX + (
        '"address":"a@example.net","orig_address":"A@example.net","status":"sent",'
        '"dsn":"2.0.0","relay":"mx.example.net[192.0.2.1]:25",'
        '"diagnostic":"250 2.0.0 Ok: queued as X","delay":0.885,'
        '"delays":[0.5,0.01,0.25,0.125],"conn_use":2,"attempt":3,'
        '"response":{"code":250,"enhanced_code":"2.0.0","text":"Ok: queued as X"},'
        '"tls":"verify","tls_session":{"trust":"Verified","protocol":"TLSv1.3",'
        '"cipher":"TLS_AES_256_GCM_SHA384","cipher_bits":256}}'
    )


def test_same_values_as_deliver_json() -> None:
    status = _sent(tls="may", status=DeliveryStatus.DEFERRED, soft_bounced=True)
    record = json.loads(_render(status))
    assert {k: record[k] for k in status.to_json()} == status.to_json()
    assert record["soft_bounce"] is True
    assert record["orig_address"] is None  # the line's orig_to= only when it differs


def test_response_split() -> None:
    said = "host mx[192.0.2.1] said: 550 5.1.1 <a@b>: no such user (in reply to RCPT TO command)"
    bounced = _sent(status=DeliveryStatus.BOUNCED, dsn="5.1.1", diagnostic=said)
    assert split_response(bounced) == {
        "code": 550,
        "enhanced_code": "5.1.1",
        "text": "<a@b>: no such user",
    }
    bare = "host mx[192.0.2.1] said: 451 try later (in reply to end of DATA command)"
    assert split_response(_sent(status=DeliveryStatus.DEFERRED, diagnostic=bare)) == {
        "code": 451,
        "enhanced_code": None,
        "text": "try later",
    }
    local = "connect to mx[192.0.2.1]:25: Connection refused"
    assert split_response(_sent(status=DeliveryStatus.DEFERRED, diagnostic=local)) is None
    assert split_response(_sent(diagnostic="250 ok")) == {
        "code": 250,
        "enhanced_code": None,
        "text": "ok",
    }


def test_rfc3339() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000000Z"
    assert rfc3339(WHEN) == "2025-12-03T11:52:05.500000Z"


def test_other_kinds_exact() -> None:
    notice = notice_event(
        "Q1",
        notice="bounce",
        what="sender non-delivery notification",
        notice_queue_id="Q2",
        to="s@example.org",
        nrcpt=1,
    )
    text = render_event(notice, when=0, node_id="n", host="h", process="bounce", pid=1)
    assert text == (
        '{"time":"1970-01-01T00:00:00.000000Z","event":"notice","node_id":"n","host":"h",'
        '"process":"bounce","pid":1,"queue_id":"Q1","notice":"bounce",'
        '"description":"sender non-delivery notification","notice_queue_id":"Q2",'
        '"notice_recipient":"s@example.org","nrcpt":1}'
    )
    removed = operator_event("Q1", action="delete", from_queue="hold", to_queue="")
    text = render_event(removed, when=0, node_id="n", host="h", process="postsuper", pid=1)
    assert text.endswith('"action":"delete","from_queue":"hold","to_queue":null}')


def test_hostile_text_stays_one_line_of_json() -> None:
    reply = "host x said: 550 5.7.1 \r\nfake\x1b[2J\x85\u2028\u2029\x7f\udcff\ud800 é (in reply to"
    text = _render(_sent(status=DeliveryStatus.BOUNCED, diagnostic=reply, address="é@x\udcfe"))
    assert text.isprintable() and "\n" not in text
    text.encode("utf-8")  # strict: no lone surrogate left
    assert "\\r\\nfake\\u001b[2J\\u0085\\u2028\\u2029\\u007f\\\\xff\\ufffd é" in text
    record = json.loads(text)
    assert record["address"] == "é@x\\xfe"
    assert record["diagnostic"].endswith("\u2028\u2029\x7f\\xff\ufffd é (in reply to")


@given(st.text(), st.text())
def test_any_text_renders_as_one_json_line(diagnostic: str, address: str) -> None:
    text = _render(_sent(diagnostic=diagnostic, address=address))
    assert "\n" not in text and "\r" not in text and "\u2028" not in text
    text.encode("utf-8")
    record = json.loads(text)
    keep = "".join(c for c in diagnostic if not "\ud800" <= c <= "\udfff")
    if keep == diagnostic:  # no lone surrogate: the text comes back exactly
        assert record["diagnostic"] == diagnostic
        assert record["status"] == "sent"

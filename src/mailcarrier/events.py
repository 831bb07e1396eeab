"""Event records: what happened, as one JSON object per line beside the Postfix-format log.

An `Event` is made where the Postfix line it stands beside is made, from the same values
(the `RecipientStatus` of a delivery line, the queue IDs of a notice line), so the two
cannot disagree; log.py's `log_event()` hands both to the sink at once. Kinds:
``queued`` (a message submitted: sendmail, the API), ``delivery`` (one recipient, one
attempt: the values of ``deliver --json`` plus the attempt number, the server's response
split into code, enhanced code and text, and the TLS session), ``notice`` (a bounce,
delay, success or postmaster notice queued), ``expired`` (maximal_queue_lifetime reached)
and ``operator`` (hold, release, requeue, delete, flush).

`render_event()` makes the JSON text: time in RFC 3339 (UTC), the node, host, process and
pid the Postfix line's prefix names, then the event's own fields. Text from outside
(replies, addresses) is kept as it came: JSON escapes what it must, each byte that was not
valid UTF-8 (a lone surrogate of ``surrogateescape``) is written ``\\xHH`` (another lone
surrogate, standing for no byte, U+FFFD), and the line separators some readers split on (C1
controls, U+2028, U+2029) are ``\\u`` escapes of four hex digits, so one record is always
one line of valid UTF-8 JSON. Pure values and functions: the file is loghandlers.py's
(`EventFormatter`), the sinks are log.py's, eventlog.py opens the file.
"""

from __future__ import annotations

import datetime
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

from mailcarrier.status import (
    DeliveryStatus,
    RecipientStatus,
    TlsSession,
    fast_init,
    server_reply,
)

__all__ = [
    "Event",
    "delivery_event",
    "expired_event",
    "notice_event",
    "operator_event",
    "queued_event",
    "render_event",
    "rfc3339",
    "split_response",
]

DELIVERY: Final = "delivery"
QUEUED: Final = "queued"
NOTICE: Final = "notice"
EXPIRED: Final = "expired"
OPERATOR: Final = "operator"

# A server reply: three digits, a space or hyphen, an optional RFC 3463 code, the text.
_REPLY: Final = re.compile(
    r"([2-5]\d\d)(?:[ -]|$)(?:([245]\.\d{1,3}\.\d{1,3})(?:\s+|$))?(.*)", re.S
)
# What a strict reader of lines could take for a line end, or no JSON parser accepts.
_UNSAFE: Final = re.compile("[\x7f-\x9f\u2028\u2029\ud800-\udfff]")


@fast_init
@dataclass(frozen=True, slots=True)
class Event:
    """One event record before rendering: its kind, the message, and its own fields
    (`status` and `attempt` for a delivery: rendered by `render_event`). Made for every
    delivery line, rendered only when an event_log_file takes it."""

    kind: str
    queue_id: str
    fields: Mapping[str, object] | None = None  # None: a delivery's, from its status
    status: RecipientStatus | None = None
    attempt: int = 0


def delivery_event(queue_id: str, status: RecipientStatus, attempt: int) -> Event:
    """The record of a delivery line (log.py's `delivery_line`) of the same `status`;
    `attempt` 0 when nobody counts them (rendered null)."""
    return Event(DELIVERY, queue_id, status=status, attempt=attempt)


def queued_event(
    queue_id: str, *, sender: str, size: int, nrcpt: int, message_id: str, uid: int
) -> Event:
    return Event(
        QUEUED,
        queue_id,
        {"sender": sender, "size": size, "nrcpt": nrcpt, "message_id": message_id, "uid": uid},
    )


def notice_event(
    queue_id: str, *, notice: str, what: str, notice_queue_id: str, to: str, nrcpt: int
) -> Event:
    """A notice about message `queue_id` queued as `notice_queue_id` (`notice` is its
    message class: bounce, delay, success, postmaster)."""
    return Event(
        NOTICE,
        queue_id,
        {
            "notice": notice,
            "description": what,
            "notice_queue_id": notice_queue_id,
            "notice_recipient": to,
            "nrcpt": nrcpt,
        },
    )


def expired_event(queue_id: str, *, sender: str, recipients: list[str], age: float) -> Event:
    return Event(
        EXPIRED,
        queue_id,
        {
            "sender": sender,
            "status": "expired",
            "recipients": recipients,
            "age": round(age, 3),
        },
    )


def operator_event(queue_id: str, *, action: str, from_queue: str, to_queue: str) -> Event:
    """`to_queue` is "" for a message removed."""
    return Event(
        OPERATOR,
        queue_id,
        {"action": action, "from_queue": from_queue, "to_queue": to_queue or None},
    )


def split_response(status: RecipientStatus) -> dict[str, object] | None:
    """The server's reply in a status: code, enhanced code (None when the server sent
    none) and text; None when no server replied (a local reason, a connection failure)."""
    reply = status.diagnostic if status.status is DeliveryStatus.SENT else None
    if reply is None:
        reply = server_reply(status.diagnostic)
    if reply is None:
        return None
    found = _REPLY.fullmatch(reply)
    if found is None:
        return None
    code, enhanced, text = found.groups()
    return {"code": int(code), "enhanced_code": enhanced, "text": text}


def _tls_session(session: TlsSession | None) -> dict[str, object] | None:
    if session is None:
        return None
    return {
        "trust": session.trust,
        "protocol": session.protocol,
        "cipher": session.cipher,
        "cipher_bits": session.bits,
    }


def _delivery_fields(event: Event) -> dict[str, object]:
    status = event.status
    if status is None:  # made by delivery_event() only
        return {}
    value: dict[str, object] = {
        "address": status.address,
        # As the line's orig_to=: only when it differs from the address.
        "orig_address": orig if (orig := status.orig_address) != status.address and orig else None,
        "status": status.status.value,
        "dsn": status.dsn,
        "relay": status.relay,
        "diagnostic": status.diagnostic,
        "delay": round(status.delay, 6),
        "delays": status.delays.as_list(),
        "conn_use": status.conn_use,
        # 0: not counted (Postfix-native mode: Postfix keeps no count of attempts).
        "attempt": event.attempt or None,
        "response": split_response(status),
        "tls": status.tls or None,
        "tls_session": _tls_session(status.tls_session),
    }
    if status.soft_bounced:
        value["soft_bounce"] = True
    return value


def rfc3339(when: float) -> str:
    """``2026-12-03T11:32:05.123456Z``: UTC, microseconds."""
    stamp = datetime.datetime.fromtimestamp(when, datetime.UTC)
    return stamp.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _escape(found: re.Match[str]) -> str:
    char = found.group()
    point = ord(char)
    if 0xDC80 <= point <= 0xDCFF:  # surrogateescape: one byte that was not UTF-8
        return f"\\\\x{point - 0xDC00:02x}"
    if 0xD800 <= point <= 0xDFFF:  # no byte stands behind it: what a decoder makes of it
        return "\\ufffd"
    return f"\\u{point:04x}"


def render_event(
    event: Event, *, when: float, node_id: str, host: str, process: str, pid: int
) -> str:
    """One line of JSON (no newline) for `event` (see the module text)."""
    record: dict[str, object] = {
        "time": rfc3339(when),
        "event": event.kind,
        "node_id": node_id,
        "host": host,
        "process": process,
        "pid": pid,
        "queue_id": event.queue_id,
    }
    if event.kind == DELIVERY:
        record.update(_delivery_fields(event))
    elif event.fields is not None:
        record.update(event.fields)
    text = json.dumps(record, ensure_ascii=False, separators=(",", ":"))
    if text.isascii():
        return text
    # Inside JSON strings only (the rest is ASCII): a lone surrogate becomes the text
    # \xHH (a backslash escaped for JSON), the others a \u escape (four hex digits) of their own.
    return _UNSAFE.sub(_escape, text)

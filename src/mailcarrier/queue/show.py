"""``mailcarrier queue show ID``: one queued message, as Postfix's postcat(1) shows a queue file.

Three sections, each opened by postcat's banner with the queue and queue ID: the envelope
(``*** ENVELOPE RECORDS deferred/ID ***``: size, arrival time, sender, DSN envelope values,
and each recipient with its original address, NOTIFY and what happened to it so far), the
content (``*** MESSAGE CONTENTS deferred/ID ***``, the message as queued) and the end
(``*** MESSAGE FILE END deferred/ID ***``). `Parts` chooses, as postcat's -e, -h and -b do:
the envelope, the header section, the body; all of them by default. Content lines are made
printable (printable.py): a queued message is outside input. Reading goes through the
spool's parser (spool.py); nothing is changed. Neighbours: admin.py (list, hold, ...).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

from mailcarrier.errors import DataError, UsageError
from mailcarrier.printable import printable
from mailcarrier.queue.qfile import TRACE_USR_VRFY, ParseError
from mailcarrier.queue.spool import QueueMessage, Spool

__all__ = ["Parts", "show_message"]

_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class Parts:
    envelope: bool = True
    headers: bool = True
    body: bool = True


def show_message(spool: Spool, queue_id: str, parts: Parts, *, utf8: bool = True) -> Iterator[str]:
    """The lines (without line ends) that show `queue_id`; `UsageError` when it is not
    queued, `DataError` when its file is damaged."""
    queue = spool.find(queue_id)
    if queue is None:
        raise UsageError(f"queue show: {queue_id}: no such message in the queue")
    try:
        message = spool.read(queue, queue_id)
    except FileNotFoundError:
        raise UsageError(f"queue show: {queue_id}: no such message in the queue") from None
    except ParseError as exc:
        raise DataError(f"queue show: {queue}/{queue_id}: damaged queue file: {exc}") from None
    where = f"{queue}/{queue_id}"
    if parts.envelope:
        yield f"*** ENVELOPE RECORDS {where} ***"
        yield from _envelope(message, utf8)
    if parts.headers or parts.body:
        yield f"*** MESSAGE CONTENTS {where} ***"
        yield from _content(message, parts, utf8)
    yield f"*** MESSAGE FILE END {where} ***"


def _envelope(message: QueueMessage, utf8: bool) -> Iterator[str]:
    env = message.envelope
    yield f"message_size: {env.size}"
    yield f"message_arrival_time: {time.ctime(env.arrival_time)}"
    yield f"sender: {printable(env.sender, utf8=utf8)}"
    if env.dsn_envid:
        yield f"dsn_envid: {printable(env.dsn_envid, utf8=utf8)}"
    if env.dsn_ret:
        yield f"dsn_ret: {env.dsn_ret}"
    yield f"body: {env.encoding}{' smtputf8' if env.smtputf8 else ''}"
    if env.probe:  # postcat's name for the attribute, with sendmail -bv's flag
        yield f"trace_flags: {TRACE_USR_VRFY} (address probe: sendmail -bv)"
    for index, rcpt in enumerate(env.recipients):
        if rcpt.orig_address and rcpt.orig_address != rcpt.address:
            yield f"original_recipient: {printable(rcpt.orig_address, utf8=utf8)}"
        if rcpt.dsn_notify:
            names = [flag.name or "" for flag in type(rcpt.dsn_notify) if flag in rcpt.dsn_notify]
            yield f"notify_flags: {','.join(n for n in names if n)}"
        yield f"recipient: {printable(rcpt.address, utf8=utf8)}"
        yield f"status: {_status(message, index)}"


def _status(message: QueueMessage, index: int) -> str:
    """The recipient's last recorded attempt, or "pending" before the first."""
    last = message.state.states.get(index)
    if last is None:
        return "pending"
    return f"{last.status.value} dsn={last.dsn} ({printable(last.diagnostic)})"


def _content(message: QueueMessage, parts: Parts, utf8: bool) -> Iterator[str]:
    env = message.envelope
    in_header = True
    for line in _lines(message.path, env.content_offset, env.size):
        if in_header and not line.rstrip(b"\r"):
            in_header = False
            if parts.headers and parts.body:
                yield ""
            continue
        if (in_header and parts.headers) or (not in_header and parts.body):
            text = line.rstrip(b"\r").decode("utf-8", "surrogateescape")
            yield printable(text, utf8=utf8)


def _lines(path: os.PathLike[str], offset: int, size: int) -> Iterator[bytes]:
    with open(path, "rb") as handle:
        handle.seek(offset)
        left, pending = size, b""
        while left > 0:
            block = handle.read(min(_CHUNK, left))
            if not block:
                break
            left -= len(block)
            pending += block
            *complete, pending = pending.split(b"\n")
            yield from complete
        if pending:
            yield pending

"""CHUNKING (RFC 3030) on a `Channel`: the content as BDAT chunks instead of DATA.

`send_chunks()` sends the content in chunks of about `BDAT_CHUNK` octets, the last one with
LAST. With PIPELINING the chunks go without waiting (RFC 3030 4.2) and their replies are read
after BDAT LAST; without it, each chunk waits for its reply. A refused chunk fails the
transaction: no further chunk is sent once it is seen, and its reply is the verdict of every
accepted recipient. The content is not dot-stuffed (the caller asked content/ for that).
`Session.transaction` calls this when `Envelope.bdat` is set.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Final

from mailcarrier.protocol.commands import Bdat
from mailcarrier.protocol.reply import Reply
from mailcarrier.protocol.stages import Stage
from mailcarrier.transport.channel import Channel
from mailcarrier.transport.deadlines import ContentDeadline
from mailcarrier.transport.dot import collect_dot
from mailcarrier.transport.records import TransactionResult

__all__ = ["BDAT_CHUNK", "send_chunks"]

# RFC 3030 BDAT chunk size: large enough that per-chunk replies stay few (and the unread
# replies of pipelined chunks small), small enough to bound memory.
BDAT_CHUNK: Final = 262144


async def send_chunks(
    channel: Channel,
    content: Callable[[], Iterable[bytes]],
    result: TransactionResult,
    position: dict[int, int],
) -> None:
    """RFC 3030: the content in BDAT chunks of about BDAT_CHUNK octets, the last one
    with LAST. With PIPELINING the chunks go without waiting (RFC 3030 4.2) and their
    replies are read after BDAT LAST; without it, each chunk waits for its reply. A
    refused chunk fails the transaction; no further chunk is sent after it is seen."""
    result.bdat = True
    conn = channel.conn
    pipelined = channel.proto.capabilities.pipelining
    deadline = ContentDeadline(channel.options)
    outstanding = 0  # replies to pipelined chunks not yet read
    batch: list[bytes] = []
    batched = 0
    for piece in content():
        if not piece:
            continue
        batch.append(piece)
        batched += len(piece)
        if batched < BDAT_CHUNK:
            continue
        data = b"".join(batch)
        batch.clear()
        batched = 0
        conn.write(_chunk(channel, data, last=False), Stage.BODY)
        deadline.sent(len(data))
        if pipelined:
            outstanding += 1
            if conn.must_drain:
                await deadline.drain(conn, Stage.BODY)
            continue
        reply = await channel.reply()
        if reply.code // 100 != 2:
            _chunk_refused(channel, result, reply)
            return
    conn.write(_chunk(channel, b"".join(batch), last=True), Stage.BDAT)
    deadline.sent(batched)
    result.content_sent = True
    await deadline.drain(conn, Stage.BDAT, channel.options.timeout(Stage.BDAT))
    refused: Reply | None = None
    for _ in range(outstanding):
        reply = await channel.reply()
        if refused is None and reply.code // 100 != 2:
            refused = reply
    if refused is not None:
        await channel.reply()  # to BDAT LAST: one refusal (RFC 3030 2), even with LMTP
        _chunk_refused(channel, result, refused)
        return
    await collect_dot(channel, result, position)


def _chunk(channel: Channel, data: bytes, *, last: bool) -> bytes:
    return channel.wire(Bdat(len(data), last=last)) + channel.content(data)


def _chunk_refused(channel: Channel, result: TransactionResult, reply: Reply) -> None:
    """A refused chunk is the verdict of every accepted recipient (SMTP and LMTP)."""
    if not channel.options.lmtp:
        result.dot = [reply]
        return
    result.dot = [None] * len(result.rcpt)
    for i in result.accepted:
        result.dot[i] = reply

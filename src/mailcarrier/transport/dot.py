"""The replies to the end of a message's content: one for SMTP, one per accepted recipient
for LMTP (RFC 2033 4.2), after the final dot (session.py) or BDAT LAST (bdat.py).

`collect_dot()` reads them into `TransactionResult.dot`, indexed like the envelope's
recipients. Replies that came stand even when the connection is lost after them; none of
them counts when the server sends anything more after the last (the verdict would be
ambiguous: `Channel.check_nothing_unasked`).
"""

from __future__ import annotations

from mailcarrier.errors import TransportError
from mailcarrier.protocol.client import CommandReply, RecipientReply
from mailcarrier.protocol.reply import Reply
from mailcarrier.protocol.stages import Stage
from mailcarrier.transport.channel import Channel
from mailcarrier.transport.records import TransactionResult

__all__ = ["collect_dot"]


async def collect_dot(
    channel: Channel, result: TransactionResult, position: dict[int, int]
) -> None:
    """Read the reply (LMTP: the replies) to the end of the content into `result.dot`;
    `position` maps each RCPT command (by id) to its place in the envelope."""
    stage = Stage.BDAT if result.bdat else Stage.DOT
    if not channel.options.lmtp:
        reply = await channel.reply()
        channel.check_nothing_unasked(stage)
        result.dot = [reply]
        return
    accepted = result.accepted
    # Filled in place: replies that came stand even when the connection is lost later.
    dot: list[Reply | None] = [None] * len(result.rcpt)
    result.dot = dot
    for _ in range(max(1, len(accepted))):
        event = await channel.event()
        if isinstance(event, RecipientReply):
            dot[position.get(id(event.recipient), 0)] = event.reply
        else:
            assert isinstance(event, CommandReply)
            for i in accepted:
                dot[i] = event.reply
    try:
        channel.check_nothing_unasked(stage)
    except TransportError:
        result.dot = []
        raise

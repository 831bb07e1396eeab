"""The events of the sans-IO client (`ClientConnection.next_event()`), as values.

`Greeting`, `CommandReply` (the reply to a command in flight), `RecipientReply` (LMTP, RFC 2033
4.2: one per accepted recipient after the final dot or BDAT LAST) and `ConnectionClosed` (end
of file, with the commands still awaiting a reply), or `NEED_DATA` when the bytes received so
far hold no complete event. Frozen, slotted dataclasses: the driver (transport/session.py)
reads them, nothing changes them. The machine that makes them is client.py, which re-exports
every name here.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from mailcarrier.protocol.commands import Command, RcptTo
from mailcarrier.protocol.reply import Reply
from mailcarrier.status import fast_init

__all__ = [
    "NEED_DATA",
    "CommandReply",
    "ConnectionClosed",
    "Event",
    "Greeting",
    "NeedData",
    "RecipientReply",
]


@dataclass(frozen=True, slots=True)
class Greeting:
    reply: Reply


@fast_init
@dataclass(frozen=True, slots=True)
class CommandReply:
    command: Command
    reply: Reply


@fast_init
@dataclass(frozen=True, slots=True)
class RecipientReply:
    """LMTP (RFC 2033 4.2): the reply for one accepted recipient after the final dot."""

    recipient: RcptTo
    reply: Reply


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """End of file from the server. `pending` lists the commands still awaiting a reply."""

    pending: tuple[Command, ...]
    partial: bool  # part of a reply had arrived


class NeedData(enum.Enum):
    NEED_DATA = "need-data"


NEED_DATA: Final = NeedData.NEED_DATA

Event = Greeting | CommandReply | RecipientReply | ConnectionClosed

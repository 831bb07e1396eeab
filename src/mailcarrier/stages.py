"""Protocol stages as data: one table from each stage of an SMTP/LMTP session to Postfix's
phrases for it.

Diagnostics and log lines read this table: "lost connection with h[a] while <while_phrase>",
"conversation with h[a] timed out while <while_phrase>", "host h[a] said: ... (in reply to
<command_phrase>)". It sits at the bottom of the package (it imports nothing of it), so that
`errors.TransportError` can name the stage it failed at with a `Stage`, not a string.
Neighbours: protocol/commands.py gives every command its stage (protocol/stages.py re-exports
this module), transport/options.py maps each stage to the time limit that bounds it (as
Postfix's smtp_proto.c keeps its xfer_timeouts array in the engine, not in the stage names),
and delivery/trouble.py reads the stage of a failure.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Stage", "StageInfo"]


@dataclass(frozen=True, slots=True)
class StageInfo:
    while_phrase: str
    command_phrase: str


class Stage(enum.Enum):
    CONNECT = StageInfo("connecting", "")
    GREETING = StageInfo("receiving the initial server greeting", "")
    EHLO = StageInfo("performing the EHLO handshake", "EHLO command")
    HELO = StageInfo("performing the HELO handshake", "HELO command")
    LHLO = StageInfo("performing the LHLO handshake", "LHLO command")
    STARTTLS = StageInfo("sending STARTTLS", "STARTTLS command")
    AUTH = StageInfo("performing SASL authentication", "AUTH command")
    XFORWARD = StageInfo("sending XFORWARD", "XFORWARD command")
    MAIL = StageInfo("sending MAIL FROM", "MAIL FROM command")
    RCPT = StageInfo("sending RCPT TO", "RCPT TO command")
    DATA = StageInfo("sending DATA command", "DATA command")
    BODY = StageInfo("sending message body", "")
    DOT = StageInfo(
        "sending end of data -- message may be sent more than once", "end of DATA command"
    )
    BDAT = StageInfo("sending message body -- message may be sent more than once", "BDAT command")
    RSET = StageInfo("sending RSET", "RSET command")
    QUIT = StageInfo("sending QUIT", "QUIT command")
    NOOP = StageInfo("sending NOOP", "NOOP command")

    # Members are dict keys on every read (time limits): hash by identity, in C, instead of
    # Enum's hash of the name in Python. Members compare by identity anyway.
    __hash__ = object.__hash__

    # Plain attributes of each member (the drivers read them on every read and write; an
    # enum property would go through `value` each time).
    while_phrase: str
    command_phrase: str

    def __init__(self, info: StageInfo) -> None:
        self.while_phrase = info.while_phrase
        self.command_phrase = info.command_phrase

"""Protocol stages as data: one table from stage to Postfix's phrases and time limit.

Diagnostics and log lines read this table: "lost connection with h[a] while <while_phrase>",
"conversation with h[a] timed out while <while_phrase>", "host h[a] said: ... (in reply to
<command_phrase>)". `timeout` names the ``smtp_``-relative parameter suffix that bounds the
stage (``helo_timeout`` -> smtp_helo_timeout / lmtp_lhlo_timeout); the transport reads it.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

__all__ = ["Stage", "StageInfo"]


@dataclass(frozen=True, slots=True)
class StageInfo:
    while_phrase: str
    command_phrase: str
    timeout: str


class Stage(enum.Enum):
    CONNECT = StageInfo("connecting", "", "connect_timeout")
    GREETING = StageInfo("receiving the initial server greeting", "", "helo_timeout")
    EHLO = StageInfo("performing the EHLO handshake", "EHLO command", "helo_timeout")
    HELO = StageInfo("performing the HELO handshake", "HELO command", "helo_timeout")
    LHLO = StageInfo("performing the LHLO handshake", "LHLO command", "helo_timeout")
    STARTTLS = StageInfo("sending STARTTLS", "STARTTLS command", "starttls_timeout")
    AUTH = StageInfo("performing SASL authentication", "AUTH command", "helo_timeout")
    XFORWARD = StageInfo("sending XFORWARD", "XFORWARD command", "xforward_timeout")
    MAIL = StageInfo("sending MAIL FROM", "MAIL FROM command", "mail_timeout")
    RCPT = StageInfo("sending RCPT TO", "RCPT TO command", "rcpt_timeout")
    DATA = StageInfo("sending DATA command", "DATA command", "data_init_timeout")
    BODY = StageInfo("sending message body", "", "data_xfer_timeout")
    DOT = StageInfo(
        "sending end of data -- message may be sent more than once",
        "end of DATA command",
        "data_done_timeout",
    )
    BDAT = StageInfo(
        "sending message body -- message may be sent more than once",
        "BDAT command",
        "data_done_timeout",
    )
    RSET = StageInfo("sending RSET", "RSET command", "rset_timeout")
    QUIT = StageInfo("sending QUIT", "QUIT command", "quit_timeout")
    NOOP = StageInfo("sending NOOP", "NOOP command", "rset_timeout")

    # Members are dict keys on every read (time limits): hash by identity, in C, instead of
    # Enum's hash of the name in Python. Members compare by identity anyway.
    __hash__ = object.__hash__

    # Plain attributes of each member (the drivers read them on every read and write; an
    # enum property would go through `value` each time).
    while_phrase: str
    command_phrase: str
    timeout: str

    def __init__(self, info: StageInfo) -> None:
        self.while_phrase = info.while_phrase
        self.command_phrase = info.command_phrase
        self.timeout = info.timeout

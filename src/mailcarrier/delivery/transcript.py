"""Session transcripts for the postmaster, as Postfix's smtp_chat_notify() sends them.

When ``notify_classes`` names an error class that a session ran into (``protocol``: the
server broke the protocol, e.g. a malformed reply or a reply code no command expects;
``data``: the local content could not be read), the postmaster (``error_notice_recipient``)
gets a copy of the conversation. The agent records the session's lines only while such a
class is enabled, and hands a `SessionTranscript` to its `notify` hook when the session had
one of those errors; the queue (queue/transcripts.py) turns it into mail.

`error_classes(code)` is Postfix's smtp_check_code(): a failure reply whose code is outside
4xx/5xx, 555 (RFC 1869) or 500-509 (syntax trouble) counts as a protocol error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DATA",
    "PROTOCOL",
    "SessionTranscript",
    "TranscriptHook",
    "failure_code_class",
    "recorded_classes",
]

PROTOCOL: Final = "protocol"
DATA: Final = "data"
# The classes an SMTP/LMTP client session can raise (Postfix's smtp(8) sets no others).
_CLIENT_CLASSES: Final = frozenset({PROTOCOL, DATA})


@dataclass(frozen=True, slots=True)
class SessionTranscript:
    """One session's conversation: ``Out: COMMAND`` and ``In: reply`` lines, in order."""

    peer: str  # host[addr]:port, or the unix socket
    lmtp: bool
    errors: frozenset[str]
    lines: tuple[str, ...]
    queue_id: str = ""


TranscriptHook = Callable[[SessionTranscript], None]


def failure_code_class(code: int) -> str:
    """The error class of a reply that made a delivery fail ("" when it is an ordinary one)."""
    if code < 400 or code > 599 or code == 555 or 500 <= code < 510:
        return PROTOCOL
    return ""


def recorded_classes(notify_classes: tuple[str, ...]) -> frozenset[str]:
    """The client error classes worth recording a transcript for."""
    return _CLIENT_CLASSES & {c.lower() for c in notify_classes}

"""Session transcripts for the postmaster, as Postfix's smtp_chat_notify() sends them.

When ``notify_classes`` names an error class that a session ran into (``protocol``: the
server broke the protocol, e.g. a malformed reply or a reply code no command expects;
``data``: the local content could not be read), the postmaster (``error_notice_recipient``)
gets a copy of the conversation. The agent records the session's lines only while such a
class is enabled, and hands a `SessionTranscript` to its `notify` hook when the session had
one of those errors; the queue (queue/transcripts.py) turns it into mail.

`error_classes(code)` is Postfix's smtp_check_code(): a failure reply whose code is outside
4xx/5xx, 555 (RFC 1869) or 500-509 (syntax trouble) counts as a protocol error.
`TranscriptReporter` decides, when a session is given back, whether its conversation goes to
the postmaster, and starts the next one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mailcarrier.transport.session import Session

__all__ = [
    "DATA",
    "PROTOCOL",
    "SessionTranscript",
    "TranscriptHook",
    "TranscriptReporter",
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


class TranscriptReporter:
    """Postfix's smtp_chat_notify(): a session's conversation to the postmaster when it ran
    into an error class `notify_classes` asks for. Sessions record their lines only while
    `enabled` (the agent gives each new session a history then)."""

    __slots__ = ("_classes", "_double_bounce", "_notify")

    def __init__(
        self, notify: TranscriptHook | None, notify_classes: tuple[str, ...], double_bounce: str
    ) -> None:
        self._notify = notify
        self._classes = recorded_classes(notify_classes) if notify else frozenset()
        self._double_bounce = double_bounce.lower().split("@", 1)[0]

    @property
    def enabled(self) -> bool:
        return bool(self._classes)

    def report(self, session: Session, queue_id: str, sender: str) -> None:
        """Hand the session's conversation over when it had a wanted error, then start a
        new one (the session may be used again for another request)."""
        history = session.history
        if history is None or self._notify is None:
            return
        errors: set[str] = set()
        if session.protocol_errors:
            errors.add(PROTOCOL)
        # Failure replies (4xx/5xx) of the kind smtp_check_code() reports, seen as they came.
        errors.update(failure_code_class(code) for code in session.failure_codes)
        errors.discard("")
        wanted = frozenset(errors) & self._classes
        # Never a transcript about delivering a transcript (or any double-bounce mail): a
        # server that always misbehaves must not make notices breed.
        if wanted and history and sender.lower().split("@", 1)[0] != self._double_bounce:
            self._notify(
                SessionTranscript(
                    session.conn.peer.relay,
                    session.options.lmtp,
                    wanted,
                    tuple(history),
                    queue_id,
                )
            )
        session.channel.forget_transcript()

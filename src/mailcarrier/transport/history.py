"""The conversation of a session, recorded for a postmaster transcript.

`Session.history` is None (record nothing, the default) or a list of lines: "Out: ..." for
each command sent, "In: ..." for each reply line received, "In: (protocol error: ...)" for a
malformed reply. delivery/transcript.py turns it into the transcript Postfix mails to the
postmaster (notify_classes). Credentials never go in: AUTH shows only its mechanism, and
responses to challenges show as "...". The list stays bounded for a long, chatty session.
"""

from __future__ import annotations

from typing import Final

from mailcarrier.protocol.commands import Auth, AuthResponse, Command
from mailcarrier.protocol.reply import Reply

__all__ = ["HISTORY_LIMIT", "record_error", "record_in", "record_out"]

# Lines kept for one transcript (a long session with a chatty server stays bounded).
HISTORY_LIMIT: Final = 500


def record_out(history: list[str], command: Command, data: bytes) -> None:
    """An "Out:" line for a command sent as `data`."""
    if isinstance(command, Auth):  # never credentials in a transcript
        text = f"AUTH {command.mechanism}" + (" ..." if command.initial_response else "")
    elif isinstance(command, AuthResponse):
        text = "..."
    else:
        text = data.decode("utf-8", "replace").rstrip("\r\n")
    if len(history) < HISTORY_LIMIT:
        history.append(f"Out: {text}")


def record_in(history: list[str], reply: Reply) -> None:
    """The "In:" lines of a reply."""
    if len(history) < HISTORY_LIMIT:
        history.extend(f"In: {line}" for line in reply.lines)


def record_error(history: list[str], exc: Exception) -> None:
    """A reply that broke the protocol (always kept: it explains the transcript)."""
    history.append(f"In: (protocol error: {exc})")

"""What the Python API takes as a message, made into what requests and the queue read.

`Content` is what people have: ``bytes`` (the message), ``str`` (the message text, never a
file name: paths are `pathlib.Path`), a `pathlib.Path` (or any ``os.PathLike``), a binary
file object, or an `email.message.EmailMessage` / `email.message.Message`. `as_content()`
returns bytes, a `Path` or the file object unchanged; text becomes UTF-8; a message object is
serialised with ``email.policy.SMTP`` (CRLF lines, non-ASCII header text as RFC 2047 words),
or ``SMTPUTF8`` when an address in it needs UTF-8 and RFC 2047 cannot carry it, so that the
8-bit and SMTPUTF8 detection the command line does (delivery/autodetect.py) then sees the
same bytes. `envelope_from_headers()` gives the sender and recipients of a message whose
caller named none (``sendmail -t``) and the content without its Bcc header. Used by api.py
and send.py; anything else is a `UsageError` naming the type.
"""

from __future__ import annotations

import email.policy
import email.utils
import io
import os
from email.message import Message
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import BinaryIO, TypeAlias

from mailcarrier.errors import DataError, UsageError

__all__ = ["Content", "as_content", "envelope_from_headers"]

Content: TypeAlias = bytes | str | Path | BinaryIO | Message


def as_content(content: Content) -> bytes | Path | BinaryIO:
    """The message as bytes, a path or a binary file (see the module text)."""
    if isinstance(content, bytes):
        return content
    if isinstance(content, str):
        return content.encode("utf-8", "surrogateescape")
    if isinstance(content, Message):
        return _serialised(content)
    if isinstance(content, os.PathLike):
        return Path(content)
    if hasattr(content, "read"):
        return content
    raise UsageError(
        f"message content: expected bytes, str, pathlib.Path, a binary file or an "
        f"email.message.Message, not {type(content).__name__}"
    )


def _serialised(message: Message) -> bytes:
    try:
        return message.as_bytes(policy=email.policy.SMTP)
    except (UnicodeEncodeError, ValueError):
        # An address with a UTF-8 local part: only SMTPUTF8 can carry it as it is.
        return message.as_bytes(policy=email.policy.SMTPUTF8)


def envelope_from_headers(content: bytes) -> tuple[str, list[str], bytes]:
    """(sender, recipients, content without Bcc) from the header section: the sender from
    Sender: or the first From: address, the recipients from To, Cc and Bcc (the Resent-
    ones when there are any), as sendmail -t takes them. `DataError` when none is found."""
    end = _header_end(content)
    header = BytesHeaderParser(policy=email.policy.compat32).parsebytes(content[:end])
    resent = any(name.lower().startswith("resent-") for name in header)
    fields = ("resent-to", "resent-cc", "resent-bcc") if resent else ("to", "cc", "bcc")
    values = [str(v) for name in fields for v in header.get_all(name, [])]
    recipients = [addr for _, addr in email.utils.getaddresses(values) if addr]
    if not recipients:
        raise DataError("no recipient addresses found in message header")
    senders = [addr for _, addr in email.utils.getaddresses(header.get_all("sender", []))]
    senders += [addr for _, addr in email.utils.getaddresses(header.get_all("from", []))]
    sender = next((s for s in senders if s), "")
    return sender, recipients, _without_bcc(content, end)


def _header_end(content: bytes) -> int:
    for blank in (b"\r\n\r\n", b"\n\n"):
        at = content.find(blank)
        if at >= 0:
            return at + len(blank)
    return len(content)


def _without_bcc(content: bytes, end: int) -> bytes:
    out = io.BytesIO()
    skipping = False
    for line in content[:end].splitlines(keepends=True):
        if line[:1] in (b" ", b"\t") and skipping:
            continue  # a continuation of Bcc:
        skipping = line.split(b":", 1)[0].strip().lower() in (b"bcc", b"resent-bcc")
        if not skipping:
            out.write(line)
    return out.getvalue() + content[end:]

"""The one exception tree of mailcarrier.

Exceptions are for bugs, broken peers and bad configuration; per-recipient outcomes (a 550,
a deferral) are values (`mailcarrier.status.RecipientStatus`), never exceptions. Every
exception raised by this package derives from `MailcarrierError`. This module sits at the
bottom of the package: it imports only stages.py (the `Stage` a `TransportError` names).
"""

from __future__ import annotations

from mailcarrier.stages import Stage


class MailcarrierError(Exception):
    """Base of every exception mailcarrier raises on purpose."""


class ProtocolError(MailcarrierError):
    """The SMTP/LMTP conversation cannot continue."""


class LocalProtocolError(ProtocolError):
    """The caller misused a protocol object (a bug, or refused input such as CR/LF in an
    address)."""


class RemoteProtocolError(ProtocolError):
    """The peer broke the protocol: garbage, an over-long line, an endless reply, or a reply
    nobody asked for."""


class TransportError(MailcarrierError):
    """A network failure at a named protocol stage.

    `stage` is the `Stage` it happened at (e.g. ``Stage.RCPT``; None when no stage applies),
    `peer` the ``host[addr]:port`` text of the other end, `reason` Postfix's phrase for what
    happened ("lost connection", "conversation timed out", "Connection refused").
    """

    def __init__(self, reason: str, *, stage: Stage | None = None, peer: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.stage = stage
        self.peer = peer


class ConfigError(MailcarrierError):
    """A bad configuration value. The message names the parameter, the value and file:line."""

    def __init__(
        self,
        message: str,
        *,
        parameter: str = "",
        value: str = "",
        filename: str = "",
        lineno: int = 0,
    ) -> None:
        super().__init__(message)
        self.parameter = parameter
        self.value = value
        self.filename = filename
        self.lineno = lineno

    @property
    def location(self) -> str:
        """``file:line`` of the offending setting, or "" when it did not come from a file."""
        if not self.filename:
            return ""
        return f"{self.filename}:{self.lineno}" if self.lineno else self.filename

    def __str__(self) -> str:
        text = super().__str__()
        loc = self.location
        return f"{loc}: {text}" if loc and not text.startswith(loc) else text


class UsageError(MailcarrierError):
    """Bad command-line or API arguments (exit 64)."""


class AddressError(UsageError):
    """An envelope address given to the API that is not one (RFC 5321 Mailbox; see
    protocol/address.py): refused before anything is sent."""


class DataError(MailcarrierError):
    """Bad input data: a malformed address, a message that cannot be read (exit 65)."""


class MessageTooBigError(DataError):
    """The message is larger than ``message_size_limit``: reading stopped there, nothing
    was queued or sent. The command line exits 69 (EX_UNAVAILABLE), as Postfix's sendmail
    does for "message file too big" (cleanup's CLEANUP_STAT_SIZE); it is a `DataError` to
    API callers."""


class TemporaryError(MailcarrierError):
    """A local condition that may clear by itself: the disk or the quota is full, the queue
    directory is read-only or not writable, another scheduler holds the queue (exit 75,
    EX_TEMPFAIL: try again later). Nothing was lost: what was queued stays queued, and a
    message being submitted was not queued (no partial file is left).

    `path` names the file or directory, `errno` is the system error number (0 when none).
    """

    def __init__(self, message: str, *, path: str = "", errno: int = 0) -> None:
        super().__init__(message)
        self.path = path
        self.errno = errno

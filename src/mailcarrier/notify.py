"""`Notify`: RFC 3461 NOTIFY= values, as requests, queue files, sendmail's -N and SMTP's
RCPT TO ... NOTIFY= carry them.

A module of its own at the bottom of the layers (it imports only errors.py), so that
submission (queue/submit.py, queue/qfile.py) has it without the delivery request
(delivery/request.py, which re-exports it, as does the package: ``mailcarrier.Notify``).
"""

from __future__ import annotations

import enum

from mailcarrier.errors import UsageError

__all__ = ["Notify"]


class Notify(enum.Flag):
    """RFC 3461 NOTIFY= values. An empty flag means "not specified"."""

    NONE = 0
    NEVER = enum.auto()
    SUCCESS = enum.auto()
    FAILURE = enum.auto()
    DELAY = enum.auto()

    @classmethod
    def parse(cls, text: str) -> Notify:
        """Parse ``NEVER`` or a comma list of SUCCESS, FAILURE, DELAY (case-insensitive)."""
        result = cls.NONE
        words = [w.strip().upper() for w in text.split(",") if w.strip()]
        if not words:
            raise UsageError(f'bad NOTIFY value "{text}"')
        for word in words:
            try:
                result |= cls[word]
            except KeyError:
                raise UsageError(f'bad NOTIFY keyword "{word}" in "{text}"') from None
        if cls.NEVER in result and result != cls.NEVER:
            raise UsageError(f'NOTIFY=NEVER cannot be combined with other keywords: "{text}"')
        return result

    def wire(self) -> str:
        """The RFC 3461 text, e.g. ``SUCCESS,FAILURE``; "" when unspecified."""
        text = _NOTIFY_WIRE.get(self._value_)
        if text is None:
            order = (Notify.NEVER, Notify.SUCCESS, Notify.FAILURE, Notify.DELAY)
            text = _NOTIFY_WIRE[self._value_] = ",".join(f.name or "" for f in order if f in self)
        return text


# Notify.wire() by flag value (there are 16 at most).
_NOTIFY_WIRE: dict[int, str] = {0: ""}

"""Quoted-printable encoding of one body line at a time, as Postfix's 8bit->7bit downgrade does.

RFC 2045 6.7: a byte below 32 other than TAB, "=" and every byte above 126 become ``=XX``
(upper-case hex); an encoded line is at most 76 characters, longer ones are broken with a soft
line break (a trailing "="); a space or TAB at the end of a line is encoded so that transport
does not lose it. `QuotedPrintableLine` accepts a line in pieces (a long line arrives as several
records) and carries the output column across them. content/mime.py decides which parts need
this; nothing here knows about MIME structure.
"""

from __future__ import annotations

import re
from typing import Final

__all__ = ["QuotedPrintableLine"]

# RFC 2045 6.7 (1)-(3): what may appear literally. Everything else is =XX.
_UNSAFE: Final = re.compile(rb"[^\t\x20-\x3c\x3e-\x7e]")
# Postfix breaks once the output line has passed 72 characters; with "=XX" and the soft break
# "=" a line stays within RFC 2045's 76.
_SOFT_LIMIT: Final = 73


def _hex(match: re.Match[bytes]) -> bytes:
    return b"=%02X" % match[0][0]


class QuotedPrintableLine:
    """Encode body lines; `piece` returns finished output lines (each ending in LF)."""

    __slots__ = ("_carry",)

    def __init__(self) -> None:
        # Encoded text of the current output line not yet emitted (at most _SOFT_LIMIT + 2).
        self._carry = b""

    def piece(self, data: bytes, complete: bool) -> bytes:
        """Encode one piece of a line; `complete` when it ends the input line."""
        encoded = self._carry + _UNSAFE.sub(_hex, data)
        out: list[bytes] = []
        pos = 0
        size = len(encoded)
        while size - pos > _SOFT_LIMIT + (2 if complete else 0):
            cut = pos + _SOFT_LIMIT
            # Never split an =XX triplet across the soft break.
            if encoded[cut - 1] == 0x3D:
                cut -= 1
            elif encoded[cut - 2] == 0x3D:
                cut -= 2
            out.append(encoded[pos:cut] + b"=\n")
            pos = cut
        rest = encoded[pos:]
        if not complete:
            self._carry = rest
            return b"".join(out)
        self._carry = b""
        if rest[-1:] in (b" ", b"\t"):
            # RFC 2045 6.7 (3): trailing white space is encoded.
            rest = rest[:-1] + b"=%02X" % rest[-1]
            if len(rest) > 76 - 1:
                out.append(rest[:-3] + b"=\n")
                rest = rest[-3:]
        out.append(rest + b"\n")
        return b"".join(out)

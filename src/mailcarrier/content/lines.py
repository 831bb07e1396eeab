"""Split message content, fed in chunks of any size, into lines for the MIME processor.

`LineSplitter` is the record reader of the MIME path (content/mime.py): it yields each line
without its line ending (LF, CRLF; a lone CR stays in the line, as in a Postfix queue file
record), in pieces of at most `max_piece` bytes so that memory stays bounded even for a message
that is one enormous line. A piece is "complete" when it ends its line (Postfix's REC_TYPE_NORM)
and incomplete when more of the same line follows (REC_TYPE_CONT). The plain DATA path does not
use this module: content/encoder.py works on whole chunks.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Final

from mailcarrier.errors import UsageError

__all__ = ["DEFAULT_MAX_PIECE", "LineSplitter"]

# Postfix's line_length_limit: queue file records are at most this long, longer lines are
# stored as continuation records. The MIME state machine sees the same pieces here.
DEFAULT_MAX_PIECE: Final = 2048


class LineSplitter:
    """Incremental line splitter; `feed` and `finish` yield ``(piece, complete)`` pairs."""

    __slots__ = ("_buffer", "_max")

    def __init__(self, max_piece: int = DEFAULT_MAX_PIECE) -> None:
        if max_piece < 1:
            raise UsageError(f"max_piece must be positive, not {max_piece}")
        self._max = max_piece
        self._buffer = b""

    def feed(self, chunk: bytes) -> Iterator[tuple[bytes, bool]]:
        data = self._buffer + chunk if self._buffer else chunk
        start = 0
        while True:
            end = data.find(b"\n", start)
            if end < 0:
                break
            line_end = end - 1 if end > start and data[end - 1] == 0x0D else end
            yield from self._pieces(data, start, line_end, True)
            start = end + 1
        rest = data[start:]
        # Keep a possible CR of a CRLF split across chunks, and less than one piece; emit the
        # rest now as incomplete pieces so memory never grows with the line length.
        keep = min(len(rest), self._max)
        if rest.endswith(b"\r"):
            keep = max(keep, 1)
        cut = len(rest) - keep
        if rest[:cut]:
            yield from self._pieces(rest, 0, cut, False)
        self._buffer = rest[cut:]

    def finish(self) -> Iterator[tuple[bytes, bool]]:
        """The last line, if the content did not end with a line ending (it is completed)."""
        if self._buffer:
            data, self._buffer = self._buffer, b""
            yield from self._pieces(data, 0, len(data), True)

    def _pieces(
        self, data: bytes, start: int, end: int, complete: bool
    ) -> Iterator[tuple[bytes, bool]]:
        step = self._max
        while end - start > step:
            yield data[start : start + step], False
            start += step
        yield data[start:end], complete

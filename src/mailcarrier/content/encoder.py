"""Streaming SMTP DATA encoding: CRLF normalisation, dot-stuffing and the line length limit.

`DataEncoder` turns message content, fed in chunks of any size, into the bytes that go on the
wire between the DATA command's 354 reply and the terminating ``.<CR><LF>`` (which the protocol
layer sends, not this module). It does what Postfix's smtp_text_out() does to each header and
body line, with the same results whatever the chunk boundaries:

* every line ends in CRLF; a bare LF and a bare CR each end a line (RFC 5321 2.3.8 allows no
  other line ending), so no ``<LF>.<LF>``, ``<CR>.<CR><LF>`` or similar sequence in the content
  can end the DATA early at a receiver that is lax about line endings (SMTP smuggling);
* a line that starts with "." gets one more "." (RFC 5321 4.5.2), unless dot-stuffing is off
  (BDAT, RFC 3030, sends content without it);
* a line longer than `smtp_line_length_limit` bytes (CRLF not counted) is broken by inserting
  ``<CR><LF><SPACE>``, as Postfix does for header and body lines alike, so a long header line
  becomes a folded header; 0 means no limit;
* the last line is always terminated, and empty content stays empty.

It does not convert 8bit content (``content/mime.py`` of the 8BITMIME issue does), inspect
headers, or read files (`mailcarrier.content.stream` does); it only counts what it saw so the
caller can decide and log ("breaking line > N bytes with <CR><LF>SPACE", BODY=8BITMIME).
The hot path works on whole chunks with bytes methods; Python-level loops run once per chunk
or once per broken line, never once per byte. Content that is already clean (CRLF line ends
only, no line over the limit: nearly all mail) goes out as it is, with only its leading dots
stuffed (`_clean`); everything else takes the general path through LF-terminated lines
(`_general`), which gives the same bytes for clean content.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from mailcarrier.errors import UsageError

__all__ = [
    "DEFAULT_LINE_LENGTH_LIMIT",
    "DataEncoder",
    "EncoderStatistics",
    "encode_whole",
    "encode_whole_counted",
]

# Postfix's smtp_line_length_limit default since Postfix 2.9 (it was 990 up to 2.8): 998 plus
# CRLF is RFC 5321 4.5.3.1.6's 1000-octet text line.
DEFAULT_LINE_LENGTH_LIMIT: Final = 998

# A limit of 1 leaves no room after the inserted space, so a long line would never shrink
# (Postfix loops forever there); 0 switches the limit off.
_MIN_LINE_LENGTH_LIMIT: Final = 2

_CR: Final = b"\r"
_LF: Final = b"\n"
_CRLF: Final = b"\r\n"
_DOT: Final = b"."
_DOT_BYTE: Final = 0x2E
_CR_BYTE: Final = 0x0D
_LF_BYTE: Final = 0x0A
_LF_DOT: Final = re.compile(rb"\n\.")
_LF_DOT_DOT: Final = b"\n.."
_BARE_CR: Final = re.compile(rb"\r(?!\n)")
# What Postfix inserts to break a long line: the line ends, and the rest continues after a
# space, which keeps a broken header line a valid folded header (RFC 5322 2.2.3).
_LINE_BREAK: Final = b"\r\n "


@dataclass(frozen=True, slots=True)
class EncoderStatistics:
    """What a `DataEncoder` has seen and produced so far.

    `bytes_in` counts content bytes fed; `bytes_out` the wire bytes returned (without the final
    ``.<CR><LF>``); `saw_8bit` is true once any byte >= 0x80 was fed; `lines_broken` counts
    input lines longer than the limit (Postfix logs the first such line once per message).
    """

    bytes_in: int
    bytes_out: int
    saw_8bit: bool
    lines_broken: int


class DataEncoder:
    """Incremental SMTP DATA encoder; see the module docstring for the rules.

    Call `feed` with each chunk of content and send what it returns, then call `finish` once and
    send what it returns, then the protocol layer's ``.<CR><LF>``. The output never depends on how
    the content was split into chunks. At most one byte (a CR that may be the first half of a
    CRLF) is held back between calls, so memory is bounded by the chunk size.
    """

    __slots__ = (
        "_bytes_in",
        "_bytes_out",
        "_column",
        "_dot_stuff",
        "_finished",
        "_limit",
        "_line_broken",
        "_lines_broken",
        "_pending_cr",
        "_saw_8bit",
    )

    def __init__(
        self, *, line_length_limit: int = DEFAULT_LINE_LENGTH_LIMIT, dot_stuff: bool = True
    ) -> None:
        if line_length_limit < 0 or 0 < line_length_limit < _MIN_LINE_LENGTH_LIMIT:
            raise UsageError(
                f"line_length_limit must be 0 (no limit) or at least {_MIN_LINE_LENGTH_LIMIT}, "
                f"not {line_length_limit}"
            )
        self._limit = line_length_limit
        self._dot_stuff = dot_stuff
        # Bytes of the current output line sent so far (an inserted space counts, a stuffed
        # dot does not, as in Postfix); 0 means "at the start of a line".
        self._column = 0
        # True when the current input line has already been broken at least once.
        self._line_broken = False
        # The previous chunk ended in CR: it ends a line either way, but whether it is a CRLF
        # or a bare CR followed by LF (two line ends) depends on the next chunk's first byte.
        self._pending_cr = False
        self._finished = False
        self._bytes_in = 0
        self._bytes_out = 0
        self._saw_8bit = False
        self._lines_broken = 0

    # -- introspection -------------------------------------------------------------------

    @property
    def line_length_limit(self) -> int:
        """The line length limit in bytes, CRLF not counted (0: no limit)."""
        return self._limit

    @property
    def dot_stuff(self) -> bool:
        """Whether lines starting with "." get another "." (DATA: yes; BDAT: no)."""
        return self._dot_stuff

    @property
    def bytes_in(self) -> int:
        """Content bytes fed so far."""
        return self._bytes_in

    @property
    def bytes_out(self) -> int:
        """Wire bytes returned so far (without the final ``.<CR><LF>``)."""
        return self._bytes_out

    @property
    def saw_8bit(self) -> bool:
        """True once any fed byte was >= 0x80."""
        return self._saw_8bit

    @property
    def lines_broken(self) -> int:
        """Number of input lines that were longer than the limit and were broken."""
        return self._lines_broken

    @property
    def finished(self) -> bool:
        """True after `finish`; the encoder then refuses more input."""
        return self._finished

    def statistics(self) -> EncoderStatistics:
        """A snapshot of the counters."""
        return EncoderStatistics(
            bytes_in=self._bytes_in,
            bytes_out=self._bytes_out,
            saw_8bit=self._saw_8bit,
            lines_broken=self._lines_broken,
        )

    # -- encoding --------------------------------------------------------------------------

    def feed(self, chunk: bytes | bytearray | memoryview) -> bytes:
        """Encode one chunk of content and return the wire bytes that are ready (maybe b"").

        The chunk may have any size, including 0; a bytearray or memoryview is copied once.
        """
        if self._finished:
            raise UsageError("DataEncoder.feed() called after finish()")
        data = chunk if type(chunk) is bytes else bytes(chunk)
        if not data:
            return b""
        self._bytes_in += len(data)
        if not self._saw_8bit and not data.isascii():
            self._saw_8bit = True

        if self._pending_cr:
            data = _CR + data
            self._pending_cr = False
        if data[-1] == _CR_BYTE:
            # The CR ends a line whatever follows, but only the next chunk (or finish) tells
            # whether it is half of a CRLF or a bare CR followed by another line ending.
            self._pending_cr = True
            data = data[:-1]
            if not data:
                return b""
        # Every remaining CR is followed by a byte in this chunk, so what follows is exact.
        # Removing the CRs and turning each LF back into CRLF gives the data back exactly when
        # every CR is followed by LF and every LF is preceded by CR: the usual, already clean
        # content. These two single-byte replaces run at memchr speed, faster than any search
        # for a bare CR or a bare LF, and the first is the general path's CRLF-to-LF step.
        unix = data.replace(_CR, b"")
        if unix.replace(_LF, _CRLF) == data:
            result = self._clean(data)
            if result is None:
                result = self._general(unix)
        elif len(unix) == len(data):
            result = self._general(data)  # LF line ends only
        elif _BARE_CR.search(data) is None:
            result = self._general(unix)  # CRLF and bare LF
        else:
            # CRLF is one line end, and a bare CR is a line end of its own (RFC 5321 2.3.8).
            result = self._general(data.replace(_CRLF, _LF).replace(_CR, _LF))
        self._bytes_out += len(result)
        return result

    def _clean(self, data: bytes) -> bytes | None:
        """The wire bytes of `data`, whose line ends are all CRLF, or None when a line may be
        over the limit (the general path then breaks it).

        The complete lines go out as they are, with their leading dots stuffed; the rest of
        a line begun in an earlier chunk and an unterminated last line go through `_segment`,
        as in the general path (which gives the same bytes for this data, only slower).
        """
        limit = self._limit
        if limit and _has_long_piece(data, limit + 1):
            # (+1: each line's CR.) The first and last pieces are broken by _segment anyway.
            return None
        out: list[bytes] = []
        if self._column:
            # The current line continues up to the first CRLF (data does not start with LF).
            first = data.find(_LF)
            if first < 0:
                self._segment(data, False, out)
                return b"".join(out)
            self._segment(data[: first - 1], True, out)
            data = data[first + 1 :]
            if not data:
                return b"".join(out)
        last = data.rfind(_LF) + 1
        if last == len(data):
            head = data
            tail = b""
        else:
            head = data[:last]
            tail = data[last:]
        if head and self._dot_stuff:
            # RFC 5321 4.5.2. re.sub finds the rare "\n." several times faster than
            # bytes.replace does.
            if _LF_DOT.search(head) is not None:
                head = _LF_DOT.sub(_LF_DOT_DOT, head)
            if head[0] == _DOT_BYTE:
                head = _DOT + head
        if not out and not tail:
            return head
        out.append(head)
        if tail:
            self._segment(tail, False, out)
        return b"".join(out)

    def _general(self, data: bytes) -> bytes:
        """The wire bytes of `data`, whose line ends are all LF (no CR left), at any column."""
        out: list[bytes] = []
        first_lf = data.find(_LF)
        if first_lf < 0:
            self._segment(data, False, out)
        else:
            last_lf = data.rfind(_LF)
            self._segment(data[:first_lf], True, out)
            if last_lf > first_lf:
                self._whole_lines(data[first_lf + 1 : last_lf + 1], out)
            self._segment(data[last_lf + 1 :], False, out)
        return b"".join(out)

    def finish(self) -> bytes:
        """Flush the held-back tail and terminate the last line; return the final wire bytes.

        Like Postfix, which always sends a CRLF after the last record even when the queue file
        ends in a partial line, a last line without a line ending gets one. Empty content gives
        b"" (the protocol layer then sends only ``.<CR><LF>``). Calling it twice is an error.
        """
        if self._finished:
            raise UsageError("DataEncoder.finish() called twice")
        self._finished = True
        out: list[bytes] = []
        if self._pending_cr:
            # A CR at the very end is a bare CR: it ends the line.
            self._pending_cr = False
            self._segment(b"", True, out)
        elif self._column:
            self._segment(b"", True, out)
        result = b"".join(out)
        self._bytes_out += len(result)
        return result

    # -- internals ---------------------------------------------------------------------------

    def _segment(self, text: bytes, ends_line: bool, out: list[bytes]) -> None:
        """Emit `text` (no line endings) at the current column; then end the line if asked.

        This is where the chunk-boundary state lives: the column, the pending break when a
        line filled the limit exactly, and the at-line-start test for dot-stuffing.
        """
        column = self._column
        if text:
            if column == 0 and self._dot_stuff and text[0] == _DOT_BYTE:
                # RFC 5321 4.5.2. Postfix does not count the added dot against the limit.
                out.append(_DOT)
            limit = self._limit
            if limit == 0:
                out.append(text)
                column += len(text)
            else:
                size = len(text)
                pos = 0
                while pos < size:
                    if column >= limit:
                        # The line is full and more of it follows: break it. A line that
                        # ends exactly at the limit is not broken (Postfix neither).
                        out.append(_LINE_BREAK)
                        column = 1
                        if not self._line_broken:
                            self._line_broken = True
                            self._lines_broken += 1
                    take = min(limit - column, size - pos)
                    out.append(text[pos : pos + take])
                    pos += take
                    column += take
        if ends_line:
            out.append(_CRLF)
            column = 0
            self._line_broken = False
        self._column = column

    def _whole_lines(self, block: bytes, out: list[bytes]) -> None:
        """Emit `block`: complete LF-terminated lines, the first one starting a line."""
        limit = self._limit
        if limit and _may_have_long_line(block, limit):
            lines = block.split(_LF)
            lines.pop()  # the empty string after the block's final LF
            long_lines = [i for i, size in enumerate(map(len, lines)) if size > limit]
            if long_lines:
                # Only the long lines go through the per-line breaking code; the runs of short
                # lines between them keep the bulk path.
                done = 0
                for i in long_lines:
                    if i > done:
                        self._short_lines(_LF.join(lines[done:i]) + _LF, out)
                    self._segment(lines[i], True, out)
                    done = i + 1
                if done < len(lines):
                    self._short_lines(_LF.join(lines[done:]) + _LF, out)
                return
        self._short_lines(block, out)

    def _short_lines(self, block: bytes, out: list[bytes]) -> None:
        """Emit `block`: complete LF-terminated lines, none longer than the limit."""
        if self._dot_stuff:
            if block[0] == _DOT_BYTE:
                out.append(_DOT)
            # re.sub finds the rare "\n." several times faster than bytes.replace does.
            block = _LF_DOT.sub(_LF_DOT_DOT, block)
        out.append(block.replace(_LF, _CRLF))


def _may_have_long_line(block: bytes, limit: int) -> bool:
    """Cheap test: False means no line of `block` (LF-separated) is longer than `limit`.

    A line of limit+1 or more bytes covers a whole aligned window of (limit+1)//2 bytes, so if
    every such window holds an LF there is no long line. That is one C-level find() per window
    (about 130 per 64 KiB at the default limit) instead of splitting the block into lines.
    """
    size = len(block)
    if size <= limit:
        return False
    step = (limit + 1) // 2
    find = block.find
    return any(find(_LF, start, start + step) < 0 for start in range(0, size - step + 1, step))


def encode_whole(
    data: bytes, *, line_length_limit: int = DEFAULT_LINE_LENGTH_LIMIT, dot_stuff: bool = True
) -> bytes:
    """The wire bytes of a whole message: what `DataEncoder.feed(data)` and `finish()` give.

    Content that is already clean (CRLF line ends only, a complete last line, no line over
    the limit) needs only its dots stuffed, with no encoder object; anything else goes
    through `DataEncoder`.
    """
    return encode_whole_counted(data, line_length_limit=line_length_limit, dot_stuff=dot_stuff)[0]


def encode_whole_counted(
    data: bytes, *, line_length_limit: int = DEFAULT_LINE_LENGTH_LIMIT, dot_stuff: bool = True
) -> tuple[bytes, int]:
    """`encode_whole`, and the number of lines it broke at the limit (`lines_broken`)."""
    if (
        data
        and (line_length_limit == 0 or line_length_limit >= _MIN_LINE_LENGTH_LIMIT)
        and data[-1] == _LF_BYTE
    ):
        if _CR not in data:
            # LF line ends only (a Postfix queue file's records): each becomes CRLF, as
            # the encoder would make them, when no line needs breaking.
            if not (line_length_limit and _has_long_piece(data, line_length_limit)):
                return _stuffed(data, dot_stuff).replace(_LF, _CRLF), 0
        elif data.replace(_CR, b"").replace(_LF, _CRLF) == data and not (
            line_length_limit and _has_long_piece(data, line_length_limit + 1)
        ):
            return _stuffed(data, dot_stuff), 0
    encoder = DataEncoder(line_length_limit=line_length_limit, dot_stuff=dot_stuff)
    wire = encoder.feed(data) + encoder.finish()
    return wire, encoder.lines_broken


def _stuffed(data: bytes, dot_stuff: bool) -> bytes:
    """`data` (whole lines) with a dot added before each line that begins with one (RFC
    5321 4.5.2), when asked."""
    if dot_stuff:
        if _LF_DOT.search(data) is not None:
            data = _LF_DOT.sub(_LF_DOT_DOT, data)
        if data[0] == _DOT_BYTE:
            data = _DOT + data
    return data


def _has_long_piece(data: bytes, limit: int) -> bool:
    """Whether some LF-separated piece of `data` is longer than `limit` bytes (exact).

    Each step jumps to the last LF within reach of the current line's start, so it takes
    about len(data) / limit C-level rfind() calls, however short the lines are.
    """
    pos = 0
    last = len(data) - limit - 1  # a piece starting after this is short whatever follows
    reach = limit + 1
    rfind = data.rfind
    while pos <= last:
        lf = rfind(_LF, pos, pos + reach)
        if lf < 0:
            return True
        pos = lf + 1
    return False

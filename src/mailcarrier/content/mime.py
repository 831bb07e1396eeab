"""A streaming MIME state machine with Postfix's 8bit->7bit downgrade (mime_state.c's job).

`MimeProcessor` reads message content as line pieces (content/lines.py), finds each header
block and body, follows the MIME structure (RFC 2045, 2046) and writes the content out again,
line by line, with LF line endings; content/pipeline.py feeds that to the DATA encoder. It calls
two hooks on the way, which header/body checks and generic address rewriting use: `header_out`
for every logical header (with its class: primary, multipart part, or nested message) and
`body_out` for every other line piece. With ``downgrade`` it converts, as Postfix does:

* only a part whose declared Content-Transfer-Encoding is 8bit or binary is converted (no
  such header means 7bit: passed through even if it holds 8-bit bytes); 8-bit header text
  passes unchanged;
* that part's Content-Transfer-Encoding header is dropped and a new one is added at the end of
  its header block: ``7bit`` for message/* and multipart/*, ``quoted-printable`` otherwise, and
  the body of a leaf part is re-encoded quoted-printable (content/qp.py);
* message/rfc822 is parsed (its headers are "nested" headers, its body is converted on its own
  terms); message/partial and external-body are not parsed, and their 8bit body is encoded
  quoted-printable although the header says 7bit (a Postfix quirk kept for equal output);
* multipart boundaries live on a stack, at most `boundary_length_limit` bytes each, matched by
  prefix; ``--boundary--`` closes its part, and an outer boundary also closes inner ones; the
  parts of multipart/digest default to message/rfc822;
* more than `nesting_limit` levels is `ContentError` 5.6.0 "MIME nesting exceeds safety limit"
  (the caller ends the transaction ungracefully, as Postfix does); a logical header longer than
  `header_size_limit` bytes is truncated.

Without ``downgrade`` and with ``mime=False`` (Postfix's MIME_OPT_DISABLE_MIME) only the primary
header block is recognised; everything after it is body.
"""

from __future__ import annotations

import email.message
import email.utils
import enum
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Final

from mailcarrier.content.qp import QuotedPrintableLine
from mailcarrier.errors import MailcarrierError

__all__ = [
    "ContentError",
    "HeaderClass",
    "MimeLimits",
    "MimeProcessor",
]

# RFC 5322 2.2: field-name is printable US-ASCII except ":"; Postfix allows white space
# before the colon.
_HEADER_START: Final = re.compile(rb"[!-9;-~]+[ \t]*:")
_CTE_8BIT: Final = frozenset({"8bit", "binary"})
_CTE_IDENTITY: Final = frozenset({"7bit", "8bit", "binary"})


class ContentError(MailcarrierError):
    """The content cannot be sent as it is; `dsn` and `text` are what Postfix reports."""

    def __init__(self, dsn: str, text: str) -> None:
        super().__init__(text)
        self.dsn = dsn
        self.text = text


class HeaderClass(enum.Enum):
    """Which header block a header is in (Postfix's MIME_HDR_PRIMARY/MULTIPART/NESTED)."""

    PRIMARY = "primary"
    MULTIPART = "multipart"
    NESTED = "nested"


@dataclass(frozen=True, slots=True)
class MimeLimits:
    """Postfix's safety limits: mime_nesting_limit, mime_boundary_length_limit,
    header_size_limit."""

    nesting_limit: int = 100
    boundary_length_limit: int = 2048
    header_size_limit: int = 102400


# header_out(class, logical header without its final line end, "\n" between folded lines)
# returns the header lines to write (without line ends); [] drops the header.
HeaderHook = Callable[[HeaderClass, bytes], Iterable[bytes]]
# body_out(piece, complete) returns the piece to write (None drops the line).
BodyHook = Callable[[bytes, bool], bytes | None]


@dataclass(slots=True)
class _Part:
    """What the header block of the current part said."""

    ctype: str = "text"
    subtype: str = "plain"
    encoding: str = "7bit"
    boundary: bytes = b""


@dataclass(frozen=True, slots=True)
class _Boundary:
    text: bytes
    digest: bool
    depth: int  # nesting level of the parts it separates


def _pass_header(_cls: HeaderClass, text: bytes) -> Iterable[bytes]:
    return text.split(b"\n")


def _parse_content_type(value: str, part: _Part) -> None:
    msg = email.message.Message()
    msg["Content-Type"] = value
    ctype = msg.get_content_type()  # text/plain when malformed (RFC 2045 5.2)
    part.ctype, _, part.subtype = ctype.partition("/")
    boundary = msg.get_param("boundary")
    if isinstance(boundary, tuple):  # RFC 2231 form
        boundary = email.utils.collapse_rfc2231_value(boundary)
    part.boundary = boundary.encode("latin-1", "replace") if isinstance(boundary, str) else b""


class MimeProcessor:
    """Feed ``(piece, complete)`` pairs with `piece`; each call returns output bytes (LF lines)."""

    def __init__(
        self,
        *,
        downgrade: bool,
        mime: bool = True,
        limits: MimeLimits | None = None,
        header_out: HeaderHook = _pass_header,
        body_out: BodyHook | None = None,
    ) -> None:
        self._downgrade = downgrade
        self._mime = mime or downgrade
        self._limits = limits or MimeLimits()
        self._header_out = header_out
        self._body_out = body_out
        self._in_header = True
        self._header_class = HeaderClass.PRIMARY
        self._part = _Part()
        self._stack: list[_Boundary] = []
        self._depth = 0
        self._header: bytearray | None = None  # the logical header being collected
        self._header_full = False
        self._line_start = True  # the next piece starts a line
        self._piece_in_header = False  # an incomplete header line continues
        self._qp: QuotedPrintableLine | None = None
        self._converted_header = False  # the old CTE header was dropped
        self._nested = False  # a message/rfc822 header block ended: nested headers next

    # -- public ----------------------------------------------------------------------------

    def piece(self, data: bytes, complete: bool) -> bytes:
        out: list[bytes] = []
        starts = self._line_start
        self._line_start = complete
        if self._in_header:
            if not starts and self._piece_in_header:
                self._add_to_header(data)
                self._piece_in_header = not complete
                return b""
            if starts and self._header_line(data, out):
                self._piece_in_header = not complete
                return b"".join(out)
        self._body(data, complete, starts, out)
        return b"".join(out)

    def finish(self) -> bytes:
        """End of content: flush a header block that never ended."""
        out: list[bytes] = []
        if self._in_header:
            self._end_header(out)
        return b"".join(out)

    # -- header blocks ---------------------------------------------------------------------

    def _header_line(self, data: bytes, out: list[bytes]) -> bool:
        """Handle a line that starts inside a header block; False: it is a body line."""
        if data[:1] in (b" ", b"\t") and self._header is not None:
            self._add_to_header(b"\n" + data)
            return True
        self._flush_header(out)
        if data and _HEADER_START.match(data):
            self._header = bytearray()
            self._header_full = False
            self._add_to_header(data)
            return True
        # An empty line ends the header block and is the first body line; any other
        # non-header line ends it too (and is body), as in Postfix.
        self._end_header(out)
        return False

    def _add_to_header(self, data: bytes) -> None:
        assert self._header is not None
        room = self._limits.header_size_limit - len(self._header)
        if room <= 0:
            self._header_full = True
            return
        self._header += data[:room]

    def _flush_header(self, out: list[bytes]) -> None:
        if self._header is None:
            return
        text = bytes(self._header)
        self._header = None
        if self._mime and self._mime_header(text):
            return  # a converted part's old Content-Transfer-Encoding
        out.extend(line + b"\n" for line in self._header_out(self._header_class, text))

    def _mime_header(self, text: bytes) -> bool:
        """Note Content-Type and Content-Transfer-Encoding; True: drop this header."""
        name, _, value = text.partition(b":")
        key = name.strip().lower()
        if key == b"content-type":
            _parse_content_type(value.decode("latin-1").replace("\n", " "), self._part)
        elif key == b"content-transfer-encoding":
            word = value.decode("latin-1").strip().split(None, 1)
            encoding = word[0].lower().strip("\"'();") if word else "7bit"
            self._part.encoding = encoding
            if self._downgrade and encoding in _CTE_8BIT:
                self._converted_header = True
                return True
        return False

    def _end_header(self, out: list[bytes]) -> None:
        self._flush_header(out)
        self._in_header = False
        part = self._part
        if not self._mime:
            return
        composite = part.ctype in ("multipart", "message")
        if self._converted_header:
            self._converted_header = False
            cte = b"7bit" if composite else b"quoted-printable"
            extra = b"Content-Transfer-Encoding: " + cte
            out.extend(line + b"\n" for line in self._header_out(self._header_class, extra))
        eight = part.encoding in _CTE_8BIT
        if (
            part.ctype == "multipart"
            and part.boundary
            and part.encoding in _CTE_IDENTITY
            and self._enter()
        ):
            limit = self._limits.boundary_length_limit
            self._stack.append(
                _Boundary(part.boundary[:limit], part.subtype == "digest", self._depth)
            )
        elif (
            part.ctype == "message"
            and part.subtype in ("rfc822", "global")
            and part.encoding in _CTE_IDENTITY
            and self._enter()
        ):
            self._nested = True
        elif self._downgrade and eight and part.ctype != "multipart":
            self._qp = QuotedPrintableLine()

    def _enter(self) -> bool:
        """One level deeper; False (not downgrading) when past the limit: the rest of this
        part is then plain body, as Postfix does when it does not report nesting errors."""
        if self._depth >= self._limits.nesting_limit:
            if self._downgrade:
                raise ContentError("5.6.0", "MIME nesting exceeds safety limit")
            return False
        self._depth += 1
        return True

    def _start_header(self, cls: HeaderClass, part: _Part) -> None:
        self._in_header = True
        self._header_class = cls
        self._part = part
        self._header = None
        self._qp = None

    # -- bodies ----------------------------------------------------------------------------

    def _body(self, data: bytes, complete: bool, starts: bool, out: list[bytes]) -> None:
        if self._nested:
            # The body of a message/rfc822 part is a message: its header block follows the
            # empty line that ended the outer one.
            self._nested = False
            self._start_header(HeaderClass.NESTED, _Part())
            if starts and complete and not data:
                self._emit(b"", True, out)
                return
            if starts and self._header_line(data, out):
                self._piece_in_header = not complete
                return
        if starts and self._stack and data[:2] == b"--" and self._boundary(data, out):
            self._emit(data, complete, out)
            return
        if self._qp is not None:
            encoded = self._qp.piece(data, complete)
            if encoded and self._body_out is not None:
                # Body checks see what goes on the wire, as in Postfix (mime_state encodes
                # before its body call-back runs).
                for line in encoded[:-1].split(b"\n"):
                    self._emit(line, True, out)
            elif encoded:
                out.append(encoded)
            return
        self._emit(data, complete, out)

    def _emit(self, data: bytes, complete: bool, out: list[bytes]) -> None:
        if self._body_out is not None:
            result = self._body_out(data, complete)
            if result is None:
                return
            data = result
        out.append(data + b"\n" if complete else data)

    def _boundary(self, line: bytes, out: list[bytes]) -> bool:
        """A ``--boundary`` line: close inner parts; start the next part or close this one."""
        for level in range(len(self._stack) - 1, -1, -1):
            entry = self._stack[level]
            if not line.startswith(entry.text, 2):
                continue
            if self._qp is not None:
                # The previous line was complete; nothing is carried. Stop encoding.
                self._qp = None
            self._nested = False
            del self._stack[level + 1 :]
            self._depth = entry.depth
            if line.startswith(b"--", 2 + len(entry.text)):
                del self._stack[level]
                self._depth = entry.depth - 1
                self._in_header = False
                self._part = _Part(ctype="multipart")
                return True
            part = _Part(ctype="message", subtype="rfc822") if entry.digest else _Part()
            # The boundary line itself is body output; the part's headers follow it.
            self._start_header(HeaderClass.MULTIPART, part)
            return True
        return False

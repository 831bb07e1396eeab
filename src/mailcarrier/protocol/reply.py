"""SMTP/LMTP reply parsing (RFC 5321 4.2, RFC 3463), sans-IO and bounded.

`ReplyParser` takes bytes as they arrive and yields complete `Reply` values. It accepts CRLF
or bare LF line ends (as Postfix does), joins multi-line replies, and extracts the RFC 3463
enhanced status code of the first line. Everything is bounded: a line longer than
`max_line_length`, more than `max_lines` lines in one reply, or a malformed line raises
`RemoteProtocolError` instead of growing memory. An optional line filter (smtp_reply_filter)
rewrites each line before it is parsed. Matching replies to commands is the client
state machine's job (`client.py`), not this module's. The module keeps no state; each
parser (one per connection) remembers the one-line replies it has parsed, a bounded few
(servers repeat "250 2.1.0 Ok" and "354 ..." for every message).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mailcarrier.errors import RemoteProtocolError
from mailcarrier.status import default_dsn

__all__ = ["DEFAULT_MAX_LINES", "DEFAULT_MAX_LINE_LENGTH", "LineFilter", "Reply", "ReplyParser"]

# smtp_reply_filter (postconf(5)): one reply line in, the line to parse instead out.
LineFilter = Callable[[str], str]

# Postfix reads reply lines up to line_length_limit (2048); RFC 5321 4.5.3.1.5 says 512.
DEFAULT_MAX_LINE_LENGTH: Final = 2048
# EHLO replies are the longest legitimate multi-line replies; a few dozen lines at most.
DEFAULT_MAX_LINES: Final = 200

_LINE_RE: Final = re.compile(rb"([2-5][0-9][0-9])([ -]|$)(.*)", re.DOTALL)
# RFC 3463: class.subject.detail at the start of the text, followed by space or end.
# ASCII only: str patterns would otherwise take "٣" or "²" for digits.
_ENHANCED_RE: Final = re.compile(r"([245])\.(\d{1,3})\.(\d{1,3})(?=\s|$)", re.ASCII)


@dataclass(frozen=True, slots=True)
class Reply:
    """One complete server reply.

    `lines` are the full reply lines with their codes, as received (minus line ends);
    `enhanced` is the RFC 3463 code of the first line, or None when the server sent none
    or one whose class disagrees with the reply code.
    """

    code: int
    lines: tuple[str, ...]
    enhanced: str | None = None

    @property
    def dsn(self) -> str:
        """The enhanced code, or the default Postfix assumes (X.0.0) when there is none."""
        return self.enhanced or default_dsn(self.code)

    @property
    def text(self) -> str:
        """The reply as Postfix prints it in a diagnostic: lines joined by a space."""
        return " ".join(self.lines)

    @property
    def messages(self) -> tuple[str, ...]:
        """Each line's text without the code and separator (EHLO keywords live here)."""
        return tuple(line[4:] for line in self.lines)

    @property
    def is_success(self) -> bool:
        """2xx: RFC 5321 4.2.1's Positive Completion reply."""
        return 200 <= self.code < 300

    @property
    def is_positive(self) -> bool:
        """2xx or 3xx (completion, or go ahead: 354, 334)."""
        return 200 <= self.code < 400

    @property
    def is_transient(self) -> bool:
        return 400 <= self.code < 500

    @property
    def is_permanent(self) -> bool:
        return self.code >= 500

    @classmethod
    def make(cls, code: int, *messages: str) -> Reply:
        """Build a reply from its code and line texts (for tests and local replies)."""
        texts = messages or ("",)
        lines = tuple(
            f"{code}{'-' if i < len(texts) - 1 else ' '}{t}".rstrip() for i, t in enumerate(texts)
        )
        return cls(code, lines, _enhanced(code, texts[0]))


def _enhanced(code: int, text: str) -> str | None:
    m = _ENHANCED_RE.match(text)
    if m is None or int(m.group(1)) != code // 100:
        return None
    return m.group(0)


def _decode(raw: bytes) -> str:
    # Replies are ASCII by RFC; keep anything else visible but harmless.
    return raw.decode("utf-8", errors="backslashreplace")


def _malformed(raw: bytes) -> RemoteProtocolError:
    return RemoteProtocolError(f'malformed reply line: "{_decode(raw[:60])}"')


# One-line replies a parser has parsed are remembered by their bytes (up to the LF, so with
# the CR of a CRLF: a known reply is found before its line end is looked at):
# a `Reply` is an immutable value of its bytes alone, so one object can stand for every
# occurrence. The first few distinct ones are kept for the connection's life: those a server
# repeats come with its first message; unique ones ("queued as ...") then find no room.
_SEEN_LIMIT: Final = 32
_SEEN_LINE_LENGTH: Final = 512


def _one_line_reply(raw: bytes) -> Reply:
    """The complete reply that `raw` (one line, not a continuation) is, or a
    `RemoteProtocolError` when it is malformed."""
    if _LINE_RE.fullmatch(raw) is None:
        raise _malformed(raw)
    line = _decode(raw)
    code = int(raw[:3])
    return Reply(code, (line,), _enhanced(code, line[4:]))


class ReplyParser:
    """Incremental reply parser: `feed()` bytes, then `next_reply()` until it returns None."""

    __slots__ = (
        "_buffer",
        "_line_filter",
        "_lines",
        "_max_line_length",
        "_max_lines",
        "_pos",
        "_scan_from",
        "_seen",
    )

    def __init__(
        self,
        *,
        max_line_length: int = DEFAULT_MAX_LINE_LENGTH,
        max_lines: int = DEFAULT_MAX_LINES,
        line_filter: LineFilter | None = None,
    ) -> None:
        # smtp_reply_filter: each line as received (without CRLF) -> the line to parse.
        self._line_filter = line_filter
        # Received bytes; those before `_pos` are consumed. Lines are sliced out of it
        # without moving the rest (a pipelined group's replies arrive in one piece).
        self._buffer = b""
        self._pos = 0
        self._scan_from = 0  # no line end before this offset
        self._lines: list[str] = []
        self._seen: dict[bytes, Reply] = {}  # one-line replies already parsed
        self._max_line_length = max_line_length
        self._max_lines = max_lines

    def feed(self, data: bytes) -> None:
        pos = self._pos
        if pos >= len(self._buffer):
            self._buffer = bytes(data)
            self._scan_from = 0
        else:
            # What is left is at most a partial line (the caller takes every complete
            # reply after each feed), so this copy stays small.
            self._buffer = self._buffer[pos:] + data
            self._scan_from -= pos
        self._pos = 0

    @property
    def buffered(self) -> int:
        """Bytes received but not yet consumed as part of a complete reply."""
        return len(self._buffer) - self._pos + sum(len(x) for x in self._lines)

    @property
    def exhausted(self) -> bool:
        """True when every byte received has been consumed (nothing to parse until more
        arrives)."""
        return self._pos >= len(self._buffer)

    @property
    def in_reply(self) -> bool:
        """True when part of a reply (a partial line or continuation lines) is held."""
        return self._pos < len(self._buffer) or bool(self._lines)

    def _no_line_yet(self) -> None:
        """No line end in what is buffered: bound memory even when the peer never sends
        one, and scan only the new bytes next time."""
        buffer = self._buffer
        if len(buffer) - self._pos > self._max_line_length + 2:
            raise RemoteProtocolError(f"reply line longer than {self._max_line_length} characters")
        self._scan_from = len(buffer)

    def next_reply(self) -> Reply | None:
        """Return the next complete reply, or None when more data is needed."""
        while True:
            buffer = self._buffer
            end = buffer.find(b"\n", self._scan_from)
            if end < 0:
                self._no_line_yet()
                return None
            start = self._pos
            self._pos = self._scan_from = end + 1
            line_filter = self._line_filter
            if line_filter is None and not self._lines:
                # A one-line reply seen before, known by its bytes up to the LF (its CR
                # included): it passed every check below when it was first parsed.
                known = self._seen.get(buffer[start:end])
                if known is not None:
                    return known
            key_end = end
            if end > start and buffer[end - 1] == 13:  # CR LF
                end -= 1
            raw = buffer[start:end]
            if len(raw) > self._max_line_length:
                raise RemoteProtocolError(
                    f"reply line longer than {self._max_line_length} characters"
                )
            if line_filter is not None:
                raw = line_filter(_decode(raw)).encode("utf-8", "backslashreplace")
            elif not self._lines and (len(raw) < 4 or raw[3] != 45):
                # Not "250-...": a reply of one line.
                known = _one_line_reply(raw)
                seen = self._seen
                if len(seen) < _SEEN_LIMIT and len(raw) <= _SEEN_LINE_LENGTH:
                    seen[buffer[start:key_end]] = known
                return known
            if _LINE_RE.fullmatch(raw) is None:
                raise _malformed(raw)
            line = _decode(raw)
            self._lines.append(line)
            if raw[3:4] == b"-":
                if len(self._lines) >= self._max_lines:
                    raise RemoteProtocolError(
                        f"multi-line reply longer than {self._max_lines} lines"
                    )
                continue
            lines = tuple(self._lines)
            self._lines.clear()
            # Postfix takes the code of the last line; the enhanced code of the first.
            code = int(raw[:3])
            first_text = lines[0][4:]
            return Reply(code, lines, _enhanced(code, first_text))

"""The two pipes of ``sendmail -bs``: SMTP commands and message data in, replies out.

`PipeInput` reads the client's bytes in bounded blocks from a binary stream (standard input:
a pipe, a file or a terminal) and hands out command lines (`command_line`, at most
line_length_limit bytes: the rest of a longer line is read and dropped) and data lines
(`DataReader`). `Replies` collects reply lines and writes them only when the input has
nothing more to give before the next read would wait, so a pipelining client (RFC 2920)
gets its replies in one batch and a client that waits for each reply gets it at once.
`DataReader` is the message of one DATA command as a raw stream for submit.py: the lone
"." line ends it, a leading dot is removed (RFC 5321 4.5.2), and CRLF becomes LF, the line
end of the queue's content; an end of input before the "." raises `InputClosed`, so that
nothing of the message is queued. The session itself is smtpd.py.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import BinaryIO, Final, cast

__all__ = ["DataReader", "InputClosed", "OutputClosed", "PipeInput", "Replies"]

BLOCK: Final = 65536


class InputClosed(Exception):
    """The client's input ended where more was needed (inside DATA)."""


class OutputClosed(Exception):
    """The client's output went away: no reply can be written."""


class Replies:
    """Reply lines waiting to be written to the client, in order."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._lines: list[bytes] = []

    def add(self, line: str) -> None:
        self._lines.append(line.encode("utf-8") + b"\r\n")

    def flush(self) -> None:
        if not self._lines:
            return
        data, self._lines = b"".join(self._lines), []
        try:
            self._out.write(data)
            self._out.flush()
        except (BrokenPipeError, ConnectionResetError, ValueError) as exc:
            raise OutputClosed from exc


class PipeInput:
    """The client's bytes, read a block at a time as they arrive; `before_wait` runs before
    each read that may wait (the replies go out then)."""

    def __init__(self, src: BinaryIO, before_wait: Callable[[], None]) -> None:
        # read1 returns what one read of the pipe gives; a stream without it is read a
        # line at a time, which never waits for more than the client has sent.
        read1 = getattr(src, "read1", None)
        self._read: Callable[[int], bytes] = (
            cast(Callable[[int], bytes], read1) if read1 is not None else src.readline
        )
        self._before_wait = before_wait
        self._buffer = bytearray()
        self.eof = False

    def _fill(self) -> bool:
        """Read one more block; False at the end of input."""
        if self.eof:
            return False
        self._before_wait()
        block = self._read(BLOCK)
        if not block:
            self.eof = True
            return False
        self._buffer += block
        return True

    def segment(self, limit: int) -> bytes:
        """Up to `limit` bytes, ending at the first LF if one comes within them; shorter
        only at the end of input (b"" then). A CR at the cut stays for the next segment,
        so that a CRLF is never split."""
        while True:
            end = self._buffer.find(b"\n", 0, limit)
            if end >= 0:
                return self._take(end + 1)
            if len(self._buffer) >= limit:
                cut = limit - 1 if self._buffer[limit - 1 : limit] == b"\r" and limit > 1 else limit
                return self._take(cut)
            if not self._fill():
                return self._take(len(self._buffer))

    def _take(self, count: int) -> bytes:
        piece = bytes(self._buffer[:count])
        del self._buffer[:count]
        return piece

    def command_line(self, limit: int) -> tuple[bytes, bool] | None:
        """The next command line without its line end, and whether it fitted in `limit`
        bytes (a longer one is read to its end and dropped); None at the end of input."""
        line = self.segment(limit + 2)
        if not line:
            return None
        if line.endswith(b"\n") and len(line.rstrip(b"\r\n")) <= limit:
            return line.rstrip(b"\r\n"), True
        if not line.endswith(b"\n"):
            if self.eof:  # a last line without its line end: taken as it is
                return (line, True) if len(line) <= limit else (b"", False)
            while True:  # too long: drop the rest of it
                rest = self.segment(BLOCK)
                if not rest or rest.endswith(b"\n"):
                    break
        return b"", False


class DataReader(io.RawIOBase):
    """One message of a DATA command, as a raw stream: see the module text."""

    def __init__(self, source: PipeInput) -> None:
        super().__init__()
        self._source = source
        self._pending = b""
        self._at_line_start = True
        self.done = False
        self.size = 0  # bytes of message content read (after unstuffing)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        if not self._pending:
            if self.done:
                return 0
            self._pending = self._next()
            if not self._pending:
                return 0
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count

    def _next(self) -> bytes:
        piece = self._source.segment(BLOCK)
        if not piece.endswith(b"\n") and self._source.eof:
            raise InputClosed("end of input inside DATA")
        if self._at_line_start and piece.startswith(b"."):
            if piece in (b".\r\n", b".\n"):
                self.done = True
                return b""
            piece = piece[1:]  # RFC 5321 4.5.2: the client doubled a leading dot
        if piece.endswith(b"\r\n"):
            piece = piece[:-2] + b"\n"
        self._at_line_start = piece.endswith(b"\n")
        self.size += len(piece)
        return piece

    def drain(self) -> None:
        """Read and drop the rest of the message, up to its "." line."""
        self._pending = b""
        while not self.done:
            self._next()

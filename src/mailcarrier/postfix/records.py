"""Postfix queue-file records, read from a file descriptor at offsets (global/record.c,
rec_type.h), and the message content they hold as a stream (smtp/smtp_proto.c's loop).

A record is one type byte, its data length in 7-bit groups, least significant first (bit
0x80: more follow; at most 5 groups, and the length must fit a C int), then the data.
`read_record` and `iter_records` read them one by one, for listings and the envelope.

`RecordContent` is the message as smtp(8) sends it, from the request's data offset: ``N``
is a line (its data and a newline), ``L`` a piece of a longer line (no newline), ``w`` is
padding, ``p`` jumps to the offset written in it (0: no jump; more than 10000 backward
jumps is a loop) and ``X`` ends the content. Anything else, or a record cut short by the
end of the file, is a corrupt queue file: `QueueFileCorrupt`, Postfix's 5.3.0 "unreadable
mail queue entry" (a `ContentError`, which the delivery turns into a bounce of the
recipients the server accepted, as smtp(8) does, and a `DataError`). Lines end in LF only
(the DATA encoder makes them CRLF). It reads blocks with ``os.pread`` and never holds more
than one block and the piece asked for; it is seekable (to 0 for each server tried), so
content/stream.py reads it like any binary file. It never closes the descriptor: the
`QueueFile` of queuefile.py owns it.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from mailcarrier.content.mime import ContentError
from mailcarrier.errors import DataError, TemporaryError

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

__all__ = [
    "REVERSE_JUMP_LIMIT",
    "QueueFileCorrupt",
    "QueueFileReadError",
    "Record",
    "RecordContent",
    "iter_records",
    "length_bytes",
    "read_record",
]

REVERSE_JUMP_LIMIT: Final = 10000  # rec_goto(): no-one inserts 10000 headers
_MAX_LENGTH_BYTES: Final = 5  # 35 bits of length at most; more is "too many length bits"
_INT_MAX: Final = 2**31 - 1
_HEADER_MAX: Final = 1 + _MAX_LENGTH_BYTES
_POINTER_MAX: Final = 1024  # a pointer record holds "%15ld"; more is not a pointer
_DEFAULT_BLOCK: Final = 65536
_SPACE: Final = b" \t\n\r\f\v"
_OFF_T_MAX: Final = 2**63 - 1


class QueueFileCorrupt(ContentError, DataError):
    """A queue file that cannot be read as one: Postfix's "unreadable mail queue entry".
    `dsn` and `text` are what the recipients get (5.3.0); ``str()`` says what was wrong,
    where (`path`, `offset`)."""

    def __init__(self, path: str, offset: int, problem: str) -> None:
        super().__init__("5.3.0", "unreadable mail queue entry")
        self.path = path
        self.offset = offset
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.path}: offset {self.offset}: {self.problem}"


class QueueFileReadError(ContentError, TemporaryError):
    """Reading the queue file failed (EIO): Postfix's smtp(8) gives up ("queue file read
    error") and the message is deferred (4.3.0)."""

    def __init__(self, path: str, offset: int, error: OSError) -> None:
        super().__init__("4.3.0", "queue file read error")
        self.path = path
        self.offset = offset
        self.errno = error.errno or 0

    def __str__(self) -> str:
        return f"{self.path}: offset {self.offset}: queue file read error: {self.strerror}"

    @property
    def strerror(self) -> str:
        return os.strerror(self.errno) if self.errno else "unknown error"


@dataclass(frozen=True, slots=True)
class Record:
    """One record: its type letter, where it starts, and its data."""

    type: str
    offset: int
    data: bytes

    @property
    def end(self) -> int:
        """The offset of the next record."""
        return self.offset + 1 + len(length_bytes(len(self.data))) + len(self.data)


def length_bytes(length: int) -> bytes:
    """The length field of a record with `length` bytes of data (rec_put)."""
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def _parse_header(buf: bytes, i: int, path: str, at: int) -> tuple[int, int, int] | None:
    """(type byte, data length, header size) of the record at `buf[i]` (`at` in the file);
    None when `buf` ends before the record starts."""
    if i >= len(buf):
        return None
    rtype = buf[i]
    length = shift = 0
    j = i + 1
    while True:
        if j - i > _MAX_LENGTH_BYTES:
            raise QueueFileCorrupt(path, at, f"too many length bits, record type {rtype}")
        if j >= len(buf):
            raise QueueFileCorrupt(path, at, f"unexpected EOF reading length, record type {rtype}")
        byte = buf[j]
        j += 1
        length |= (byte & 0x7F) << shift
        if not byte & 0x80:
            break
        shift += 7
    if length > _INT_MAX:
        raise QueueFileCorrupt(path, at, f"illegal length {length}, record type {rtype}")
    return rtype, length, j - i


def _pread(fd: int, size: int, offset: int, path: str) -> bytes:
    try:
        return os.pread(fd, size, offset)
    except OSError as exc:
        raise QueueFileReadError(path, offset, exc) from exc


def read_record(
    fd: int, offset: int, *, path: str = "queue file", limit: int = 1 << 20
) -> Record | None:
    """The record at `offset`, None at the end of the file. Data longer than `limit` is
    refused (this is for envelope records; content is read by `RecordContent`)."""
    head = _pread(fd, _HEADER_MAX, offset, path)
    found = _parse_header(head, 0, path, offset)
    if found is None:
        return None
    rtype, length, size = found
    if length > limit:
        raise QueueFileCorrupt(path, offset, f"record of {length} bytes (limit {limit})")
    data = head[size : size + length]
    if len(data) < length:
        data += _pread(fd, length - len(data), offset + len(head), path)
    if len(data) < length:
        raise QueueFileCorrupt(
            path, offset, f"unexpected EOF in data, record type {rtype} length {length}"
        )
    return Record(chr(rtype), offset, data)


def iter_records(fd: int, offset: int = 0, *, path: str = "queue file") -> Iterator[Record]:
    """Every record from `offset` to the end of the file, as they lie (no pointer is
    followed)."""
    while (record := read_record(fd, offset, path=path)) is not None:
        yield record
        offset = record.end


_N, _L, _W, _P, _X = (ord(c) for c in "NLwpX")


class RecordContent(io.RawIOBase):
    """The message content of a queue file, from `data_offset`, as a read-only binary
    stream. Seeking is by re-reading: backward means from the start again, forward reads
    and drops; ``seek(0)`` costs nothing. After a corrupt record or a read error every read
    raises that error again until the next seek to 0; `damage` keeps the first
    `QueueFileCorrupt` seen. ``fileno()`` is unsupported on purpose: the file's size is not
    the content's."""

    def __init__(
        self,
        fd: int,
        data_offset: int,
        *,
        path: str = "queue file",
        block_size: int = _DEFAULT_BLOCK,
    ) -> None:
        super().__init__()
        if block_size < _HEADER_MAX:
            raise ValueError(f"block_size must be at least {_HEADER_MAX}")
        self._fd = fd
        self._start = data_offset
        self.path = path
        self._block_size = block_size
        self._block = b""
        self._block_at = 0
        self._block_is_last = False
        self.damage: QueueFileCorrupt | None = None
        self._rewind()

    def _rewind(self) -> None:
        self._next = self._start  # the next record header
        self._record = (0, 0, 0)  # offset, type and length of the current record
        self._at = 0  # where the rest of the current record's data is
        self._left = 0  # how much of it
        self._newline = False  # a newline is due after it (N)
        self._done = False  # X was read
        self._failed: QueueFileCorrupt | QueueFileReadError | None = None
        self._pos = 0  # content bytes handed out
        self._jumped_to = 0  # rec_goto's saved_offset
        self._reverse_jumps = 0

    # --- io.RawIOBase -----------------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        self._check_open()
        return self._pos

    def readinto(self, buffer: WriteableBuffer) -> int:
        self._check_open()
        view = memoryview(buffer).cast("B")
        n = 0
        for piece in self._fill(len(view)):
            view[n : n + len(piece)] = piece
            n += len(piece)
        return n

    def read(self, size: int | None = -1) -> bytes:
        self._check_open()
        if size is None or size < 0:
            return self.readall()
        return b"".join(self._fill(size))

    def readall(self) -> bytes:
        self._check_open()
        out = []
        while pieces := self._fill(self._block_size):
            out += pieces
        return b"".join(out)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        self._check_open()
        if whence == io.SEEK_CUR:
            offset += self._pos
        elif whence == io.SEEK_END:
            while self._fill(self._block_size):
                pass
            offset += self._pos
        elif whence != io.SEEK_SET:
            raise ValueError(f"invalid whence ({whence})")
        if offset < 0:
            raise ValueError(f"negative seek position {offset}")
        if offset < self._pos or (offset == 0 and not self._at_start()):
            self._rewind()
        while self._pos < offset and self._fill(min(offset - self._pos, self._block_size)):
            pass
        return self._pos

    def _at_start(self) -> bool:
        """Nothing read since the last rewind (a seek to 0 then changes nothing)."""
        return (
            self._pos == 0
            and self._next == self._start
            and not self._left
            and not self._newline
            and not self._done
            and self._failed is None
        )

    def close(self) -> None:
        self._block = b""
        super().close()

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")

    # --- the records ------------------------------------------------------------------------
    def _fill(self, size: int) -> list[bytes]:
        """Up to `size` bytes of content as pieces; [] at the end."""
        if self._failed is not None:
            raise self._failed
        out: list[bytes] = []
        room = size
        try:
            while room > 0 and not self._done:
                if self._left:
                    piece = self._data(self._at, min(self._left, room))
                    out.append(piece)
                    self._at += len(piece)
                    self._left -= len(piece)
                    room -= len(piece)
                elif self._newline:
                    out.append(b"\n")
                    self._newline = False
                    room -= 1
                else:
                    at = self._next - self._block_at
                    if not 0 <= at < len(self._block) and not self._block_is_last:
                        self._load(self._next)  # the next records in one block, at once
                    room = self._whole_lines(out, room)
                    if room > 0:
                        self._next_record()
        except (QueueFileCorrupt, QueueFileReadError) as exc:
            self._failed = exc
            if isinstance(exc, QueueFileCorrupt):
                self.damage = self.damage or exc
            raise
        self._pos += size - room
        return out

    def _whole_lines(self, out: list[bytes], room: int) -> int:
        """The fast path: N and L records that lie whole in the block and fit in `room`
        (lengths of one or two bytes, lines under 16 KB), without a call per record: a run
        of N records is joined with its newlines at once. Everything else, and whatever
        does not fit, is left to `_next_record`."""
        block = self._block
        end_of_block = len(block)
        i = self._next - self._block_at
        lines: list[bytes] = []  # the data of a run of N records
        append = lines.append
        if i >= 0 and room >= end_of_block - i:
            # What is left of the block cannot fill `room` (a record's output, its data and
            # a newline, is shorter than the record): short N records need no other check
            # than their end, and the room they took is counted once at the end.
            start = i
            n = _N
            safe = end_of_block - 129  # a short record (2 + at most 127 bytes) ends before
            while i <= safe:
                length = block[i + 1]
                if length > 127 or block[i] != n:
                    break
                i += 2
                end = i + length
                append(block[i:end])
                i = end
            last = end_of_block - 2
            while i <= last:  # the last records of the block, which may be cut short
                length = block[i + 1]
                if length > 127 or block[i] != n:
                    break
                end = i + 2 + length
                if end > end_of_block:
                    break
                append(block[i + 2 : end])
                i = end
            room -= i - start - len(lines)  # each 2-byte header became one newline
        while room > 0 and i >= 0 and i + 2 <= end_of_block:
            rtype = block[i]
            length = block[i + 1]
            data = i + 2
            if length & 0x80:
                if data >= end_of_block or block[data] & 0x80:
                    break
                length = (length & 0x7F) | (block[data] << 7)
                data += 1
            end = data + length
            if end > end_of_block:
                break
            if rtype == _N:
                if length >= room:  # the newline too must fit
                    break
                append(block[data:end])
                room -= length + 1
            elif rtype == _L:
                if length > room:
                    break
                if lines:
                    lines.append(b"")  # the last line's newline
                    out.append(b"\n".join(lines))
                    lines = []
                    append = lines.append
                if length:
                    out.append(block[data:end])
                room -= length
            else:
                break
            i = end
        if lines:
            lines.append(b"")
            out.append(b"\n".join(lines))
        self._next = self._block_at + i
        return room

    def _next_record(self) -> None:
        at = self._next
        found = self._header(at)
        if found is None:
            raise QueueFileCorrupt(
                self.path, at, "end of file before the end-of-content record (X)"
            )
        rtype, length, size = found
        self._record = (at, rtype, length)
        data_at = at + size
        self._next = data_at + length
        if rtype in (_N, _L):
            self._at, self._left, self._newline = data_at, length, rtype == _N
        elif rtype == _W:
            if length:
                self._data(self._next - 1, 1)  # the padding is all there
        elif rtype == _P:
            self._jump(at, self._pointer(at, data_at, length))
        elif rtype == _X:
            self._done = True
        else:
            raise QueueFileCorrupt(
                self.path, at, f"bad record type {chr(rtype)!r} in message content"
            )

    def _pointer(self, at: int, data_at: int, length: int) -> int:
        if length > _POINTER_MAX:
            raise QueueFileCorrupt(self.path, at, f"pointer record of {length} bytes")
        data = b"".join(self._exactly(data_at, length)).lstrip(_SPACE)
        if data and not (data.isdigit() and int(data) <= _OFF_T_MAX):
            raise QueueFileCorrupt(self.path, at, f"malformed pointer record value: {data[:40]!r}")
        return int(data or b"0")

    def _jump(self, at: int, target: int) -> None:
        if target == 0:  # a place held for a later pointer
            return
        if target <= self._jumped_to:
            self._reverse_jumps += 1
            if self._reverse_jumps > REVERSE_JUMP_LIMIT:
                raise QueueFileCorrupt(self.path, at, "too many reverse jump records")
        self._jumped_to = self._next = target

    # --- reading at offsets -----------------------------------------------------------------
    def _load(self, at: int) -> None:
        self._block = _pread(self._fd, self._block_size, at, self.path)
        self._block_at = at
        self._block_is_last = len(self._block) < self._block_size  # the file ends in it

    def _header(self, at: int) -> tuple[int, int, int] | None:
        i = at - self._block_at
        short = i + _HEADER_MAX > len(self._block) and not (
            self._block_is_last and i <= len(self._block)
        )
        if i < 0 or short:
            self._load(at)
            i = 0
        return _parse_header(self._block, i, self.path, at)

    def _data(self, at: int, size: int) -> bytes:
        """At least one and at most `size` bytes at `at`, which is in the current record."""
        i = at - self._block_at
        if i < 0 or i >= len(self._block):
            self._load(at)
            i = 0
        piece = self._block[i : i + size]
        if not piece:
            where, rtype, length = self._record
            raise QueueFileCorrupt(
                self.path, where, f"unexpected EOF in data, record type {rtype} length {length}"
            )
        return piece

    def _exactly(self, at: int, size: int) -> Iterator[bytes]:
        while size > 0:
            piece = self._data(at, size)
            yield piece
            at += len(piece)
            size -= len(piece)

"""Postfix queue files for tests, written record by record as cleanup(8) writes them.

`record(type, data)` is one record (global/record.c rec_put: type byte, length in 7-bit groups
least significant first, data). `QueueFileBuilder` appends records and says where each one
starts, writes ``p`` pointer records (``"%15ld"``, patchable later, as cleanup reserves them)
and ``w`` padding; `cleanup_file(...)` makes a whole queue file with the layout of a real one
(size record, envelope, ``O``/``R`` recipients, ``M``, content, ``X``, ``E``) and returns
where its content and recipients are. `write_queue_file` puts bytes at a path with a queue
file's mode. Nothing here reads records: that is the code under test (postfix/records.py).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

LINE_LIMIT: Final = 2048  # line_length_limit: cleanup splits longer lines into L records


def length_field(length: int) -> bytes:
    out = bytearray()
    while True:
        byte, length = length & 0x7F, length >> 7
        out.append(byte | 0x80 if length else byte)
        if not length:
            return bytes(out)


def record(rtype: str, data: bytes | str = b"") -> bytes:
    raw = data.encode() if isinstance(data, str) else data
    return rtype.encode("latin-1") + length_field(len(raw)) + raw


def content_records(content: bytes, *, line_limit: int = LINE_LIMIT) -> list[tuple[str, bytes]]:
    """The N and L records of `content` (LF line ends): a line longer than `line_limit` is
    L pieces and an N for the rest; a last line without LF ends with an L record."""
    out: list[tuple[str, bytes]] = []
    lines = content.split(b"\n")
    last = lines.pop()  # b"" when the content ends with LF
    for line in lines:
        while len(line) > line_limit:
            out.append(("L", line[:line_limit]))
            line = line[line_limit:]
        out.append(("N", line))
    while last:
        out.append(("L", last[:line_limit]))
        last = last[line_limit:]
    return out


class QueueFileBuilder:
    """Records appended in order; each `add` returns the offset of the record it wrote."""

    def __init__(self) -> None:
        self.data = bytearray()

    @property
    def offset(self) -> int:
        return len(self.data)

    def add(self, rtype: str, data: bytes | str = b"") -> int:
        at = self.offset
        self.data += record(rtype, data)
        return at

    def add_all(self, records: Iterable[tuple[str, bytes]]) -> None:
        for rtype, data in records:
            self.add(rtype, data)

    def pointer(self, target: int = 0) -> int:
        """A p record, "%15ld" as cleanup writes it (0: a place held for later)."""
        return self.add("p", b"%15d" % target)

    def set_pointer(self, at: int, target: int) -> None:
        assert self.data[at : at + 2] == b"p\x0f", "not a pointer record"
        self.data[at + 2 : at + 17] = b"%15d" % target

    def padding(self, size: int) -> int:
        return self.add("w", b"0" * size)

    def bytes(self) -> bytes:
        return bytes(self.data)


@dataclass(frozen=True)
class Layout:
    """Where things are in a file made by `cleanup_file`."""

    data: bytes
    data_offset: int  # the first content record (the request's offset)
    recipient_offsets: tuple[int, ...]  # the R records
    xtra_offset: int  # the X record

    @property
    def content_length(self) -> int:
        """cleanup's cont_length, the request's size: record bytes of the content."""
        return self.xtra_offset - self.data_offset


def cleanup_file(
    content: bytes,
    *,
    sender: str = "sender@example.org",
    recipients: Sequence[str] = ("rcpt@example.net",),
    line_limit: int = LINE_LIMIT,
) -> Layout:
    builder = QueueFileBuilder()
    builder.add("C", b" " * 95)  # patched below: 6 fields of "%15ld", space separated
    builder.add("T", "1796224210 486827")
    builder.add("A", "create_time=1796224210")
    builder.add("A", "rewrite_context=local")
    builder.add("S", sender)
    offsets = []
    for rcpt in recipients:
        builder.add("O", rcpt)
        offsets.append(builder.add("R", rcpt))
    builder.add("M")
    data_offset = builder.offset
    builder.add_all(content_records(content, line_limit=line_limit))
    xtra = builder.add("X")
    builder.add("E")
    fields = (xtra - data_offset, data_offset, len(recipients), 0, xtra - data_offset, 0)
    builder.data[2:97] = b" ".join(b"%15d" % f for f in fields)
    return Layout(builder.bytes(), data_offset, tuple(offsets), xtra)


def write_queue_file(path: Path, data: bytes, mode: int = 0o700) -> Path:
    """`data` at `path` (directories made), with a ready queue file's mode."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.chmod(path, mode)
    return path

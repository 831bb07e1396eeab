"""postfix/records.py: queue-file records and the content stream they make.

Queue files are built with tests/support/postfix_records.py; the captured file of a real
Postfix 3.7 (tests/postfix/data/queuefile-records-after.json) is rebuilt and read back.
"""

from __future__ import annotations

import errno
import functools
import io
import json
import os
import random
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Final

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.content.encoder import DataEncoder
from mailcarrier.content.mime import ContentError
from mailcarrier.content.stream import encode_chunks, iter_file_chunks
from mailcarrier.errors import DataError, TemporaryError
from mailcarrier.postfix import records
from mailcarrier.postfix.records import (
    REVERSE_JUMP_LIMIT,
    QueueFileCorrupt,
    QueueFileReadError,
    Record,
    RecordContent,
    iter_records,
    read_record,
)
from tests.support.postfix_records import (
    QueueFileBuilder,
    cleanup_file,
    content_records,
    length_field,
    record,
)

CAPTURED: Final = Path(__file__).parent / "data" / "queuefile-records-after.json"


FdOf = Callable[[bytes], int]


@pytest.fixture
def fd_of(tmp_path: Path) -> Iterator[FdOf]:
    """fd_of(data) -> a read-only descriptor of a file holding `data`."""
    opened: list[int] = []

    def make(data: bytes) -> int:
        path = tmp_path / f"q{len(opened)}"
        path.write_bytes(data)
        fd = os.open(path, os.O_RDONLY)
        opened.append(fd)
        return fd

    yield make
    for fd in opened:
        os.close(fd)


def _stream(fd_of: FdOf, data: bytes, offset: int = 0, **kw: int) -> RecordContent:
    return RecordContent(fd_of(data), offset, path="active/TEST", **kw)


def _read(fd_of: FdOf, data: bytes, offset: int = 0, **kw: int) -> bytes:
    return _stream(fd_of, data, offset, **kw).read()


# --- records --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("length", "field"),
    [
        (0, b"\x00"),
        (127, b"\x7f"),
        (128, b"\x80\x01"),
        (2048, b"\x80\x10"),
        (2**31 - 1, b"\xff\xff\xff\xff\x07"),
    ],
)
def test_length_fields(length: int, field: bytes) -> None:
    assert length_field(length) == records.length_bytes(length) == field


def test_read_and_iterate_records(fd_of: FdOf) -> None:
    builder = QueueFileBuilder()
    builder.add("S", "a@example")
    long_at = builder.add("L", b"x" * 2048)
    builder.add("N", b"")
    builder.add("E")
    fd = fd_of(builder.bytes())
    got = list(iter_records(fd))
    assert got == [
        Record("S", 0, b"a@example"),
        Record("L", long_at, b"x" * 2048),
        Record("N", long_at + 3 + 2048, b""),
        Record("E", long_at + 3 + 2048 + 2, b""),
    ]
    assert got[1].end == got[2].offset
    assert read_record(fd, long_at) == got[1]
    assert read_record(fd, got[3].end) is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"N\x80\x80\x80\x80\x80\x01", "offset 0: too many length bits, record type 78"),
        (b"N\xff\xff\xff\xff\x0f", "offset 0: illegal length 4294967295, record type 78"),
        (b"N\x80", "offset 0: unexpected EOF reading length, record type 78"),
        (b"N\x05abc", "offset 0: unexpected EOF in data, record type 78 length 5"),
        (b"N\x80\x80\x80\x01", "offset 0: record of 2097152 bytes (limit 1048576)"),
    ],
)
def test_bad_records(fd_of: FdOf, data: bytes, message: str) -> None:
    with pytest.raises(QueueFileCorrupt) as info:
        read_record(fd_of(data), 0, path="active/X")
    assert str(info.value) == f"active/X: {message}"


# --- content: every record type -------------------------------------------------------------


@pytest.mark.parametrize(
    ("recs", "content"),
    [
        ([("N", b"one"), ("N", b""), ("N", b"two")], b"one\n\ntwo\n"),
        ([("L", b"ab"), ("L", b"cd"), ("N", b"ef")], b"abcdef\n"),
        ([("N", b"one"), ("L", b"partial")], b"one\npartial"),
        ([("N", b"a"), ("w", b"0" * 40), ("N", b"b"), ("w", b"")], b"a\nb\n"),
        ([("N", b"a"), ("p", b"%15d" % 0), ("N", b"b")], b"a\nb\n"),
        ([], b""),
        ([("N", b"\xff\r\0bytes")], b"\xff\r\0bytes\n"),
    ],
    ids=["N", "L", "L-last", "w", "p-0", "empty", "binary"],
)
def test_content_records(fd_of: FdOf, recs: list[tuple[str, bytes]], content: bytes) -> None:
    data = b"".join(record(t, d) for t, d in recs) + record("X") + record("E")
    assert _read(fd_of, data) == content


def test_content_starts_at_the_data_offset_and_stops_at_x(fd_of: FdOf) -> None:
    layout = cleanup_file(b"Subject: hi\n\nbody\n")
    data = layout.data + record("N", "after the end")  # never read
    assert _read(fd_of, data, layout.data_offset) == b"Subject: hi\n\nbody\n"


def test_pointers_forward_and_back(fd_of: FdOf) -> None:
    # As cleanup inserts a header: the content jumps to records appended after X, and a
    # pointer there jumps back.
    b = QueueFileBuilder()
    b.add("N", "Received: one")
    out = b.pointer()
    b.add("N", "Old: header")  # skipped by the jump
    back = b.offset
    b.add("N", "")
    b.add("N", "body")
    b.add("X")
    inserted = b.add("N", "Inserted: header")
    b.pointer(back)
    b.add("E")
    b.set_pointer(out, inserted)
    assert _read(fd_of, b.bytes()) == b"Received: one\nInserted: header\n\nbody\n"


def _reverse_chain(jumps: int) -> bytes:
    """A pointer forward to the last of `jumps` pointer records, each pointing back to the
    one before it, the first back to the end of the content: `jumps` backward jumps."""
    b = QueueFileBuilder()
    start = b.pointer()
    b.add("N", "skipped")
    target = b.add("X")
    for _ in range(jumps):
        target = b.pointer(target)
    b.set_pointer(start, target)
    return b.bytes()


def test_reverse_jumps_up_to_the_limit(fd_of: FdOf) -> None:
    # The first pointer jumps forward; then REVERSE_JUMP_LIMIT backward jumps, which is OK.
    data = _reverse_chain(REVERSE_JUMP_LIMIT)
    assert _read(fd_of, data) == b""


def test_reverse_jumps_beyond_the_limit(fd_of: FdOf) -> None:
    with pytest.raises(QueueFileCorrupt, match="too many reverse jump records"):
        _read(fd_of, _reverse_chain(REVERSE_JUMP_LIMIT + 1))


def test_pointer_loop(fd_of: FdOf) -> None:
    b = QueueFileBuilder()
    b.add("N", "a")
    loop = b.pointer()
    b.set_pointer(loop, loop)
    stream = _stream(fd_of, b.bytes())
    with pytest.raises(QueueFileCorrupt) as info:
        stream.read()
    assert str(info.value) == f"active/TEST: offset {loop}: too many reverse jump records"


# --- content: corrupt -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "problem"),
    [
        (record("N", "a") + record("R", "x@y"), "offset 3: bad record type 'R' in message content"),
        (record("N", "a") + b"N\x80", "offset 3: unexpected EOF reading length, record type 78"),
        (
            record("N", "a") + b"N\x10abc",
            "offset 3: unexpected EOF in data, record type 78 length 16",
        ),
        (
            record("N", "a") + b"w\x10abc",
            "offset 3: unexpected EOF in data, record type 119 length 16",
        ),
        (record("N", "a"), "offset 3: end of file before the end-of-content record (X)"),
        (record("N", "a") + record("p", "12x"), "offset 3: malformed pointer record value: b'12x'"),
        (
            record("p", f"{10**6:15d}"),
            "offset 1000000: end of file before the end-of-content record (X)",
        ),
        (record("p", "9" * 30), "offset 0: malformed pointer record value: b'" + "9" * 30 + "'"),
        (record("p", b" " * 2000), "offset 0: pointer record of 2000 bytes"),
        (b"N\x80\x80\x80\x80\x80\x01", "offset 0: too many length bits, record type 78"),
    ],
    ids=["type", "length", "data", "padding", "no-X", "pointer", "far", "huge", "long", "bits"],
)
def test_corrupt_content(fd_of: FdOf, data: bytes, problem: str) -> None:
    stream = _stream(fd_of, data)
    with pytest.raises(QueueFileCorrupt) as info:
        stream.read()
    exc = info.value
    assert str(exc) == f"active/TEST: {problem}"
    assert isinstance(exc, DataError) and isinstance(exc, ContentError)
    assert (exc.dsn, exc.text) == ("5.3.0", "unreadable mail queue entry")
    assert stream.damage is exc
    # It stays broken, and reading again from the start finds the same.
    with pytest.raises(QueueFileCorrupt):
        stream.read(1)
    assert stream.seek(0) == 0
    with pytest.raises(QueueFileCorrupt) as again:
        stream.read()
    assert str(again.value) == str(exc)
    assert stream.damage is exc


def test_read_error(fd_of: FdOf, monkeypatch: pytest.MonkeyPatch) -> None:
    stream = _stream(fd_of, record("N", "a") + record("X"))

    def fail(fd: int, size: int, offset: int) -> bytes:
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(os, "pread", fail)
    with pytest.raises(QueueFileReadError) as info:
        stream.read()
    exc = info.value
    assert str(exc) == "active/TEST: offset 0: queue file read error: Input/output error"
    assert (exc.dsn, exc.text, exc.errno) == ("4.3.0", "queue file read error", errno.EIO)
    assert isinstance(exc, TemporaryError) and isinstance(exc, ContentError)
    assert stream.damage is None


# --- content: reading it like a file --------------------------------------------------------


def test_lines_longer_than_the_read_block(fd_of: FdOf) -> None:
    content = b"x" * 5000 + b"\n" + b"y" * 2048 + b"\n" + b"z" * 10
    layout = cleanup_file(content)
    for block in (6, 7, 64, 4096):
        assert _read(fd_of, layout.data, layout.data_offset, block_size=block) == content


def test_chunk_boundaries_through_iter_file_chunks(fd_of: FdOf) -> None:
    content = b"Subject: x\n\n" + b"a" * 3000 + b"\n.dot\n" + b"b" * 2048 + b"\nend\n"
    layout = cleanup_file(content)
    stream = _stream(fd_of, layout.data, layout.data_offset, block_size=100)
    for chunk_size in (1, 7, 2048, 65536):
        chunks = list(iter_file_chunks(stream, chunk_size=chunk_size))  # type: ignore[arg-type]
        assert all(0 < len(c) <= chunk_size for c in chunks)
        assert b"".join(chunks) == content
    # The DATA encoder turns the LF line ends into CRLF and stuffs the dot.
    wire = b"".join(
        encode_chunks(iter_file_chunks(stream, chunk_size=333), DataEncoder(line_length_limit=0))  # type: ignore[arg-type]
    )
    assert wire == content.replace(b"\n", b"\r\n").replace(b"\r\n.dot", b"\r\n..dot")


def test_a_length_longer_than_the_content_is_damage(fd_of: FdOf) -> None:
    stream = _stream(fd_of, record("N", "abc") + record("X"))
    with pytest.raises(DataError, match="message content ends after 4 of 10 bytes"):
        list(iter_file_chunks(stream, length=10))  # type: ignore[arg-type]


def test_seek_and_tell(fd_of: FdOf) -> None:
    content = b"one\ntwo\nthree\n"
    stream = _stream(
        fd_of, b"".join(record(t, d) for t, d in content_records(content)) + record("X")
    )
    assert (stream.readable(), stream.seekable(), stream.writable()) == (True, True, False)
    assert stream.read(5) == b"one\nt"
    assert stream.tell() == 5
    assert stream.seek(0) == 0
    assert stream.read() == content
    assert stream.tell() == len(content)
    assert stream.read() == b""
    assert stream.seek(8) == 8 and stream.read(3) == b"thr"
    assert stream.seek(-7, io.SEEK_CUR) == 4 and stream.read(3) == b"two"
    assert stream.seek(-6, io.SEEK_END) == 8 and stream.read() == b"three\n"
    assert stream.seek(100) == len(content)
    buffer = bytearray(6)
    stream.seek(0)
    assert stream.readinto(buffer) == 6 and buffer == b"one\ntw"
    assert stream.readline() == b"o\n"
    with pytest.raises(ValueError, match="negative seek position"):
        stream.seek(-1)
    with pytest.raises(ValueError, match="invalid whence"):
        stream.seek(0, 3)
    with pytest.raises(io.UnsupportedOperation):
        stream.fileno()  # the file's size is not the content's
    stream.close()
    with pytest.raises(ValueError, match="closed"):
        stream.read()


@settings(max_examples=60, deadline=None)
@given(
    content=st.binary(max_size=600),
    line_limit=st.integers(1, 40),
    block=st.integers(6, 50),
    reads=st.lists(st.integers(1, 97), min_size=1, max_size=20),
    filler=st.lists(st.sampled_from(["w", "p"]), max_size=30),
)
def test_round_trip(
    tmp_path_factory: pytest.TempPathFactory,
    content: bytes,
    line_limit: int,
    block: int,
    reads: list[int],
    filler: list[str],
) -> None:
    # Content records with padding and no-op pointers sprinkled in between come back as the
    # content, whatever the block and read sizes.
    recs = content_records(content, line_limit=line_limit)
    b = QueueFileBuilder()
    for i, (rtype, data) in enumerate(recs):
        if i < len(filler) and filler[i] == "p":
            b.pointer(0)
        elif i < len(filler):
            b.padding(i)
        b.add(rtype, data)
    b.add("X")
    path = tmp_path_factory.mktemp("q") / "file"
    path.write_bytes(b.bytes())
    fd = os.open(path, os.O_RDONLY)
    try:
        stream = RecordContent(fd, 0, block_size=block)
        got = bytearray()
        for size in reads * (len(content) // sum(reads) + 2):
            got += stream.read(size)
        assert got == content
        stream.seek(0)
        assert stream.read() == content
    finally:
        os.close(fd)


def test_round_trip_of_whole_lines_in_large_blocks(tmp_path: Path) -> None:
    # Blocks larger than a short record, where the fast loops of _whole_lines run: runs of
    # N records, L records of long lines (lengths of one and two bytes), records cut at the
    # end of a block, whole and chunked reads. A seeded corpus of 400 files: a record cut
    # at a block's end by one of the loops shows in a few percent of them.
    rng = random.Random(16)
    path = tmp_path / "file"
    for _ in range(400):
        lines = [
            rng.randbytes(rng.randrange(300)).replace(b"\n", b"") for _ in range(rng.randrange(80))
        ]
        content = b"".join(line + b"\n" for line in lines)
        b = QueueFileBuilder()
        b.add_all(content_records(content, line_limit=rng.randint(1, 300)))
        b.add("X")
        path.write_bytes(b.bytes())
        fd = os.open(path, os.O_RDONLY)
        try:
            stream = RecordContent(fd, 0, block_size=rng.randint(129, 3000))
            assert stream.read() == content
            stream.seek(0)
            size = rng.randint(1, 5000)
            assert b"".join(iter(functools.partial(stream.read, size), b"")) == content
        finally:
            os.close(fd)


# --- the captured queue file ----------------------------------------------------------------


def captured_file() -> bytes:
    """The file whose listing Postfix gave, before the marking (R at 711 and 897)."""
    b = QueueFileBuilder()
    for offset, rtype, data in json.loads(CAPTURED.read_text()):
        if offset in (711, 897):
            rtype = "R"
        assert b.add(rtype, data.encode()) == offset
    return b.bytes()


def test_captured_content(fd_of: FdOf) -> None:
    listing = json.loads(CAPTURED.read_text())
    expected = b"".join(
        data.encode() + (b"\n" if rtype == "N" else b"")
        for offset, rtype, data in listing
        if 921 <= offset < 4340
    )
    content = _read(fd_of, captured_file(), 921)
    assert content == expected
    lines = content.split(b"\n")
    assert lines[0] == b"Received: from client.test.local (localhost [127.0.0.1])"
    assert lines[8] == b""  # header/body separator
    assert lines[10].startswith(b"A long line: xxx") and len(lines[10]) > 2048
    assert lines[-3:] == [b".leading dot line", b"last line", b""]
    # The request's size (3419 = X offset - data offset) counts record bytes, not content.
    assert len(content) < 3419 == 4340 - 921


def test_twenty_megabytes_in_bounded_memory(tmp_path: Path) -> None:
    path = tmp_path / "big"
    line = b"y" * 900
    with path.open("wb") as out:
        out.write(record("N", "Subject: big") + record("N", ""))
        for i in range(10240):
            out.write(record("L", b"x" * 2048) + record("N", line) if i % 2 else record("N", line))
        out.write(record("X"))
    fd = os.open(path, os.O_RDONLY)
    try:
        stream = RecordContent(fd, 0)
        tracemalloc.start()
        try:
            total = 0
            for chunk in iter_file_chunks(stream, chunk_size=65536):  # type: ignore[arg-type]
                total += len(chunk)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
    finally:
        os.close(fd)
    assert total == 14 + 5120 * (2048 + 901) + 5120 * 901  # 19.7 MB
    # One read block, one chunk and its pieces: nothing grows with the message.
    assert peak < 6 * 65536, peak

"""Tests of mailcarrier.content.stream: bounded chunked reads of a file or a byte range of it,
clear errors for truncated content and misuse, and file -> wire encoding that matches feeding
the encoder by hand, with memory bounded by the chunk size for a 100 MB file.
"""

from __future__ import annotations

import io
import os
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.content import DataEncoder, encode_chunks, encode_file, iter_file_chunks
from mailcarrier.content.stream import MessageFile, open_message_file
from mailcarrier.errors import DataError, UsageError


class _Pipe(io.RawIOBase):
    """A non-seekable stream that hands out at most `step` bytes per read, like a pipe."""

    def __init__(self, data: bytes, step: int) -> None:
        self._data = data
        self._pos = 0
        self._step = step

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), self._step, len(self._data) - self._pos)
        buffer[:size] = self._data[self._pos : self._pos + size]
        self._pos += size
        return size


class _Synthetic(io.RawIOBase):
    """A seekable file of `size` bytes generated on demand from a repeating block."""

    def __init__(self, block: bytes, size: int) -> None:
        self._block = block
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        assert whence == io.SEEK_SET
        self._pos = offset
        return offset

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        size = min(len(buffer), self._size - self._pos)
        start = self._pos % len(self._block)
        reps = (start + size) // len(self._block) + 1
        buffer[:size] = (self._block * reps)[start : start + size]
        self._pos += size
        return size


DATA = bytes(range(256)) * 40  # 10240 bytes, every byte value


def test_whole_file_in_bounded_chunks() -> None:
    chunks = list(iter_file_chunks(io.BytesIO(DATA), chunk_size=1000))
    assert b"".join(chunks) == DATA
    assert [len(c) for c in chunks] == [1000] * 10 + [240]
    assert all(type(c) is bytes for c in chunks)


@pytest.mark.parametrize(
    ("start", "length"),
    [(0, None), (0, 0), (5, None), (5, 10), (1000, 1000), (10239, 1), (10240, None), (10240, 0)],
)
def test_byte_range(start: int, length: int | None) -> None:
    fileobj = io.BytesIO(DATA)
    fileobj.seek(4321)  # the current position must not matter
    got = b"".join(iter_file_chunks(fileobj, start=start, length=length, chunk_size=7))
    end = None if length is None else start + length
    assert got == DATA[start:end]


def test_no_empty_chunks() -> None:
    assert list(iter_file_chunks(io.BytesIO(b""))) == []
    assert list(iter_file_chunks(io.BytesIO(DATA), start=20, length=0)) == []


def test_truncated_content_is_an_error_not_a_short_message() -> None:
    chunks = iter_file_chunks(io.BytesIO(DATA), start=10000, length=500, chunk_size=100)
    with pytest.raises(DataError, match="ends after 240 of 500 bytes"):
        list(chunks)


def test_non_seekable_stream_short_reads() -> None:
    pipe = io.BufferedReader(_Pipe(DATA, 3), buffer_size=5)
    assert b"".join(iter_file_chunks(pipe, chunk_size=64)) == DATA
    raw = _Pipe(DATA, 3)
    got = list(iter_file_chunks(raw, length=100, chunk_size=64))  # type: ignore[arg-type]
    assert b"".join(got) == DATA[:100]
    assert all(0 < len(c) <= 64 for c in got)


def test_non_seekable_stream_cannot_start_elsewhere() -> None:
    with pytest.raises(UsageError, match="non-seekable"):
        iter_file_chunks(_Pipe(DATA, 3), start=1)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "kwargs",
    [{"chunk_size": 0}, {"chunk_size": -1}, {"start": -1}, {"length": -1}],
)
def test_bad_arguments_are_refused_at_the_call(kwargs: dict[str, int]) -> None:
    with pytest.raises(UsageError):
        iter_file_chunks(io.BytesIO(DATA), **kwargs)


def test_real_file_range(tmp_path: Path) -> None:
    path = tmp_path / "queuefile"
    header = b"HEADER-RECORDS\n"
    content = b"Subject: hi\n\n.dot\nline\r\n"
    path.write_bytes(header + content + b"TRAILER")
    with path.open("rb") as fileobj:
        wire = b"".join(encode_file(fileobj, start=len(header), length=len(content)))
    assert wire == b"Subject: hi\r\n\r\n..dot\r\nline\r\n"


def _opened(path: Path, **kwargs: int | None) -> MessageFile:
    opened = open_message_file(path, **kwargs)  # type: ignore[arg-type]
    assert isinstance(opened, MessageFile)
    return opened


def test_small_message_file_is_read_once_at_open(tmp_path: Path) -> None:
    path = tmp_path / "msg"
    path.write_bytes(DATA[:1000])
    opened = _opened(path)
    try:
        assert opened.eof and opened.head == DATA[:1000] and opened.size() == 1000
        path.write_bytes(b"changed afterwards")  # nothing more is read from the file
        for _ in range(2):  # one pass per server tried
            assert b"".join(iter_file_chunks(opened)) == DATA[:1000]
    finally:
        opened.close()
    assert opened.closed
    opened.close()  # twice is harmless


def _descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_message_read_whole_at_open_holds_no_descriptor(tmp_path: Path) -> None:
    # A delivery waits seconds for the server's last reply; 10,000 of them at once must not
    # hold 10,000 message files open as well as their sockets.
    path = tmp_path / "msg"
    path.write_bytes(DATA[:1000])
    before = _descriptors()
    small = [_opened(path), _opened(path, start=100), _opened(path, start=10, length=2000)]
    assert _descriptors() == before
    assert all(m.eof and m.closed for m in small)
    assert [b"".join(iter_file_chunks(m, start=m.start, length=m.length)) for m in small[:2]] == [
        DATA[:1000],
        DATA[100:1000],
    ]
    assert [m.size() for m in small] == [1000, 900, 990]
    with pytest.raises(DataError, match="ends after 990 of 2000 bytes"):
        b"".join(iter_file_chunks(small[2], start=10, length=2000))
    # One that needs more reads keeps its descriptor until it is closed.
    large = [_opened(path, chunk_size=64), _opened(path, length=1000)]
    assert _descriptors() == before + 2
    assert not any(m.closed for m in large)
    for m in small + large:
        m.close()
    assert _descriptors() == before


@pytest.mark.parametrize(
    ("start", "length"), [(0, None), (7, None), (0, 250), (13, 250), (5, 0), (0, 1000)]
)
def test_message_file_beyond_one_block(tmp_path: Path, start: int, length: int | None) -> None:
    path = tmp_path / "msg"
    path.write_bytes(DATA[:1000])
    opened = _opened(path, start=start, length=length, chunk_size=64)
    try:
        want = DATA[start:1000] if length is None else DATA[start : start + length]
        chunks = list(iter_file_chunks(opened, start=start, length=length, chunk_size=64))
        assert b"".join(chunks) == want
        assert all(0 < len(c) <= 64 for c in chunks)
        assert b"".join(iter_file_chunks(opened, start=start, length=length)) == want
        assert opened.size() == 1000 - start
    finally:
        opened.close()


@pytest.mark.parametrize("chunk_size", [64, 65536])
def test_truncated_message_file_is_an_error(tmp_path: Path, chunk_size: int) -> None:
    path = tmp_path / "msg"
    path.write_bytes(DATA[:300])
    opened = _opened(path, start=10, length=400, chunk_size=chunk_size)
    try:
        with pytest.raises(DataError, match="ends after 290 of 400 bytes"):
            b"".join(iter_file_chunks(opened, start=10, length=400, chunk_size=chunk_size))
    finally:
        opened.close()


def test_message_file_is_read_for_its_own_range_only(tmp_path: Path) -> None:
    path = tmp_path / "msg"
    path.write_bytes(DATA[:100])
    opened = _opened(path, start=10)
    try:
        with pytest.raises(UsageError, match="range it was opened for"):
            iter_file_chunks(opened, start=0)
    finally:
        opened.close()


def test_message_file_errors_close_the_descriptor(tmp_path: Path) -> None:
    before = len(os.listdir("/proc/self/fd"))
    with pytest.raises(FileNotFoundError):
        open_message_file(tmp_path / "missing")
    with pytest.raises(IsADirectoryError):
        open_message_file(tmp_path)
    assert len(os.listdir("/proc/self/fd")) == before


def test_fifo_by_path_is_read_as_it_flows(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    writer = os.open(fifo, os.O_RDWR)  # a writer, so that opening does not block
    try:
        os.write(writer, b"line\n.dot\n")
        opened = open_message_file(fifo)
        assert isinstance(opened, io.FileIO)
        os.close(writer)
        writer = -1
        with opened:
            assert b"".join(encode_file(opened)) == b"line\r\n..dot\r\n"
    finally:
        if writer >= 0:
            os.close(writer)


@given(
    data=st.binary(max_size=300),
    chunk_size=st.integers(min_value=1, max_value=50),
    limit=st.sampled_from([0, 3, 998]),
)
def test_encode_file_matches_encoder(data: bytes, chunk_size: int, limit: int) -> None:
    reference = DataEncoder(line_length_limit=limit)
    expected = reference.feed(data) + reference.finish()
    encoder = DataEncoder(line_length_limit=limit)
    pieces = list(encode_file(io.BytesIO(data), chunk_size=chunk_size, encoder=encoder))
    assert b"".join(pieces) == expected
    assert all(pieces)
    assert encoder.finished
    assert encoder.statistics() == reference.statistics()


def test_encode_chunks_and_default_encoder() -> None:
    encoder = DataEncoder(dot_stuff=False)
    assert b"".join(encode_chunks([b".a\r", b"\n.", b""], encoder)) == b".a\r\n.\r\n"
    assert b"".join(encode_file(io.BytesIO(b"x" * 999))) == b"x" * 998 + b"\r\n x\r\n"
    assert list(encode_file(io.BytesIO(b""))) == []


def test_100_mb_file_streams_in_bounded_memory() -> None:
    size = 100 * 1024 * 1024
    block = b"Subject: x\n" + b"y" * 2000 + b"\r\n.dot\rline of text\n"
    fileobj = io.BufferedReader(_Synthetic(block, size + 64), buffer_size=65536)
    encoder = DataEncoder()
    tracemalloc.start()
    try:
        out = 0
        for piece in encode_file(fileobj, start=32, length=size, encoder=encoder):
            out += len(piece)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert encoder.bytes_in == size
    assert encoder.bytes_out == out
    assert peak < 16 * 65536, peak

"""queue/smtpd_io.py: command lines and the DATA stream of ``sendmail -bs``, whatever way
the client's bytes are cut into reads. Hypothesis writes messages, dot-stuffs them as a
client does (RFC 5321 4.5.2) and feeds them in random pieces: the reader gives back the
message with LF line ends, stops at the "." line, and leaves what follows for the next
command."""

from __future__ import annotations

import io
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.queue.smtpd_io import BLOCK, DataReader, InputClosed, PipeInput, Replies


class _Pieces(io.RawIOBase):
    """A client whose bytes arrive in the given pieces, one per read."""

    def __init__(self, pieces: list[bytes]) -> None:
        super().__init__()
        self.pieces = list(pieces)
        self.reads = 0

    def readable(self) -> bool:
        return True

    def read1(self, size: int = -1) -> bytes:
        self.reads += 1
        return self.pieces.pop(0) if self.pieces else b""


def _cut(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    return [data[a:b] for a, b in itertools.pairwise(points) if b > a]


def _stuffed(lines: list[bytes]) -> bytes:
    return b"".join((b"." + line if line.startswith(b".") else line) + b"\r\n" for line in lines)


_LINE = st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b""))


@given(lines=st.lists(_LINE, max_size=12), cuts=st.lists(st.integers(0, 10_000), max_size=8))
def test_data_round_trips_in_any_pieces(lines: list[bytes], cuts: list[int]) -> None:
    wire = _stuffed(lines) + b".\r\nQUIT\r\n"
    source = PipeInput(_Pieces(_cut(wire, cuts)), lambda: None)  # type: ignore[arg-type]
    reader = DataReader(source)
    got = io.BufferedReader(reader).read()
    assert got == b"".join(line + b"\n" for line in lines)
    assert source.command_line(100) == (b"QUIT", True)
    assert source.command_line(100) is None


def test_a_crlf_at_the_block_boundary_is_not_split() -> None:
    line = b"x" * (BLOCK - 1)  # its CR is the last byte of a block
    wire = line + b"\r\n.\r\n"
    source = PipeInput(_Pieces([wire]), lambda: None)  # type: ignore[arg-type]
    assert io.BufferedReader(DataReader(source)).read() == line + b"\n"


def test_end_of_input_inside_data_raises() -> None:
    source = PipeInput(_Pieces([b"Subject: x\r\n\r\nhalf"]), lambda: None)  # type: ignore[arg-type]
    with pytest.raises(InputClosed):
        io.BufferedReader(DataReader(source)).read()


def test_over_long_command_lines_are_dropped_whole() -> None:
    wire = b"NOOP " + b"a" * 5000 + b"\r\nQUIT\r\n"
    source = PipeInput(_Pieces(_cut(wire, [7, 100, 3000])), lambda: None)  # type: ignore[arg-type]
    assert source.command_line(2048) == (b"", False)
    assert source.command_line(2048) == (b"QUIT", True)


def test_replies_wait_until_the_input_runs_dry() -> None:
    out = io.BytesIO()
    replies = Replies(out)
    pieces = _Pieces([b"NOOP\r\nNOOP\r\n", b"QUIT\r\n"])
    source = PipeInput(pieces, replies.flush)  # type: ignore[arg-type]
    replies.add("220 ready")
    assert source.command_line(100) == (b"NOOP", True)  # one read: 220 went out before it
    assert out.getvalue() == b"220 ready\r\n"
    replies.add("250 one")
    assert source.command_line(100) == (b"NOOP", True)  # buffered: no read, no write
    replies.add("250 two")
    assert out.getvalue() == b"220 ready\r\n"
    assert source.command_line(100) == (b"QUIT", True)  # a read: both replies first
    assert out.getvalue() == b"220 ready\r\n250 one\r\n250 two\r\n"

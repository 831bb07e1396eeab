"""content/pipeline.py's `ContentPlan.on_broken_line`: told once a pass over the content has
broken a line longer than the limit, on every path (a small file encoded whole, chunks,
the MIME path), and never for content whose lines all fit."""

from __future__ import annotations

import io
from collections.abc import Iterable
from pathlib import Path

import pytest

from mailcarrier.content.pipeline import ContentPlan
from mailcarrier.content.stream import MessageFile, open_message_file

LONG = b"Subject: long\n\n" + b"y" * 1500 + b"\nshort\n" + b"z" * 1000 + b"\n"
SHORT = b"Subject: short\n\n" + b"y" * 998 + b"\n"


class Counter:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> None:
        self.calls += 1


def _drain(chunks: Iterable[bytes]) -> bytes:
    return b"".join(chunks)


def _file(tmp_path: Path, content: bytes) -> MessageFile:
    path = tmp_path / "message"
    path.write_bytes(content)
    opened = open_message_file(path)
    assert isinstance(opened, MessageFile) and opened.complete
    return opened


@pytest.mark.parametrize(("content", "calls"), [(LONG, 1), (SHORT, 0)])
def test_a_small_file_encoded_whole(tmp_path: Path, content: bytes, calls: int) -> None:
    told = Counter()
    source = _file(tmp_path, content)
    try:
        plan = ContentPlan(source, on_broken_line=told)
        wire = _drain(plan.plain_chunks())
    finally:
        source.close()
    assert told.calls == calls
    assert (b"\r\n y" in wire) == bool(calls)


@pytest.mark.parametrize(("content", "calls"), [(LONG, 1), (SHORT, 0)])
@pytest.mark.parametrize("downgrade", [False, True])
def test_chunks_tell_once_the_pass_is_over(content: bytes, calls: int, downgrade: bool) -> None:
    told = Counter()
    plan = ContentPlan(io.BytesIO(content), encoding="8bit", on_broken_line=told)
    chunks = iter(plan.chunks(downgrade=downgrade))
    next(chunks)
    assert told.calls == 0  # not before the content has all gone through the encoder
    _drain(chunks)
    assert told.calls == calls


def test_without_a_listener_the_chunks_are_the_same() -> None:
    told = Counter()
    plain = _drain(ContentPlan(io.BytesIO(LONG)).chunks(downgrade=False))
    listened = _drain(ContentPlan(io.BytesIO(LONG), on_broken_line=told).chunks(downgrade=False))
    assert plain == listened
    assert plain.count(b"\r\n ") == 2  # 1500 bytes: once; 1000 bytes: once

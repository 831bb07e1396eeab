"""Tests of mailcarrier.content.mime (and lines.py, qp.py underneath): Postfix's 8bit->7bit
downgrade over a corpus of real-world MIME structures, chunk-size independence, the rules for
which parts are converted and how their headers change, boundaries, nesting limits, header size
limits, and the pass-through cases.
"""

from __future__ import annotations

import quopri

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.content.lines import LineSplitter
from mailcarrier.content.mime import ContentError, HeaderClass, MimeLimits, MimeProcessor
from mailcarrier.content.qp import QuotedPrintableLine
from tests.support.corpus import CORPUS, GERMAN, decoded_texts, deep


def run(raw: bytes, step: int = 65536, **kw: object) -> bytes:
    splitter = LineSplitter()
    proc = MimeProcessor(downgrade=kw.pop("downgrade", True), **kw)  # type: ignore[arg-type]
    out: list[bytes] = []
    for i in range(0, len(raw), step):
        out.extend(proc.piece(p, c) for p, c in splitter.feed(raw[i : i + step]))
    out.extend(proc.piece(p, c) for p, c in splitter.finish())
    out.append(proc.finish())
    return b"".join(out)


@pytest.mark.parametrize("name", sorted(CORPUS))
def test_corpus_round_trip(name: str) -> None:
    raw = CORPUS[name].encode()
    converted = run(raw)
    assert converted.isascii(), "no byte >= 0x80 after conversion"
    assert decoded_texts(converted) == decoded_texts(raw)
    assert max(len(line) for line in converted.split(b"\n")) <= 998


@pytest.mark.parametrize("name", sorted(CORPUS))
@pytest.mark.parametrize("step", [1, 7, 100, 4096])
def test_chunking_does_not_matter(name: str, step: int) -> None:
    raw = CORPUS[name].encode()
    assert run(raw, step) == run(raw)


def test_converted_part_gets_new_cte_at_end_of_its_header_block() -> None:
    raw = (
        "Content-Transfer-Encoding: 8bit\nContent-Type: text/plain; charset=utf-8\n"
        "Subject: x\n\nä\n"
    ).encode()
    assert run(raw) == (
        b"Content-Type: text/plain; charset=utf-8\nSubject: x\n"
        b"Content-Transfer-Encoding: quoted-printable\n\n=C3=A4\n"
    )


def test_composite_types_are_relabelled_7bit() -> None:
    raw = CORPUS["digest"].encode()
    out = run(raw)
    head = out.split(b"\n\n", 1)[0]
    assert b"Content-Transfer-Encoding: 7bit" in head
    assert b"8bit" not in head


def test_parts_without_8bit_cte_pass_byte_for_byte() -> None:
    # No CTE header means 7bit (RFC 2045 6.1): Postfix passes it through unchanged, 8-bit
    # bytes and all; headers with 8-bit text pass unchanged too.
    raw = "Subject: Grüße\nContent-Type: text/plain\n\nGrüße\n".encode()
    assert run(raw) == raw
    qp = b"Content-Transfer-Encoding: quoted-printable\n\n=C3=A4 already\n"
    assert run(qp) == qp
    b64 = b"Content-Transfer-Encoding: base64\n\nw6Q=\n"
    assert run(b64) == b64


def test_no_downgrade_is_identity_for_corpus() -> None:
    for text in CORPUS.values():
        raw = text.encode()
        assert run(raw, downgrade=False) == raw
        assert run(raw, downgrade=False, mime=False) == raw


def test_message_partial_body_is_encoded_but_labelled_7bit() -> None:
    raw = (
        "Content-Type: message/partial; id=x; number=1\nContent-Transfer-Encoding: 8bit\n\nä\n"
    ).encode()
    out = run(raw)
    assert out.endswith(b"Content-Transfer-Encoding: 7bit\n\n=C3=A4\n")


def test_outer_boundary_closes_inner_parts() -> None:
    raw = (
        'Content-Type: multipart/mixed; boundary="out"\n\n'
        "--out\n"
        'Content-Type: multipart/alternative; boundary="in"\n\n'
        "--in\nContent-Transfer-Encoding: 8bit\n\nä\n"
        "--out\nContent-Transfer-Encoding: 8bit\n\nö\n--out--\n"
    ).encode()
    out = run(raw)
    assert out.isascii()
    assert b"=C3=A4" in out and b"=C3=B6" in out


def test_boundaries_are_truncated_and_matched_by_prefix() -> None:
    boundary = "x" * 50
    raw = (
        f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
        f"--{boundary}\nContent-Transfer-Encoding: 8bit\n\nä\n--{boundary}--\n"
    ).encode()
    out = run(raw, limits=MimeLimits(boundary_length_limit=10))
    assert b"=C3=A4" in out


def test_nesting_within_limit_converts() -> None:
    out = run(deep(5).encode(), limits=MimeLimits(nesting_limit=5))
    assert out.isascii()
    assert decoded_texts(out)[0][1] == GERMAN


def test_nesting_beyond_limit_is_content_error() -> None:
    with pytest.raises(ContentError) as info:
        run(deep(6).encode(), limits=MimeLimits(nesting_limit=5))
    assert info.value.dsn == "5.6.0"
    assert info.value.text == "MIME nesting exceeds safety limit"


def test_nesting_beyond_limit_without_downgrade_is_not_checked() -> None:
    raw = deep(6).encode()
    assert run(raw, downgrade=False, limits=MimeLimits(nesting_limit=5)) == raw


def test_header_size_limit_truncates_a_logical_header() -> None:
    raw = b"Subject: " + b"a" * 50 + b"\n " + b"b" * 50 + b"\n\nbody\n"
    out = run(raw, limits=MimeLimits(header_size_limit=30))
    assert out == b"Subject: " + b"a" * 21 + b"\n\nbody\n"


def test_header_hook_sees_classes() -> None:
    seen: list[tuple[HeaderClass, bytes]] = []

    def hook(cls: HeaderClass, text: bytes) -> list[bytes]:
        seen.append((cls, text.split(b":")[0]))
        return text.split(b"\n")

    run(CORPUS["nested"].encode(), header_out=hook)
    classes = {name: cls for cls, name in seen}
    assert classes[b"Subject"] is HeaderClass.NESTED  # the last Subject is the nested one
    assert (HeaderClass.PRIMARY, b"From") in seen
    assert (HeaderClass.MULTIPART, b"Content-Disposition") in seen


def test_lines_pieces_and_line_endings() -> None:
    splitter = LineSplitter(max_piece=4)
    got = list(splitter.feed(b"ab\r\ncdefghij\nk\r"))
    got += list(splitter.feed(b"\nlast"))
    got += list(splitter.finish())
    assert got == [
        (b"ab", True),
        (b"cdef", False),
        (b"ghij", True),
        (b"k", True),
        (b"last", True),
    ]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400), st.integers(min_value=1, max_value=50))
def test_quoted_printable_decodes_back(data: bytes, step: int) -> None:
    lines = data.replace(b"\r", b"").split(b"\n")
    enc = QuotedPrintableLine()
    out = []
    for line in lines:
        pieces = [line[i : i + step] for i in range(0, len(line), step)] or [b""]
        for n, piece in enumerate(pieces):
            out.append(enc.piece(piece, n == len(pieces) - 1))
    encoded = b"".join(out)
    assert encoded.isascii()
    assert all(len(x) <= 76 for x in encoded.split(b"\n"))
    assert quopri.decodestring(encoded) == b"\n".join(lines) + b"\n"


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=300), st.integers(min_value=1, max_value=64))
def test_any_8bit_text_part_round_trips(text: str, step: int) -> None:
    body = text.replace("\r", "").replace("\x00", "")
    raw = (
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + body
    ).encode()
    out = run(raw, step)
    assert out.isascii()
    assert decoded_texts(out) == decoded_texts(raw + (b"" if raw.endswith(b"\n") else b"\n"))

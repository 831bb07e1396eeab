"""Tests for tables/source.py: postmap's input format, read as postmap reads it."""

from __future__ import annotations

import contextlib
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.tables.base import TableError
from mailcarrier.tables.source import Entry, logical_lines, read_entries, split_key


def _read(tmp_path: Path, data: bytes, *, utf8: bool = True) -> tuple[list[Entry], list[str]]:
    path = tmp_path / "src"
    path.write_bytes(data)
    warnings: list[str] = []
    return list(read_entries(path, warnings, utf8=utf8)), warnings


def _lines(data: bytes) -> tuple[list[tuple[int, bytes]], list[str]]:
    warnings: list[str] = []
    return list(logical_lines(data, Path("f"), warnings)), warnings


def test_logical_lines_as_readllines() -> None:
    assert _lines(b"a 1\n  b\n\n# c\n\tmore\nnext 2") == (
        [(1, b"a 1  b\tmore"), (6, b"next 2")],
        [],
    )


def test_comments_and_blank_lines_do_not_end_a_logical_line() -> None:
    # A comment or blank line between a line and its continuation is skipped, as Postfix does.
    assert _lines(b"k v\n# note\n\n   w\n") == ([(1, b"k v   w")], [])


def test_text_before_the_first_logical_line_is_skipped_with_a_warning() -> None:
    lines, warnings = _lines(b"  indented\n  more\nk v\n")
    assert lines == [(3, b"k v")]
    assert warnings == ['f: logical line must not start with whitespace: "  indented  more"']


def test_a_long_indented_line_is_shortened_in_the_warning() -> None:
    _, warnings = _lines(b" " + b"x" * 40 + b"\n")
    assert warnings == [f'f: logical line must not start with whitespace: " {"x" * 29}..."']


def test_null_byte_ends_the_text_with_a_warning() -> None:
    assert _lines(b"a\x00b 1\n c\nd 2\n") == (
        [(1, b"a"), (3, b"d 2")],
        ["f, line 1-2: text after null byte may be ignored"],
    )
    assert _lines(b"k v\x00w\n")[1] == ["f, line 1: text after null byte may be ignored"]


@pytest.mark.parametrize(
    ("line", "parts"),
    [
        (b"key value", (b"key", b"value")),
        (b"key \t value with  spaces \t", (b"key", b"value with  spaces")),
        (b'"a b"@x y', (b'"a b"@x', b"y")),
        (b"a\\ b c", (b"a\\ b", b"c")),
        (b'"a \\" b" c', (b'"a \\" b"', b"c")),
        (b"justakey", (b"justakey", b"")),
        (b"trailing\\", (b"trailing\\", b"")),
        (b'"open quote', None),
    ],
)
def test_split_key(line: bytes, parts: tuple[bytes, bytes] | None) -> None:
    assert split_key(line) == parts


def test_entries_and_warnings_in_file_order(tmp_path: Path) -> None:
    entries, warnings = _read(
        tmp_path,
        b"A@B.C  value\n"
        b"novalue\n"
        b'"unbalanced x\n'
        b"alias: target\n"
        b"caf\xe9 latin-1\n"
        b"caf\xc3\xa9 utf-8\n",
    )
    path = tmp_path / "src"
    assert entries == [
        Entry(1, b"A@B.C", b"value"),
        Entry(4, b"alias:", b"target"),
        Entry(6, b"caf\xc3\xa9", b"utf-8"),
    ]
    assert warnings == [
        f"{path}, line 2: expected format: key whitespace value",
        f"{path}, line 3: unbalanced '\"' in '\"unbalanced x' -- ignoring this line",
        f'{path}, line 4: record is in "key: value" format; is this an alias file?',
        f'{path}, line 5: non-UTF-8 input "caf\udce9 latin-1" -- ignoring this line',
    ]


def test_without_utf8_any_bytes_are_kept(tmp_path: Path) -> None:
    entries, warnings = _read(tmp_path, b"caf\xe9 latin-1\n", utf8=False)
    assert (entries, warnings) == ([Entry(1, b"caf\xe9", b"latin-1")], [])


def test_crlf_lines(tmp_path: Path) -> None:
    entries, warnings = _read(tmp_path, b"k v\r\nonly\r\n")
    assert entries == [Entry(1, b"k", b"v")]
    assert warnings == [f"{tmp_path / 'src'}, line 2: expected format: key whitespace value"]


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"^open .*/nothing: No such file or directory$"):
        list(read_entries(tmp_path / "nothing", []))


# Words of any characters but postmap's white space, quotes, backslashes, "#" and NUL.
_WORD = st.text(
    st.characters(codec="utf-8", exclude_characters=' \t\r\n\x0b\x0c"\\#\x00'),
    min_size=1,
    max_size=12,
).map(lambda text: text.encode("utf-8"))


@given(st.lists(st.tuples(_WORD, st.lists(_WORD, min_size=1, max_size=4)), max_size=8))
def test_grammar_round_trip(pairs: list[tuple[bytes, list[bytes]]]) -> None:
    """Any file of "key value words" lines reads back as those keys and values."""
    data = b"".join(key + b"\t " + b" ".join(words) + b"  \n" for key, words in pairs)
    warnings: list[str] = []
    lines = list(logical_lines(data, Path("f"), warnings))
    assert warnings == []
    parsed = [split_key(text) for _, text in lines]
    assert parsed == [(key, b" ".join(words)) for key, words in pairs]


class _Counted:
    """A Progress (progress.py) keeping the total and, at each entry, the lines done."""

    def __init__(self) -> None:
        self.total = 0
        self.done = 0

    def grow(self, total: int) -> None:
        self.total = max(self.total, total)

    def advance(self, count: int = 1) -> None:
        self.done += count

    def outside(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


@pytest.mark.parametrize(
    ("data", "total", "before"),
    [
        (b"a 1\n  b\n\n# c\n\tmore\nnext 2", 6, [(1, 0), (6, 5)]),
        (b"a 1\nb 2\n# end\n", 3, [(1, 0), (2, 1)]),
        (b"", 0, []),
    ],
)
def test_progress_counts_the_lines_read(
    tmp_path: Path, data: bytes, total: int, before: list[tuple[int, int]]
) -> None:
    path = tmp_path / "src"
    path.write_bytes(data)
    progress = _Counted()
    seen = []
    for entry in read_entries(path, [], progress=progress):
        seen.append((entry.lineno, progress.done))  # the lines before the entry's first
    assert seen == before
    assert (progress.total, progress.done) == (total, total)

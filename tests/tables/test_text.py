"""Tests for tables/text.py: brace-aware list splitting and table source line reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcarrier.tables import TableError
from mailcarrier.tables.text import logical_lines, split_braced, strip_group


@pytest.mark.parametrize(
    ("text", "items"),
    [
        ("", []),
        ("a", ["a"]),
        ("a, b c,,d", ["a", "b", "c", "d"]),
        ("  a\n\tb  ", ["a", "b"]),
        ("inline:{ a=1, b=2 }, hash:/x", ["inline:{ a=1, b=2 }", "hash:/x"]),
        (
            "unionmap:{ inline:{a=1}, static:{x y} } z",
            ["unionmap:{ inline:{a=1}, static:{x y} }", "z"],
        ),
        ("{ key = value }", ["{ key = value }"]),
    ],
)
def test_split_braced(text: str, items: list[str]) -> None:
    assert split_braced(text) == items


@pytest.mark.parametrize("text", ["{a", "a}", "inline:{ {a=b }"])
def test_split_braced_unbalanced(text: str) -> None:
    with pytest.raises(ValueError, match="}"):
        split_braced(text)


def test_strip_group() -> None:
    assert strip_group("{ a b }") == "a b"
    assert strip_group("  plain ") == "plain"
    assert strip_group("{x") == "{x"


def test_logical_lines(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("# comment\n\nkey1 v1\n  more\n\tand more\n   # indented comment\nkey2 v2\n")
    assert logical_lines(path) == [(3, "key1 v1 more and more"), (7, "key2 v2")]


def test_logical_lines_leading_continuation_is_a_line(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("  starts indented\n")
    assert logical_lines(path) == [(1, "starts indented")]


def test_logical_lines_missing_file(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="No such file"):
        logical_lines(tmp_path / "nope")

"""Tests for tables/simple.py: inline, static and texthash tables."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcarrier.tables import TableError, open_table


def test_inline_folds_keys_and_keeps_first() -> None:
    table = open_table("inline:{ Key=V1, key=V2, {spaced key = a, b} }")
    assert table.lookup("KEY") == "V1"
    assert table.lookup("spaced key") == "a, b"
    assert table.fixed and not table.pattern
    assert table.files() == ()


@pytest.mark.parametrize("spec", ["inline:{ a }", "inline:{ =b }", "inline:{ {a=b }"])
def test_inline_malformed(spec: str) -> None:
    with pytest.raises(TableError):
        open_table(spec)


def test_static() -> None:
    assert open_table("static:OK").lookup("whatever") == "OK"
    assert open_table("static:{ two words }").lookup("") == "two words"


def test_texthash(tmp_path: Path) -> None:
    path = tmp_path / "map"
    path.write_text("a 1\nB 2\n  continued\nbad\n")
    table = open_table(f"texthash:{path}")
    assert table.lookup("A") == "1"
    assert table.lookup("b") == "2 continued"
    assert table.warnings == [f"{path}:4: expected format: key whitespace value"]
    assert table.files() == (path,)


def test_texthash_relative_to_base_dir(tmp_path: Path) -> None:
    (tmp_path / "rel").write_text("k v\n")
    assert open_table("texthash:rel", tmp_path).lookup("k") == "v"

"""Tests for tables/composite.py: unionmap and pipemap."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcarrier.tables import TableError, open_table


def test_union_flags_and_files(tmp_path: Path) -> None:
    path = tmp_path / "r"
    path.write_text("/^a/ re\n")
    table = open_table(f"unionmap:{{ regexp:{path}, inline:{{a=in}} }}")
    assert table.fixed and table.pattern
    assert table.lookup("a") == "re,in"
    assert table.files() == (path,)


def test_pipemap_all_pattern_is_not_fixed(tmp_path: Path) -> None:
    path = tmp_path / "r"
    path.write_text("/(.*)/ <$1>\n")
    table = open_table(f"pipemap:{{ regexp:{path}, regexp:{path} }}")
    assert table.lookup("x") == "<<x>>"
    assert not table.fixed


@pytest.mark.parametrize("spec", ["unionmap:{ }", "pipemap:{ nosuch:x }", "unionmap:{ {a }"])
def test_bad_members(spec: str) -> None:
    with pytest.raises(TableError):
        open_table(spec)

"""Tests for tables/regexp.py beyond the golden cases: flags, nesting, substitution."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcarrier.tables import open_table
from mailcarrier.tables.base import Table


def _table(tmp_path: Path, text: str, kind: str = "regexp") -> Table:
    path = tmp_path / "rules"
    path.write_text(text)
    return open_table(f"{kind}:{path}")


def test_any_delimiter_and_escaped_delimiter(tmp_path: Path) -> None:
    table = _table(tmp_path, "|a/b|  slash\n/x\\/y/ escaped\n")
    assert table.lookup("a/b") == "slash"
    assert table.lookup("x/y") == "escaped"
    assert table.pattern and not table.fixed


def test_substitution_forms(tmp_path: Path) -> None:
    table = _table(tmp_path, "/^(a)(b)?(c)$/ 1=$1 2=${2} 3=$(3) $$\n")
    assert table.lookup("ac") == "1=a 2= 3=c $"


def test_nested_if(tmp_path: Path) -> None:
    rules = "if /a/\nif !/b/\n/c/ a-not-b-c\nendif\n/c/ a-c\nendif\n/./ fallback\n"
    table = _table(tmp_path, rules)
    assert table.lookup("ac") == "a-not-b-c"
    assert table.lookup("abc") == "a-c"
    assert table.lookup("xc") == "fallback"
    assert table.warnings == []


def test_multiline_flag(tmp_path: Path) -> None:
    table = _table(tmp_path, "/^two$/m line\n")
    assert table.lookup("one\ntwo") == "line"


@pytest.mark.parametrize("kind", ["regexp", "pcre"])
def test_case_toggle(tmp_path: Path, kind: str) -> None:
    table = _table(tmp_path, "/^ABC$/i upper\n/^abc$/ any\n", kind)
    assert table.lookup("ABC") == "upper"
    assert table.lookup("abc") == "any"


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("/a/x rule", 'unsupported regexp flag "x"'),
        ("/a/s rule", 'unsupported regexp flag "s"'),
        ("/a/ $name", 'bad "$"'),
        ("/a{99999999999999999999}/ huge", "bad regular expression"),
        ("if", "missing pattern"),
        ("!", "missing pattern"),
    ],
)
def test_regexp_rejects(tmp_path: Path, line: str, message: str) -> None:
    table = _table(tmp_path, line + "\n/./ ok\n")
    assert len(table.warnings) == 1
    assert message in table.warnings[0]
    assert table.warnings[0].startswith(f"{tmp_path / 'rules'}:1: ")
    assert table.lookup("a") == "ok"


def test_pcre_flags(tmp_path: Path) -> None:
    table = _table(tmp_path, "/a.b/s dotall\n/^x/AEX anchored\n", "pcre")
    assert table.lookup("a\nb") == "dotall"
    assert table.lookup("xy") == "anchored"
    assert table.warnings == []

"""Tests for config/parser.py: main.cf syntax, byte by byte and with hypothesis."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.config.parser import RawSetting, logical_lines, parse_main_cf, read_main_cf
from mailcarrier.errors import ConfigError


def test_basic_syntax() -> None:
    text = (
        "# comment\n"
        "\n"
        "a = 1\n"
        "b=2   \n"
        "c =\n"
        "   # comment inside a continuation is skipped\n"
        "d = x,\n"
        "    y,\n"
        "\tz\n"
        "a = last wins\n"
        "e = value # not a comment\n"
    )
    out = parse_main_cf(text, "main.cf")
    assert out == {
        "b": RawSetting("b", "2", "main.cf", 4),
        "c": RawSetting("c", "", "main.cf", 5),
        "d": RawSetting("d", "x, y, z", "main.cf", 7),
        "a": RawSetting("a", "last wins", "main.cf", 10),
        "e": RawSetting("e", "value # not a comment", "main.cf", 11),
    }


def test_logical_line_span() -> None:
    lines = logical_lines("a = 1\n  2\n\n  3\nb = 4\n")
    assert [(ln.first, ln.last, ln.text) for ln in lines] == [(1, 4, "a = 1 2 3"), (5, 5, "b = 4")]


@pytest.mark.parametrize(
    ("text", "message", "lineno"),
    [
        ("  starts with a blank\n", "continuation line without a preceding parameter", 1),
        ("ok = 1\nno equals sign\n", 'missing "="', 2),
        ("bad-name = 1\n", 'bad parameter name: "bad-name"', 1),
        (" = 1\n", "continuation line", 1),
        ("= 1\n", 'bad parameter name: ""', 1),
    ],
)
def test_errors_name_file_and_line(text: str, message: str, lineno: int) -> None:
    with pytest.raises(ConfigError) as info:
        parse_main_cf(text, "/etc/x/main.cf")
    assert message in str(info.value)
    assert str(info.value).startswith(f"/etc/x/main.cf:{lineno}: ")


def test_read_main_cf_missing_is_empty(tmp_path: Path) -> None:
    assert read_main_cf(tmp_path / "main.cf") == {}


def test_read_main_cf_unreadable(tmp_path: Path) -> None:
    (tmp_path / "main.cf").mkdir()
    with pytest.raises(ConfigError, match="cannot read"):
        read_main_cf(tmp_path / "main.cf")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="ab_=# \t\n$,{}", max_size=80))
def test_fuzz_parser(text: str) -> None:
    try:
        out = parse_main_cf(text)
    except ConfigError as exc:
        assert exc.lineno >= 1
        return
    for name, setting in out.items():
        assert setting.name == name and setting.value == setting.value.strip()


def test_names_only_postfix_accepts_can_be_left_out() -> None:
    text = "a-b_limit = 5\nname = 1\n"
    with pytest.raises(ConfigError, match='bad parameter name: "a-b_limit"'):
        parse_main_cf(text)
    assert list(parse_main_cf(text, skip_foreign=True)) == ["name"]
    for still_bad in ("= 1\n", "bad name = 1\n", "missing equals\n"):
        with pytest.raises(ConfigError):
            parse_main_cf(still_bad, skip_foreign=True)

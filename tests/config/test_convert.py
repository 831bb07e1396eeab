"""Tests for config/convert.py: typed values from expanded text."""

from __future__ import annotations

import pytest

from mailcarrier.config.convert import convert, parse_bool, parse_int, parse_time, split_list
from mailcarrier.config.paramtype import Param, ParamType


@pytest.mark.parametrize(
    ("text", "unit", "seconds"),
    [
        ("30s", "s", 30),
        ("5m", "s", 300),
        ("2h", "s", 7200),
        ("1d", "s", 86400),
        ("1w", "s", 604800),
        ("10", "s", 10),
        ("3", "d", 259200),
        (" 0.5s ", "s", 0.5),
    ],
)
def test_parse_time(text: str, unit: str, seconds: float) -> None:
    assert parse_time(text, unit) == seconds


@pytest.mark.parametrize("text", ["", "s", "10x", "-1s", "1 s", "1.s"])
def test_parse_time_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="bad time value"):
        parse_time(text)


def test_bool_and_int() -> None:
    assert parse_bool("YES") is True and parse_bool(" no ") is False
    for bad in ("true", "1", ""):
        with pytest.raises(ValueError, match="want yes or no"):
            parse_bool(bad)
    assert parse_int(" -3 ") == -3
    with pytest.raises(ValueError, match="bad numerical value"):
        parse_int("3k")


def test_split_list() -> None:
    assert split_list(" a,b  c ,\n d ") == ("a", "b", "c", "d")
    assert split_list("inline:{ a=1, b=2 } x") == ("inline:{ a=1, b=2 }", "x")


def test_convert_ranges_and_choices() -> None:
    limit = Param("n", ParamType.INT, "1", minimum=0, maximum=4)
    assert convert(limit, "4") == 4
    with pytest.raises(ValueError, match="below the minimum 0"):
        convert(limit, "-1")
    with pytest.raises(ValueError, match="above the maximum 4"):
        convert(limit, "5")
    days = Param("t", ParamType.TIME, "1d", unit="d", minimum=1)
    assert convert(days, "2") == 172800
    with pytest.raises(ValueError, match="below the minimum"):
        convert(days, "1h")
    level = Param("s", ParamType.STRING, "", choices=("may", "encrypt"))
    assert convert(level, "") == "" and convert(level, " May ") == "May"
    with pytest.raises(ValueError, match='unknown value "secure"'):
        convert(level, "secure")
    classes = Param("l", ParamType.LIST, "", choices=("bounce", "delay"))
    assert convert(classes, "bounce, Delay") == ("bounce", "Delay")
    with pytest.raises(ValueError, match='unknown value "x"'):
        convert(classes, "bounce x")
    size = Param("z", ParamType.SIZE, "0", minimum=0)
    assert convert(size, "10240000") == 10240000


def test_convert_maps_checks_table_syntax() -> None:
    maps = Param("m", ParamType.MAPS, "")
    assert convert(maps, "hash:/a, inline:{ x=y }") == ("hash:/a", "inline:{ x=y }")
    with pytest.raises(ValueError, match="unsupported dictionary type"):
        convert(maps, "hash:/a dbm:/b")
    with pytest.raises(ValueError, match="need dictionary_type:dictionary_name"):
        convert(maps, "/etc/postfix/x")
    with pytest.raises(ValueError, match='missing "}"'):
        convert(maps, "inline:{ a=b")

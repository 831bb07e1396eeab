"""Postfix domain lists (tables/domainlist.py), as match_list/match_hostname answer them:
names, ``.domain``, the parent style, ``!`` negation, ``/file`` entries, and tables asked for
the name and its parents (``.parent`` without the parent style), pattern tables only for the
whole name."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import pytest

from mailcarrier.tables.base import Table, TableError
from mailcarrier.tables.domainlist import DomainList
from mailcarrier.tables.registry import open_table


class _Asked(Table):
    """A fixed table that records the keys it was asked and knows `known`."""

    def __init__(self, known: set[str], fixed: bool = True) -> None:
        super().__init__("test:asked")
        self.known, self.fixed, self.asked = known, fixed, []  # type: ignore[var-annotated]

    def lookup(self, key: str) -> str | None:
        self.asked.append(key)
        return "ok" if key in self.known else None


@pytest.mark.parametrize(
    ("entries", "parent_style", "name", "expected"),
    [
        ("example.com", False, "example.com", True),
        ("example.com", False, "EXAMPLE.com.", True),
        ("example.com", False, "mx.example.com", False),
        ("example.com", True, "mx.example.com", True),
        ("example.com", True, "badexample.com", False),
        (".example.com", False, "mx.example.com", True),
        (".example.com", False, "example.com", False),
        ("!mx.example.com, .example.com", False, "mx.example.com", False),
        ("!mx.example.com, .example.com", False, "a.example.com", True),
        ("", False, "example.com", False),
        (".example.com", True, "mx.example.com", False),  # as match_hostname
        ("!!example.com", False, "example.com", True),
    ],
)
def test_names(entries: str, parent_style: bool, name: str, expected: bool) -> None:
    assert DomainList.parse(entries, parent_style=parent_style).match(name) is expected


@pytest.mark.parametrize(
    ("parent_style", "keys"),
    [
        (False, ["a.b.example", ".b.example", ".example"]),
        (True, ["a.b.example", "b.example", "example"]),
    ],
)
def test_fixed_tables_are_asked_for_the_name_and_its_parents(
    parent_style: bool, keys: list[str]
) -> None:
    table = _Asked(set())
    found = DomainList.parse(
        "hash:/etc/postfix/x", parent_style=parent_style, opener=lambda _: table
    )
    assert not found.match("A.b.example")
    assert table.asked == keys


def test_pattern_tables_see_the_whole_name_only() -> None:
    table = _Asked({"a.b.example"}, fixed=False)
    found = DomainList.parse("hash:/etc/postfix/x", opener=lambda _: table)
    assert found.match("a.b.example")
    assert not found.match("c.a.b.example")
    assert table.asked == ["a.b.example", "c.a.b.example"]


def test_a_real_table_and_a_list_file(tmp_path: Path) -> None:
    listing = tmp_path / "domains"
    listing.write_text("# fast flush\nrelay.test, .sub.test\n!no.other.test\n")
    opener = partial(open_table, base_dir=tmp_path)
    found = DomainList.parse(f"{listing}, inline:{{.other.test=yes}}", opener=opener)
    assert found.match("relay.test")
    assert found.match("x.sub.test")
    assert not found.match("no.other.test")
    assert found.match("yes.other.test")
    assert not found.match("elsewhere.test")


def test_problems_are_one_table_error(tmp_path: Path) -> None:
    with pytest.raises(TableError, match=r"open .*/missing: No such file or directory"):
        DomainList.parse(str(tmp_path / "missing"))
    with pytest.raises(TableError, match="names nothing"):
        DomainList.parse("!")
    with pytest.raises(TableError, match="no tables here"):
        DomainList.parse("inline:{a=b}")

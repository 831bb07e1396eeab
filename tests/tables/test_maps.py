"""Tests for tables/maps.py: the value-only searches (`find_value_async`,
`find_domain_value_async`, which the TLS policy asks for every delivery) against the
searches that make a `Match`, the same for a list of one network table (whose own lookup
`find_value_async` gives), and the warnings of network tables."""

from __future__ import annotations

import asyncio
import sqlite3

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.tables.maps import Maps, open_maps
from tests.support import sqldata


# A fixed table, a pattern table (skipped for partial keys) and another fixed one: which
# table answers depends on the key and on whether it is partial.
@pytest.fixture(scope="module")
def spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    patterns = tmp_path_factory.mktemp("maps") / "patterns"
    patterns.write_text("/^a/ pattern\n/\\.org$/ org\n")
    return (
        "inline:{ example.com=one, .example.com=parent, mx.example.net=three },"
        f" regexp:{patterns},"
        " inline:{ other.test=four, .test=dot-test, b=five }"
    )


_KEYS = st.sampled_from(
    ["example.com", "a.example.com", ".example.com", "mx.example.net", "abc", "x.org",
     ".org", "other.test", "sub.other.test", "b", "none", "", "EXAMPLE.COM"]
)  # fmt: skip


@given(_KEYS, st.booleans())
def test_find_value_async_is_find_async_value(spec: str, key: str, partial: bool) -> None:
    maps = open_maps(spec)

    async def both() -> tuple[str | None, str | None]:
        found = await maps.find_async(key, partial=partial)
        value = await maps.find_value_async(key, partial=partial)
        return (found.value if found is not None else None), value

    expected, value = asyncio.run(both())
    assert value == expected
    sync = maps.find(key, partial=partial)
    assert value == (sync.value if sync is not None else None)


@given(_KEYS, st.booleans())
def test_find_domain_value_async_is_find_domain_async_value(
    spec: str, key: str, parents: bool
) -> None:
    expected, value = _domain_answers(open_maps(spec), key, parents)
    assert value == expected


# The first table's entries in a sqlite: table (a network kind): alone, and before the
# other two tables.
@pytest.fixture(scope="module")
def network_spec(tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("network")
    with sqlite3.connect(root / "t.db") as conn:
        conn.execute("CREATE TABLE m (k TEXT, v TEXT)")
        rows = [("example.com", "one"), (".example.com", "parent"), ("mx.example.net", "three")]
        conn.executemany("INSERT INTO m VALUES (?, ?)", rows)
    conn.close()
    cf = root / "t.cf"
    cf.write_text(sqldata.cf_text(dbpath=str(root / "t.db"), query="SELECT v FROM m WHERE k='%s'"))
    return f"sqlite:{cf}"


@given(_KEYS, st.booleans())
def test_one_network_table_answers_as_the_general_search(
    network_spec: str, spec: str, key: str, partial: bool
) -> None:
    """`find_value_async` of one network table is its own lookup (no coroutine around
    it): the same answers as the general search, and as that table first in a list."""
    alone = open_maps(network_spec)
    listed = open_maps(f"{network_spec}, {spec.split('}, ', 1)[1]}")
    assert alone._only_network is alone.tables[0] and listed._only_network is None

    async def answers() -> tuple[str | None, ...]:
        found = await alone.find_async(key, partial=partial)
        first = await listed.find_async(key, partial=partial)
        return (
            await alone.find_value_async(key, partial=partial),
            await alone._find_value_async(key, partial),
            found.value if found is not None else None,
            first.value if first is not None and first.table == network_spec else None,
        )

    value, general, matched, in_list = asyncio.run(answers())
    assert value == general == matched == in_list


@given(_KEYS, st.booleans())
def test_one_network_table_domain_search_is_the_general_one(
    network_spec: str, key: str, parents: bool
) -> None:
    expected, value = _domain_answers(open_maps(network_spec), key, parents)
    assert value == expected


def test_take_warnings_only_from_network_tables() -> None:
    maps = open_maps("inline:{ a=1 }")
    assert not maps.network
    maps.tables[0].lookup_warnings.append("not a network table's")
    assert maps.take_warnings() == []


def _domain_answers(maps: Maps, key: str, parents: bool) -> tuple[str | None, str | None]:
    """find_domain_async's value and find_domain_value_async's answer for `key`."""

    async def both() -> tuple[str | None, str | None]:
        found = await maps.find_domain_async(key, parent_matches_subdomains=parents)
        value = await maps.find_domain_value_async(key, parent_matches_subdomains=parents)
        return (found.value if found is not None else None), value

    return asyncio.run(both())

"""Tests for tables/maps.py: the value-only searches (`find_value_async`,
`find_domain_value_async`, which the TLS policy asks for every delivery) against the
searches that make a `Match`, and the warnings of network tables."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.tables.maps import open_maps


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
    maps = open_maps(spec)

    async def both() -> tuple[str | None, str | None]:
        found = await maps.find_domain_async(key, parent_matches_subdomains=parents)
        value = await maps.find_domain_value_async(key, parent_matches_subdomains=parents)
        return (found.value if found is not None else None), value

    expected, value = asyncio.run(both())
    assert value == expected


def test_take_warnings_only_from_network_tables() -> None:
    maps = open_maps("inline:{ a=1 }")
    assert not maps.network
    maps.tables[0].lookup_warnings.append("not a network table's")
    assert maps.take_warnings() == []

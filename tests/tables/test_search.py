"""Tests for tables/search.py and tables/maps.py: key search orders and first-match semantics."""

from __future__ import annotations

from pathlib import Path

from mailcarrier.tables import Key, Maps, address_keys, domain_keys, open_maps, open_table


def test_address_keys_full_order() -> None:
    keys = address_keys("user+ext@example.com", recipient_delimiter="+", local=True)
    assert keys == [
        Key("user+ext@example.com", False),
        Key("user@example.com", True, "ext"),
        Key("user+ext", True),
        Key("user", True, "ext"),
        Key("@example.com", True),
    ]


def test_address_keys_remote_domain_skips_localpart_forms() -> None:
    keys = address_keys("user+ext@example.com", recipient_delimiter="+")
    assert [k.text for k in keys] == ["user+ext@example.com", "user@example.com", "@example.com"]


def test_address_keys_without_delimiter_or_domain() -> None:
    assert [k.text for k in address_keys("user+ext@d")] == ["user+ext@d", "@d"]
    assert [k.text for k in address_keys("user-x", recipient_delimiter="+-")] == ["user-x", "user"]
    # A leading delimiter is part of the name.
    assert [k.text for k in address_keys("+list@d", recipient_delimiter="+")] == ["+list@d", "@d"]


def test_domain_keys() -> None:
    assert [k.text for k in domain_keys("a.b.example.com.")] == [
        "a.b.example.com",
        ".b.example.com",
        ".example.com",
        ".com",
    ]
    parent = domain_keys("a.example.com", parent_matches_subdomains=True)
    assert [k.text for k in parent] == ["a.example.com", "example.com", "com"]
    assert [k.partial for k in parent] == [False, True, True]


def test_search_is_key_major(tmp_path: Path) -> None:
    # The second table has the full address, the first only @domain: the full key wins.
    maps = open_maps("inline:{ @example.com=domain }, inline:{ a@example.com=full }")
    match = maps.find_address("a@example.com")
    assert match is not None and (match.value, match.table) == (
        "full",
        "inline:{ a@example.com=full }",
    )


def test_partial_keys_skip_pattern_tables(tmp_path: Path) -> None:
    path = tmp_path / "r"
    path.write_text("/^@example\\.com$/ regexp-saw-partial\n/^x@/ full\n")
    maps = Maps([open_table(f"regexp:{path}")])
    assert maps.find_address("y@example.com") is None
    match = maps.find_address("x@example.com")
    assert match is not None and match.value == "full"


def test_first_match_wins_and_bool() -> None:
    maps = open_maps(["static:one", "static:two"])
    assert maps and maps.find("k") is not None
    assert maps.find("k").value == "one"  # type: ignore[union-attr]
    assert not open_maps("")
    assert open_maps("").find("k") is None


def test_find_domain(tmp_path: Path) -> None:
    maps = open_maps("inline:{ .example.com=sub, example.com=exact }")
    assert maps.find_domain("example.com").value == "exact"  # type: ignore[union-attr]
    assert maps.find_domain("a.example.com").value == "sub"  # type: ignore[union-attr]
    assert maps.find_domain("a.example.org") is None


def test_maps_files_and_warnings(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("bad\n")
    maps = open_maps(f"texthash:{path} static:x")
    assert maps.files() == (path,)
    assert maps.warnings == [f"{path}:1: expected format: key whitespace value"]

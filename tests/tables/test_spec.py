"""Tests for tables/spec.py: type:name syntax and the files behind a table."""

from __future__ import annotations

from pathlib import Path

import pytest

from mailcarrier.tables import TABLE_TYPES, TableSpec, parse_spec, spec_files


def test_parse_spec() -> None:
    spec = parse_spec("hash:/etc/postfix/transport")
    assert (spec.kind, spec.name, str(spec)) == (
        "hash",
        "/etc/postfix/transport",
        "hash:/etc/postfix/transport",
    )
    assert parse_spec("inline:{ a=b }").name == "{ a=b }"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nocolon", "need dictionary_type:dictionary_name"),
        (":x", "need dictionary_type:dictionary_name"),
        ("dbm:/x", "unsupported dictionary type"),
        ("hash:", "empty table name"),
        ("inline:a=b", "inline:{...}"),
        ("unionmap:hash:/x", "unionmap:{...}"),
    ],
)
def test_parse_spec_errors(text: str, message: str) -> None:
    with pytest.raises(
        ValueError, match=message.replace("{", r"\{").replace("}", r"\}").replace(".", r"\.")
    ):
        parse_spec(text)


def test_known_types() -> None:
    assert {
        "inline",
        "static",
        "texthash",
        "hash",
        "btree",
        "lmdb",
        "cdb",
        "regexp",
        "pcre",
        "cidr",
        "unionmap",
        "pipemap",
        "proxy",
        "pgsql",
        "mysql",
        "sqlite",
        "ldap",
        "memcache",
        "socketmap",
        "tcp",
    } == TABLE_TYPES


def test_proxy_and_network_specs(tmp_path: Path) -> None:
    assert parse_spec("proxy:pgsql:/x.cf") == TableSpec("proxy", "pgsql:/x.cf")
    # proxy:proxy:x is proxy:x, as proxymap strips repeated prefixes.
    assert parse_spec("proxy:proxy:hash:/x") == TableSpec("proxy", "hash:/x")
    with pytest.raises(ValueError, match="unsupported dictionary type"):
        parse_spec("proxy:nosuch:/x")
    # The configuration file is watched; a main.cf-style prefix names no file.
    assert spec_files("pgsql:/etc/postfix/x.cf") == (Path("/etc/postfix/x.cf"),)
    assert spec_files("proxy:mysql:./m.cf", tmp_path) == (tmp_path / "m.cf",)
    assert spec_files("pgsql:pgsource") == ()
    assert spec_files("ldap:/etc/postfix/ldap.cf") == (Path("/etc/postfix/ldap.cf"),)
    assert spec_files("memcache:./mc.cf", tmp_path) == (tmp_path / "mc.cf",)
    # socketmap: and tcp: name their server, not a file.
    assert spec_files("socketmap:unix:/run/sockmap:virtual") == ()
    assert spec_files("tcp:127.0.0.1:2000") == ()


def test_spec_files(tmp_path: Path) -> None:
    assert spec_files("hash:/a/b") == (Path("/a/b"), Path("/a/b.db"))
    assert spec_files("btree:/a/b") == (Path("/a/b"), Path("/a/b.db"))
    assert spec_files("lmdb:/a/b") == (Path("/a/b"), Path("/a/b.lmdb"))
    assert spec_files("cdb:/a/b") == (Path("/a/b"), Path("/a/b.cdb"))
    assert spec_files("regexp:rel", tmp_path) == (tmp_path / "rel",)
    assert spec_files("inline:{a=b}") == ()
    assert spec_files("unionmap:{ cidr:/c, static:x, pipemap:{texthash:/t} }") == (
        Path("/c"),
        Path("/t"),
    )

"""Tests for tables/hashdb.py: building and reading indexed hash/lmdb tables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailcarrier.tables import TableError, build_index, open_table
from mailcarrier.tables.hashdb import HashTable, index_path


def _source(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "transport"
    path.write_text(text)
    return path


def test_build_and_lookup(tmp_path: Path) -> None:
    source = _source(tmp_path, "Example.COM smtp:[relay]\nother   x y z\n")
    count, warnings = build_index(source)
    assert (count, warnings) == (2, [])
    assert index_path(source) == tmp_path / "transport.db"
    table = open_table(f"hash:{source}")
    assert table.lookup("example.com") == "smtp:[relay]"
    assert table.lookup("EXAMPLE.com") == "smtp:[relay]"
    assert table.lookup("other") == "x y z"
    assert table.lookup("missing") is None
    assert table.files() == (source, tmp_path / "transport.db")
    assert isinstance(table, HashTable)
    table.close()


def test_malformed_and_duplicate_lines_warn(tmp_path: Path) -> None:
    source = _source(tmp_path, "a 1\njustakey\na 2\n")
    count, warnings = build_index(source)
    assert count == 1
    assert warnings == [
        f"{source}:2: expected format: key whitespace value",
        f'{source}:3: duplicate entry: "a" (keeping the first)',
    ]
    assert open_table(f"hash:{source}").lookup("a") == "1"


def test_rebuild_replaces_atomically(tmp_path: Path) -> None:
    source = _source(tmp_path, "a 1\n")
    build_index(source)
    old = open_table(f"hash:{source}")
    source.write_text("a 2\n")
    build_index(source)
    # A reader that opened the old index keeps a consistent view; a new one sees the new.
    assert old.lookup("a") == "1"
    assert open_table(f"hash:{source}").lookup("a") == "2"
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_source_newer_than_index_warns(tmp_path: Path) -> None:
    source = _source(tmp_path, "a 1\n")
    build_index(source)
    later = index_path(source).stat().st_mtime + 10
    os.utime(source, (later, later))
    table = open_table(f"hash:{source}")
    assert table.warnings == [f"database {source}.db is older than source file {source}"]


def test_missing_index_is_an_error(tmp_path: Path) -> None:
    source = _source(tmp_path, "a 1\n")
    with pytest.raises(TableError, match=r"No such file.*mailcarrier map hash:"):
        open_table(f"hash:{source}")


def test_foreign_index_is_an_error(tmp_path: Path) -> None:
    source = _source(tmp_path, "a 1\n")
    (tmp_path / "transport.db").write_bytes(b"\x00\x06\x15\x61 not sqlite at all" * 100)
    with pytest.raises(TableError, match="not a mailcarrier table index"):
        open_table(f"hash:{source}")


def test_lmdb_alias(tmp_path: Path) -> None:
    source = _source(tmp_path, "k v\n")
    build_index(source, "lmdb")
    assert (tmp_path / "transport.lmdb").exists()
    assert open_table(f"lmdb:{source}").lookup("K") == "v"


def test_non_utf8_bytes_survive(tmp_path: Path) -> None:
    source = tmp_path / "m"
    source.write_bytes(b"caf\xe9 latin1-key\nk \xff\xfe\n")
    assert build_index(source) == (2, [])
    table = open_table(f"hash:{source}")
    assert table.lookup("caf\udce9") == "latin1-key"
    assert table.lookup("k") == "\udcff\udcfe"


def test_old_format_index_is_refused(tmp_path: Path) -> None:
    import sqlite3

    source = _source(tmp_path, "a 1\n")
    conn = sqlite3.connect(tmp_path / "transport.db")
    conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
    conn.execute("INSERT INTO meta VALUES ('format', 'something-else')")
    conn.commit()
    conn.close()
    with pytest.raises(TableError, match="unknown index format"):
        open_table(f"hash:{source}")

"""Tests for tables/indexed.py: Postfix's reader conventions, shared by every indexed format.

A table whose "file" is a dict (`DictTable`) shows key folding, the trailing null byte tried
with and without (and then only the form that found something), the stale index warning
with Postfix's 100 s rule, and the errors: a missing file, the old private format, a
missing Python package.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier.tables.base import TableError
from mailcarrier.tables.indexed import (
    IndexedTable,
    LookupOptions,
    Package,
    available,
    decode,
    encode,
    fold_bytes,
    fold_key,
    read_head,
    require,
)


class DictTable(IndexedTable):
    kind = "hash"
    suffix = ".db"
    stored: dict[bytes, bytes] = {}

    def _open(self) -> None:
        read_head(self.index, self.spec)
        self.asked: list[bytes] = []

    def _get(self, key: bytes) -> bytes | None:
        self.asked.append(key)
        return self.stored.get(key)

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        yield from self.stored.items()

    def close(self) -> None:
        pass


def _table(
    tmp_path: Path, stored: dict[bytes, bytes], options: LookupOptions | None = None
) -> DictTable:
    source = tmp_path / "map"
    source.write_text("")
    (tmp_path / "map.db").write_bytes(b"index")
    DictTable.stored = stored
    return DictTable(f"hash:{source}", source, options)


@pytest.mark.parametrize(
    ("key", "utf8", "folded"),
    [
        ("User@Example.COM", True, "user@example.com"),
        ("ÉCOLE@Example.fr", True, "école@example.fr"),
        ("Straße", True, "strasse"),  # Unicode case folding, as ICU's in Postfix
        ("ÉCOLE@Example.fr", False, "École@example.fr"),  # ASCII only, as Postfix without UTF-8
        ("caf\udce9", True, "caf\udce9"),  # a byte that was not UTF-8 stays as it was
    ],
)
def test_fold_key(key: str, utf8: bool, folded: str) -> None:
    assert fold_key(key, utf8=utf8) == folded


def test_fold_bytes() -> None:
    assert fold_bytes(b"A@B") == b"a@b"
    assert fold_bytes("STRAẞE".encode()) == b"strasse"
    assert fold_bytes(b"CAF\xc3\x89", utf8=False) == b"caf\xc3\x89"


def test_encode_and_decode() -> None:
    assert encode("caf\udce9") == b"caf\xe9"
    assert encode("\ud800") is None  # no stored key can be this
    assert decode(b"value\0") == "value"
    assert decode(b"va\0lue") == "va"  # a C string ends at its first null byte
    assert decode(b"caf\xe9") == "caf\udce9"


def test_null_byte_tried_first_then_only_the_form_that_worked(tmp_path: Path) -> None:
    table = _table(tmp_path, {b"a": b"1", b"b": b"2"})
    assert table.lookup("A") == "1"
    assert table.asked == [b"a\0", b"a"]
    table.asked.clear()
    assert table.lookup("missing") is None
    assert table.asked == [b"missing"]  # the form with the null byte is not tried again


def test_with_null_byte(tmp_path: Path) -> None:
    table = _table(tmp_path, {b"a\0": b"1\0"})
    assert table.lookup("a") == "1"
    assert table.lookup("nothing") is None
    assert table.asked == [b"a\0", b"nothing\0"]


@pytest.mark.parametrize(
    ("options", "found"),
    [
        (LookupOptions(try1null=True, try0null=False), "with"),
        (LookupOptions(try1null=False, try0null=True), "without"),
    ],
)
def test_one_form_only(tmp_path: Path, options: LookupOptions, found: str) -> None:
    table = _table(tmp_path, {b"k\0": b"with\0", b"k": b"without"}, options)
    assert table.lookup("k") == found


def test_no_folding(tmp_path: Path) -> None:
    table = _table(tmp_path, {b"MiXed": b"1"}, LookupOptions(fold=False))
    assert table.lookup("MiXed") == "1"
    assert table.lookup("mixed") is None


def test_a_file_folded_without_utf8_is_read_too(tmp_path: Path) -> None:
    # smtputf8_enable = no: postmap folded only the ASCII letters.
    table = _table(tmp_path, {"École@example.fr\0".encode(): b"ascii-folded\0"})
    assert table.lookup("ÉCOLE@EXAMPLE.FR") == "ascii-folded"
    assert table.asked[0] == "école@example.fr\0".encode()  # Unicode folding first


def test_values_that_are_not_utf8(tmp_path: Path) -> None:
    table = _table(tmp_path, {b"k": b"caf\xe9"})
    assert table.lookup("k") == "caf\udce9"


def _age(path: Path, seconds: float) -> None:
    when = time.time() - seconds
    os.utime(path, (when, when))


def test_stale_index_warns(tmp_path: Path) -> None:
    source = tmp_path / "map"
    source.write_text("")
    (tmp_path / "map.db").write_bytes(b"index")
    _age(tmp_path / "map.db", 1000)
    _age(source, 500)
    table = DictTable(f"hash:{source}", source)
    assert table.warnings == [f"database {source}.db is older than source file {source}"]
    assert table.files() == (source, tmp_path / "map.db")


def test_a_source_changed_within_100_seconds_does_not_warn(tmp_path: Path) -> None:
    source = tmp_path / "map"
    source.write_text("")
    (tmp_path / "map.db").write_bytes(b"index")
    _age(tmp_path / "map.db", 1000)
    _age(source, 50)  # postmap may be running right now
    assert DictTable(f"hash:{source}", source).warnings == []


def test_no_source_beside_the_index(tmp_path: Path) -> None:
    (tmp_path / "map.db").write_bytes(b"index")
    table = DictTable(f"hash:{tmp_path / 'map'}", tmp_path / "map")
    assert table.warnings == []


def test_missing_index(tmp_path: Path) -> None:
    with pytest.raises(TableError) as caught:
        DictTable(f"hash:{tmp_path / 'map'}", tmp_path / "map")
    assert str(caught.value) == (
        f"open database {tmp_path}/map.db: No such file or directory "
        f'(run "mailcarrier map hash:{tmp_path}/map")'
    )


def test_the_old_private_format_says_to_rebuild(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "map.db")
    conn.execute("CREATE TABLE map (key BLOB PRIMARY KEY, value BLOB)")
    conn.commit()
    conn.close()
    with pytest.raises(TableError) as caught:
        DictTable(f"hash:{tmp_path / 'map'}", tmp_path / "map")
    assert str(caught.value) == (
        f"{tmp_path}/map.db: a table in the private format of older mailcarrier versions, "
        "which neither Postfix nor this version reads: rebuild it with "
        f'"mailcarrier map hash:{tmp_path}/map"'
    )
    assert "\n" not in str(caught.value)


def test_a_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "somedb", None)  # import somedb fails
    package = Package("somedb", "some", "needs libsome-dev")
    assert not available(package)
    with pytest.raises(TableError) as caught:
        require(package, "some:/etc/postfix/x")
    assert str(caught.value) == (
        "some:/etc/postfix/x: this table type needs the Python package somedb: "
        "pip install 'mailcarrier[some]' (needs libsome-dev)"
    )


def test_reading_error(tmp_path: Path) -> None:
    table = _table(tmp_path, {})
    assert str(table.reading_error("bad page")) == (
        f"hash:{tmp_path}/map: error reading {tmp_path}/map.db: bad page"
    )

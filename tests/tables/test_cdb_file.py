"""Tests for tables/cdb_file.py: cdb: files (tinycdb's format, which is djb's), read and
written.

The file layout is checked against the format itself (the header's 256 table pointers, the
records as ``klen dlen key data``, keys without a null byte by default), independently of
the library; a file that is not cdb or is cut short is refused when it is opened.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

import pytest

from mailcarrier.tables import TableError, build_index, open_table
from mailcarrier.tables.cdb_file import CdbTable
from tests.support.tablefiles import damage_in_a_child, need_library


@pytest.fixture(autouse=True)
def _library() -> None:
    need_library("cdb")


def _built(tmp_path: Path, entries: int = 3) -> Path:
    source = tmp_path / "map"
    source.write_text("".join(f"Key{i} value {i}\n" for i in range(entries)))
    assert build_index(source, "cdb") == (entries, [])
    return source


def _djb_hash(key: bytes) -> int:
    h = 5381
    for byte in key:
        h = ((h << 5) + h) ^ byte
        h &= 0xFFFFFFFF
    return h


def test_the_file_is_djbs_format(tmp_path: Path) -> None:
    _built(tmp_path, entries=1)
    data = (tmp_path / "map.cdb").read_bytes()
    # The first record follows the 2048-byte header: lengths, then key and value, no null.
    assert data[2048 : 2048 + 8 + 4 + 7] == struct.pack("<II", 4, 7) + b"key0value 0"
    h = _djb_hash(b"key0")
    position, slots = struct.unpack_from("<II", data, (h % 256) * 8)
    assert slots >= 1
    found = [struct.unpack_from("<II", data, position + 8 * i) for i in range(slots)]
    assert (h, 2048) in found


def test_written_and_read(tmp_path: Path) -> None:
    source = _built(tmp_path)
    table = open_table(f"cdb:{source}")
    assert isinstance(table, CdbTable)
    assert table.lookup("KEY2") == "value 2"
    assert table.lookup("key3") is None
    assert table.lookup("") is None
    assert list(table.items()) == [(f"key{i}".encode(), f"value {i}".encode()) for i in range(3)]
    table.close()


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "shorter than its 2048-byte header"),
        (b"x" * 100, "shorter than its 2048-byte header"),
        (struct.pack("<II", 4096, 10) + b"\0" * 2040, "or cut short (a hash table at 4096"),
        (struct.pack("<II", 16, 1) + b"\0" * 2040, "or cut short (a hash table at 16 "),
    ],
    ids=["empty", "short", "table-past-the-end", "table-in-the-header"],
)
def test_not_cdb(tmp_path: Path, content: bytes, reason: str) -> None:
    (tmp_path / "map.cdb").write_bytes(content)
    with pytest.raises(TableError) as caught:
        open_table(f"cdb:{tmp_path / 'map'}")
    assert str(caught.value).startswith(f"{tmp_path}/map.cdb: not a cdb file")
    assert reason in str(caught.value)


def test_a_file_cut_short_is_refused(tmp_path: Path) -> None:
    source = _built(tmp_path, entries=2000)
    index = tmp_path / "map.cdb"
    data = index.read_bytes()
    index.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(TableError, match=f"^{index}: not a cdb file, or cut short "):
        open_table(f"cdb:{source}")


def test_a_missing_library_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _built(tmp_path)
    monkeypatch.setitem(sys.modules, "cdbx", None)
    with pytest.raises(TableError) as caught:
        build_index(source, "cdb")
    assert str(caught.value) == (
        f"cdb:{source}: this table type needs the Python package cdbx: "
        "pip install 'mailcarrier[cdb]'"
    )


def test_randomly_damaged_files_never_kill_the_process(tmp_path: Path) -> None:
    damage_in_a_child("cdb", tmp_path, range(1, 25))

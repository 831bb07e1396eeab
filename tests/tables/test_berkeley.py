"""Tests for tables/berkeley.py: hash: and btree: Berkeley DB files, read and written.

Files are written by `write` (through build_index) and by libdb directly; damaged files
(another format, the other access method, cut short mid-page or at a page boundary) are
refused with one line when opened; a lookup waits while another process holds the
exclusive lock that a postmap rebuilding the file in place holds.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from mailcarrier.tables import TableError, build_index, open_table
from mailcarrier.tables.berkeley import BerkeleyTable, write
from tests.support.tablefiles import damage_in_a_child, need_library


@pytest.fixture(autouse=True)
def _library() -> None:
    need_library("hash")


def _built(tmp_path: Path, kind: str, entries: int = 3) -> Path:
    source = tmp_path / "map"
    source.write_text("".join(f"Key{i} value {i}\n" for i in range(entries)))
    assert build_index(source, kind) == (entries, [])
    return source


@pytest.mark.parametrize("kind", ["hash", "btree"])
def test_written_and_read(tmp_path: Path, kind: str) -> None:
    source = _built(tmp_path, kind)
    table = open_table(f"{kind}:{source}")
    assert isinstance(table, BerkeleyTable)
    assert (table.kind, table.index) == (kind, tmp_path / "map.db")
    assert table.lookup("KEY1") == "value 1"
    assert table.lookup("key9") is None
    assert sorted(table.items()) == [
        (f"key{i}\0".encode(), f"value {i}\0".encode()) for i in range(3)
    ]
    table.close()


def test_raw_file_as_postmap_writes_it(tmp_path: Path) -> None:
    from berkeleydb import db

    write(tmp_path / "x.db", [(b"k\0", b"v\0")], "hash", "hash:x")
    handle = db.DB()
    handle.open(str(tmp_path / "x.db"), None, db.DB_UNKNOWN, db.DB_RDONLY)
    assert handle.get_type() == db.DB_HASH
    assert handle.get(b"k\0") == b"v\0"
    handle.close()


def test_the_other_access_method_is_refused(tmp_path: Path) -> None:
    source = _built(tmp_path, "hash")
    with pytest.raises(TableError) as caught:
        open_table(f"btree:{source}")
    assert str(caught.value) == (
        f"{source}.db: a Berkeley DB hash file, not a btree file (name the table hash:{source})"
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not a Berkeley DB file"),
        (b"\x00" * 8192, "not a Berkeley DB file"),
        (b"LMDB? no, just text " * 100, "not a Berkeley DB file"),
    ],
)
def test_not_berkeley_db(tmp_path: Path, content: bytes, message: str) -> None:
    (tmp_path / "map.db").write_bytes(content)
    with pytest.raises(TableError, match=f"^{tmp_path}/map.db: {message}$"):
        open_table(f"hash:{tmp_path / 'map'}")


@pytest.mark.parametrize("kind", ["hash", "btree"])
@pytest.mark.parametrize("keep", [0.5, "page"])
def test_a_file_cut_short_is_refused(tmp_path: Path, kind: str, keep: float | str) -> None:
    source = _built(tmp_path, kind, entries=3000)
    index = tmp_path / "map.db"
    data = index.read_bytes()
    size = 16384 if keep == "page" else int(len(data) * float(keep))  # mid-page or not
    index.write_bytes(data[:size])
    with pytest.raises(TableError) as caught:
        open_table(f"{kind}:{source}")
    assert str(caught.value).startswith(f"{index}: ")
    assert "\n" not in str(caught.value)


def test_a_lookup_waits_for_an_exclusive_lock(tmp_path: Path) -> None:
    source = _built(tmp_path, "hash")
    table = open_table(f"hash:{source}")
    holder = os.open(tmp_path / "map.db", os.O_RDONLY)
    fcntl.flock(holder, fcntl.LOCK_EX)  # as postmap while it rebuilds the file in place
    answers: list[str | None] = []
    asker = threading.Thread(target=lambda: answers.append(table.lookup("key2")))
    asker.start()
    asker.join(0.3)
    assert asker.is_alive() and answers == []  # still waiting for the lock
    fcntl.flock(holder, fcntl.LOCK_UN)
    os.close(holder)
    asker.join(30)
    assert answers == ["value 2"]


def test_a_missing_library_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _built(tmp_path, "hash")
    monkeypatch.setitem(__import__("sys").modules, "berkeleydb", None)
    for action in (lambda: open_table(f"hash:{source}"), lambda: build_index(source, "btree")):
        with pytest.raises(TableError) as caught:
            action()
        assert "\n" not in str(caught.value)
        assert "needs the Python package berkeleydb: pip install 'mailcarrier[berkeleydb]'" in str(
            caught.value
        )


def test_randomly_damaged_files_never_kill_the_process(tmp_path: Path) -> None:
    damage_in_a_child("hash", tmp_path, range(1, 25))

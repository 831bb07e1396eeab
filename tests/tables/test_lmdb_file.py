"""Tests for tables/lmdb_file.py: lmdb: files, read and written as Postfix does.

The file is the database itself, with no lock file beside it; a file cut short is refused
before LMDB maps it (LMDB would die of SIGBUS reading past the end: this test suite would
crash, not fail); a map that turns out too small is grown and the file written again; a
lookup waits while another process holds the exclusive fcntl lock postmap takes.
"""

from __future__ import annotations

import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from mailcarrier.tables import TableError, build_index, lmdb_file, open_table
from mailcarrier.tables.lmdb_file import LmdbTable
from tests.support.tablefiles import damage_in_a_child, need_library


@pytest.fixture(autouse=True)
def _library() -> None:
    need_library("lmdb")


def _built(tmp_path: Path, entries: int = 3) -> Path:
    source = tmp_path / "map"
    source.write_text("".join(f"Key{i} value {i}\n" for i in range(entries)))
    assert build_index(source, "lmdb") == (entries, [])
    return source


def test_written_and_read(tmp_path: Path) -> None:
    source = _built(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map", "map.lmdb"]  # no lock file
    table = open_table(f"lmdb:{source}")
    assert isinstance(table, LmdbTable)
    assert table.lookup("KEY0") == "value 0"
    assert table.lookup("key3") is None
    assert list(table.items()) == [
        (f"key{i}\0".encode(), f"value {i}\0".encode()) for i in range(3)
    ]
    table.close()


def test_keys_lmdb_cannot_hold_are_not_found(tmp_path: Path) -> None:
    table = open_table(f"lmdb:{_built(tmp_path)}")
    assert table.lookup("") is None
    assert table.lookup("k" * 600) is None  # longer than LMDB's largest key


def test_a_full_map_is_grown(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lmdb_file, "_map_size", lambda items: 64 * 1024)
    source = _built(tmp_path, entries=5000)
    assert open_table(f"lmdb:{source}").lookup("key4999") == "value 4999"


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00" * 8192, b"not an lmdb file at all " * 400],
    ids=["empty", "zeros", "text"],
)
def test_not_lmdb(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "map.lmdb").write_bytes(content)
    with pytest.raises(TableError, match=f"^{tmp_path}/map.lmdb: not an LMDB file$"):
        open_table(f"lmdb:{tmp_path / 'map'}")


def test_a_file_cut_short_is_refused_not_mapped(tmp_path: Path) -> None:
    source = _built(tmp_path, entries=3000)
    index = tmp_path / "map.lmdb"
    data = index.read_bytes()
    index.write_bytes(data[: len(data) // 2])
    done = _open_in_a_child(f"lmdb:{source}")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (
        f"{index}: the file is cut short ({len(data) // 2} bytes; its header says {len(data)})\n"
    )


def _open_in_a_child(spec: str) -> subprocess.CompletedProcess[str]:
    """Open the table in another process: if LMDB mapped a bad page, SIGBUS kills it."""
    code = (
        "from mailcarrier.tables import open_table, TableError\n"
        f"try: open_table({spec!r}).lookup('key1')\n"
        "except TableError as exc: print(exc)\n"
    )
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )


def test_a_damaged_page_is_refused_not_mapped(tmp_path: Path) -> None:
    source = _built(tmp_path, entries=3000)
    index = tmp_path / "map.lmdb"
    data = bytearray(index.read_bytes())
    psize = 4096
    newest = max((0, psize), key=lambda at: struct.unpack_from("<Q", data, at + 144)[0])
    # The main database's root page, in the newest meta page, far past the end of the file.
    struct.pack_into("<Q", data, newest + 128, len(data) // psize + 1000)
    index.write_bytes(bytes(data))
    done = _open_in_a_child(f"lmdb:{source}")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"{index}: a damaged LMDB file: ")
    assert done.stdout.count("\n") == 1


def test_randomly_damaged_files_never_kill_the_process(tmp_path: Path) -> None:
    # Without the verifier, py-lmdb 3.0.0 (LMDB 0.9.36) dies of SIGBUS on seeds 40 and 140.
    refused = damage_in_a_child("lmdb", tmp_path, (*range(1, 9), 40, 47, 95, 140))
    assert refused >= {40, 140}


def test_a_lookup_waits_for_an_exclusive_lock(tmp_path: Path) -> None:
    source = _built(tmp_path)
    table = open_table(f"lmdb:{source}")
    # fcntl locks belong to a process: the holder must be another one.
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, sys; f = open(sys.argv[1], 'r+b'); fcntl.lockf(f, fcntl.LOCK_EX); "
            "print('locked', flush=True); sys.stdin.read()",
            str(tmp_path / "map.lmdb"),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "locked\n"
        answers: list[str | None] = []
        asker = threading.Thread(target=lambda: answers.append(table.lookup("key1")))
        asker.start()
        asker.join(0.3)
        assert asker.is_alive() and answers == []
    finally:
        assert holder.stdin is not None
        holder.stdin.close()
        holder.wait(30)
    asker.join(30)
    assert answers == ["value 1"]


def test_a_missing_library_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = _built(tmp_path)
    monkeypatch.setitem(sys.modules, "lmdb", None)
    with pytest.raises(TableError) as caught:
        open_table(f"lmdb:{source}")
    assert str(caught.value) == (
        f"lmdb:{source}: this table type needs the Python package lmdb: "
        "pip install 'mailcarrier[lmdb]'"
    )

"""Tests for tables/build.py: building an indexed file as postmap does.

Folding and its options, the null byte per type, duplicates (first kept with a warning,
-w, -r), postmap's warnings in file order, the permissions and owner postmap gives the
file, and the atomic replacement: a reader that has the old file open keeps it whole, and
a failed build leaves the old file and no temporary file.
"""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from mailcarrier.durable import AtomicFile
from mailcarrier.tables import BuildOptions, TableError, build_index, open_table
from mailcarrier.tables.build import Duplicates
from mailcarrier.tables.formats import FORMATS
from mailcarrier.tables.indexed import IndexedTable
from tests.support.tablefiles import KINDS, need_library


def _source(tmp_path: Path, data: bytes) -> Path:
    source = tmp_path / "map"
    source.write_bytes(data)
    return source


def _raw(source: Path, kind: str) -> list[tuple[bytes, bytes]]:
    table = open_table(f"{kind}:{source}")
    assert isinstance(table, IndexedTable)
    return sorted(table.items())


@pytest.mark.parametrize("kind", KINDS)
def test_folding_and_null_bytes_per_type(tmp_path: Path, kind: str) -> None:
    need_library(kind)
    source = _source(tmp_path, "Alice@Example.COM a\nSTRASSE x\nÉcole é\n".encode())
    assert build_index(source, kind) == (3, [])
    tail = b"" if kind == "cdb" else b"\0"  # postmap's default for each type
    assert _raw(source, kind) == sorted(
        [
            (b"alice@example.com" + tail, b"a" + tail),
            (b"strasse" + tail, b"x" + tail),
            ("école".encode() + tail, "é".encode() + tail),
        ]
    )


@pytest.mark.parametrize(
    ("options", "keys"),
    [
        (BuildOptions(nulls=True), [b"k\0"]),
        (BuildOptions(nulls=False), [b"k"]),
        (BuildOptions(fold=False), [b"K\0"]),
    ],
)
def test_options(tmp_path: Path, options: BuildOptions, keys: list[bytes]) -> None:
    need_library("lmdb")
    source = _source(tmp_path, b"K v\n")
    build_index(source, "lmdb", options)
    assert [key for key, _ in _raw(source, "lmdb")] == keys


def test_without_utf8_latin1_is_kept_and_folded_as_ascii(tmp_path: Path) -> None:
    need_library("cdb")
    source = _source(tmp_path, b"CAF\xc9 latin\n\xc3\x89T\xc3\x89 utf\n")
    assert build_index(source, "cdb", BuildOptions(utf8=False)) == (2, [])
    assert _raw(source, "cdb") == [(b"caf\xc9", b"latin"), (b"\xc3\x89t\xc3\x89", b"utf")]
    # Read back without UTF-8 as well (map -u), or with it: the ASCII-only fold is tried too.
    assert open_table(f"cdb:{source}").lookup("ÉTÉ") == "utf"


@pytest.mark.parametrize(
    ("duplicates", "value", "warned"),
    [("warn", "first", True), ("ignore", "first", False), ("replace", "second", False)],
)
def test_duplicates(tmp_path: Path, duplicates: Duplicates, value: str, warned: bool) -> None:
    need_library("hash")
    source = _source(tmp_path, b"Key first\nkey second\n")
    count, warnings = build_index(source, "hash", BuildOptions(duplicates=duplicates))
    assert count == 1
    assert warnings == ([f'{source}.db: duplicate entry: "key"'] if warned else [])
    assert open_table(f"hash:{source}").lookup("key") == value


@pytest.mark.parametrize("kind", KINDS)
def test_duplicate_warnings_name_the_table_as_postmap(tmp_path: Path, kind: str) -> None:
    need_library(kind)
    source = _source(tmp_path, b"a 1\nA 2\n")
    name = {"hash": f"{source}.db", "btree": f"{source}.db", "lmdb": f"lmdb:{source}"}
    assert build_index(source, kind)[1] == [f'{name.get(kind, str(source))}: duplicate entry: "a"']


def test_warnings_in_file_order(tmp_path: Path) -> None:
    need_library("cdb")
    source = _source(tmp_path, b"a 1\nbad\na 2\nz: y\n")
    assert build_index(source, "cdb")[1] == [
        f"{source}, line 2: expected format: key whitespace value",
        f'{source}: duplicate entry: "a"',
        f'{source}, line 4: record is in "key: value" format; is this an alias file?',
    ]


@pytest.mark.parametrize(
    ("source_mode", "keep", "mode"),
    [(0o644, True, 0o644), (0o640, True, 0o640), (0o600, True, 0o600), (0o600, False, 0o644)],
)
def test_permissions_follow_the_source(
    tmp_path: Path, source_mode: int, keep: bool, mode: int
) -> None:
    need_library("lmdb")
    source = _source(tmp_path, b"k v\n")
    source.chmod(source_mode)
    build_index(source, "lmdb", BuildOptions(keep_permissions=keep))
    assert stat.S_IMODE((tmp_path / "map.lmdb").stat().st_mode) == mode


@pytest.mark.skipif(os.geteuid() != 0, reason="only root gives files away")
@pytest.mark.parametrize(("as_owner", "owned"), [(True, True), (False, False)])
def test_root_gives_the_file_the_sources_owner(tmp_path: Path, as_owner: bool, owned: bool) -> None:
    need_library("cdb")
    source = _source(tmp_path, b"k v\n")
    os.chown(source, 65534, 65534)
    build_index(source, "cdb", BuildOptions(as_owner=as_owner))
    st = (tmp_path / "map.cdb").stat()
    assert ((st.st_uid, st.st_gid) == (65534, 65534)) is owned


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_root_owned_source_in_a_directory_owned_by_another_user_warns(tmp_path: Path) -> None:
    need_library("cdb")
    directory = tmp_path / "d"
    directory.mkdir()
    os.chown(directory, 65534, 65534)
    source = _source(directory, b"k v\n")
    (warning,) = build_index(source, "cdb")[1]
    assert warning == (
        f"Creating root-owned database file(s) {source}.* in non-root-owned directory "
        f"{directory}. Files {source}, {source}.*, and directory {directory} should have the "
        "same owner. Please fix ownership to avoid a privilege-escalation attack."
    )


@pytest.mark.parametrize("kind", KINDS)
def test_a_reader_of_the_old_file_keeps_it_whole(tmp_path: Path, kind: str) -> None:
    need_library(kind)
    source = _source(tmp_path, b"a 1\n")
    build_index(source, kind)
    old = open_table(f"{kind}:{source}")
    source.write_bytes(b"a 2\nb 3\n")
    build_index(source, kind)
    assert (old.lookup("a"), old.lookup("b")) == ("1", None)
    new = open_table(f"{kind}:{source}")
    assert (new.lookup("a"), new.lookup("b")) == ("2", "3")
    index = FORMATS[kind].index(source)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["map", index.name])


def test_a_failed_build_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_library("hash")
    source = _source(tmp_path, b"a 1\n")
    build_index(source, "hash")
    before = (tmp_path / "map.db").read_bytes()

    def broken(out: AtomicFile, items: object, spec: str) -> None:
        out.write(b"half a file")
        raise TableError(f"{spec}: error writing {out.path}: disk trouble")

    monkeypatch.setitem(FORMATS, "hash", replace(FORMATS["hash"], writer=broken))
    source.write_bytes(b"a 2\n")
    with pytest.raises(TableError, match="disk trouble"):
        build_index(source, "hash")
    assert (tmp_path / "map.db").read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map", "map.db"]


def test_types_that_are_not_built(tmp_path: Path) -> None:
    with pytest.raises(TableError, match="cannot build regexp tables: they are read directly"):
        build_index(tmp_path / "x", "regexp")


def test_missing_source(tmp_path: Path) -> None:
    need_library("cdb")
    with pytest.raises(TableError, match=f"^open {tmp_path}/nothing: No such file or directory$"):
        build_index(tmp_path / "nothing", "cdb")

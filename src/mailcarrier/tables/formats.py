"""The indexed table formats by type name: ``hash``, ``btree``, ``lmdb``, ``cdb``.

One `Format` per type says where its file is (the suffix postmap uses), which Python package
reads and writes it, whether postmap stores keys and values with a trailing null byte by
default (Berkeley DB and LMDB: yes, on Linux; cdb: no), how postmap names the table in its
duplicate-entry warning, and how to open and fill a file. `open_indexed` is what registry.py
calls for these types; build.py (``mailcarrier map``) writes them. The formats themselves
are berkeley.py, lmdb_file.py and cdb_file.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailcarrier.durable import AtomicFile
from mailcarrier.tables import berkeley, cdb_file, lmdb_file
from mailcarrier.tables.base import TableError
from mailcarrier.tables.indexed import IndexedTable, LookupOptions, Package, index_path
from mailcarrier.tables.spec import INDEXED

Items = Sequence[tuple[bytes, bytes]]
Opener = Callable[[str, Path, LookupOptions | None], IndexedTable]
Writer = Callable[[AtomicFile, Items, str], None]


@dataclass(frozen=True, slots=True)
class Format:
    kind: str
    package: Package
    null_by_default: bool
    opener: Opener
    writer: Writer
    dict_name: Callable[[Path], str]  # the table's name in postmap's duplicate warnings

    def index(self, source: Path) -> Path:
        return index_path(source, INDEXED[self.kind])


def _berkeley(kind: str) -> Format:
    def opener(spec: str, source: Path, options: LookupOptions | None) -> IndexedTable:
        return berkeley.BerkeleyTable(spec, source, kind, options)

    def writer(out: AtomicFile, items: Items, spec: str) -> None:
        berkeley.write(out.path, items, kind, spec)

    return Format(kind, berkeley.PACKAGE, True, opener, writer, lambda s: f"{s}.db")


def _write_lmdb(out: AtomicFile, items: Items, spec: str) -> None:
    lmdb_file.write(out.path, items, spec)


def _write_cdb(out: AtomicFile, items: Items, spec: str) -> None:
    cdb_file.write(out.file, items, spec)


FORMATS: Final = {
    "hash": _berkeley("hash"),
    "btree": _berkeley("btree"),
    "lmdb": Format(
        "lmdb", lmdb_file.PACKAGE, True, lmdb_file.LmdbTable, _write_lmdb, lambda s: f"lmdb:{s}"
    ),
    "cdb": Format("cdb", cdb_file.PACKAGE, False, cdb_file.CdbTable, _write_cdb, str),
}


def open_indexed(
    spec: str, source: Path, kind: str, options: LookupOptions | None = None
) -> IndexedTable:
    try:
        found = FORMATS[kind]
    except KeyError:
        raise TableError(f'unsupported dictionary type: "{kind}"') from None
    return found.opener(spec, source, options)

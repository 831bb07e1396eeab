"""``cdb:/path``: a constant database (``/path.cdb``) as Postfix's postmap makes it (postfix-cdb).

Debian's postfix-cdb uses tinycdb, whose files are D. J. Bernstein's cdb format: 2048 bytes
of 256 (position, slot count) pairs, the records, then the 256 hash tables. mailcarrier
reads and writes it with the ``cdbx`` Python package (the ``cdb`` extra), a maintained
implementation of that format. A cdb file never changes once written (postmap writes a new
one and renames it), so no reader locks it, as in util/dict_cdb.c. `CdbTable` checks the
header first (every hash table inside the file), so a truncated file is refused when it is
opened instead of failing a lookup later; `write` fills a new file (build.py publishes it).
Key folding, the trailing null byte (which cdb files have not, by default) and the stale
index warning are indexed.py's.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, BinaryIO, Final

from mailcarrier.tables.base import TableError
from mailcarrier.tables.indexed import IndexedTable, Package, read_head, require

PACKAGE: Final = Package("cdbx", "cdb")
_HEADER: Final = 2048  # 256 x (table position, slot count), little-endian 32-bit each
_SLOT: Final = 8


def _library(spec: str) -> Any:
    return require(PACKAGE, spec)


def check_header(index: Path, head: bytes, length: int) -> None:
    """Refuse a file too short for its header or whose hash tables lie past its end."""
    if length < _HEADER or len(head) < _HEADER:
        raise TableError(f"{index}: not a cdb file (shorter than its {_HEADER}-byte header)")
    for position, slots in struct.iter_unpack("<II", head[:_HEADER]):
        if slots and (position < _HEADER or position + slots * _SLOT > length):
            raise TableError(
                f"{index}: not a cdb file, or cut short (a hash table at {position} with "
                f"{slots} slots, in {length} bytes)"
            )


class CdbTable(IndexedTable):
    kind = "cdb"
    suffix = ".cdb"

    def _open(self) -> None:
        cdbx = _library(self.spec)
        head, length = read_head(self.index, self.spec)
        check_header(self.index, head, length)
        try:
            self._cdb = cdbx.CDB(str(self.index))
        except OSError as exc:
            raise TableError(f"open database {self.index}: {exc.strerror or exc}") from None

    def _get(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._cdb.get(key)
        except OSError as exc:
            raise self.reading_error(str(exc)) from None
        return value

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        try:
            yield from self._cdb.items(all=True)
        except OSError as exc:
            raise self.reading_error(str(exc)) from None

    def close(self) -> None:
        self._cdb.close()


def write(out: BinaryIO, items: Iterable[tuple[bytes, bytes]], spec: str) -> None:
    """Write `items` as a cdb file to `out` (a new, empty file; build.py publishes it)."""
    cdbx = _library(spec)
    maker = cdbx.CDB.make(out)
    try:
        for key, value in items:
            maker.add(key, value)
        maker.commit().close()
    except OSError as exc:
        raise TableError(f"{spec}: error writing {out.name}: {exc.strerror or exc}") from None

"""``hash:/path`` and ``btree:/path``: Berkeley DB files (``/path.db``) as Postfix makes them.

Debian's Postfix builds these with libdb5.3 (util/dict_db.c); so does mailcarrier, through the
``berkeleydb`` Python package (the ``berkeleydb`` extra), so each reads the other's files.
`BerkeleyTable` opens a file read-only after checking its first page (a Berkeley DB file of
the named access method, as long as its meta page says: a file cut short at a page boundary
is refused here rather than read as a table with holes) and takes a shared flock(2) around
each lookup, as Postfix's readers do while a postmap may rebuild the file in place. `write`
fills a new file (build.py publishes it). Key folding, the trailing null byte and the stale
index warning are indexed.py's.
"""

from __future__ import annotations

import fcntl
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, Final

from mailcarrier.tables.base import TableError
from mailcarrier.tables.indexed import (
    IndexedTable,
    LookupOptions,
    Package,
    read_head,
    require,
)

PACKAGE: Final = Package(
    "berkeleydb", "berkeleydb", "it builds against Berkeley DB: Debian package libdb5.3-dev"
)
# The magic numbers of the meta page (db/db_page.h), by access method.
_MAGIC: Final = {0x061561: "hash", 0x053162: "btree"}
# Postfix's hints for a file being built: hash table size, cache (berkeley_db_create_buffer_size).
HASH_NELEM: Final = 4096
_CREATE_CACHE: Final = 16 * 1024 * 1024


def _library(spec: str) -> Any:
    require(PACKAGE, spec)
    from berkeleydb import db

    return db


def check_header(index: Path, head: bytes, length: int, kind: str) -> None:
    """Refuse what libdb would misread: another format, the other access method, a file
    shorter than its meta page says."""
    for order in ("<", ">"):  # a file is in the byte order of the machine that wrote it
        if len(head) >= 36 and (magic := struct.unpack_from(order + "I", head, 12)[0]) in _MAGIC:
            break
    else:
        raise TableError(f"{index}: not a Berkeley DB file")
    found = _MAGIC[magic]
    if found != kind:
        source = index.with_name(index.name[: -len(".db")])
        raise TableError(
            f"{index}: a Berkeley DB {found} file, not a {kind} file (name the table "
            f"{found}:{source})"
        )
    pagesize, last_pgno = (
        struct.unpack_from(order + "I", head, 20)[0],
        struct.unpack_from(order + "I", head, 32)[0],
    )
    if pagesize < 512 or length < (last_pgno + 1) * pagesize:
        raise TableError(
            f"{index}: the file is cut short ({length} bytes; its header says "
            f"{(last_pgno + 1) * pagesize})"
        )


class BerkeleyTable(IndexedTable):
    suffix = ".db"

    def __init__(
        self, spec: str, source: Path, kind: str = "hash", options: LookupOptions | None = None
    ) -> None:
        self.kind = kind
        super().__init__(spec, source, options)

    def _open(self) -> None:
        db = _library(self.spec)
        head, length = read_head(self.index, self.spec)
        check_header(self.index, head, length, self.kind)
        handle = db.DB()
        method = db.DB_HASH if self.kind == "hash" else db.DB_BTREE
        try:
            handle.open(str(self.index), None, method, db.DB_RDONLY)
            self._fd: int = handle.fd()
        except db.DBError as exc:
            handle.close()
            raise TableError(f"open database {self.index}: {detail(exc)}") from None
        self._db = handle
        self._errors: type[Exception] = db.DBError

    def _lock(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_SH)

    def _unlock(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)

    def _get(self, key: bytes) -> bytes | None:
        try:
            value: bytes | None = self._db.get(key)
        except self._errors as exc:
            raise self.reading_error(detail(exc)) from None
        return value

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        cursor = self._db.cursor()
        try:
            record = cursor.first()
            while record is not None:
                yield record
                record = cursor.next()
        except self._errors as exc:
            raise self.reading_error(detail(exc)) from None
        finally:
            cursor.close()

    def close(self) -> None:
        self._db.close()


def detail(exc: BaseException) -> str:
    """libdb's message from a DBError's (errno, text) arguments."""
    args = exc.args
    if len(args) == 2 and isinstance(args[1], str):
        return args[1]
    return str(exc)


def write(path: Path, items: Iterable[tuple[bytes, bytes]], kind: str, spec: str) -> None:
    """Fill the (new, empty) file at `path` with `items` as a Berkeley DB `kind` file."""
    db = _library(spec)
    handle = db.DB()
    try:
        handle.set_cachesize(0, _CREATE_CACHE, 1)
        if kind == "hash":
            handle.set_h_nelem(HASH_NELEM)
        method = db.DB_HASH if kind == "hash" else db.DB_BTREE
        handle.open(str(path), None, method, db.DB_CREATE, 0o600)
        for key, value in items:
            handle.put(key, value)
        handle.sync()
    except db.DBError as exc:
        raise TableError(f"{spec}: error writing {path}: {detail(exc)}") from None
    finally:
        handle.close()

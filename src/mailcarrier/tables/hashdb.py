"""``hash:/path`` and ``lmdb:/path``: a postmap-format source compiled into an indexed file.

`build_index(path, kind)` reads ``/path`` and writes ``/path.db`` (``/path.lmdb`` for lmdb),
an sqlite3 database with one keyed table, atomically (durable.py: temp file, fsync, rename,
fsync of the directory) so a reader never sees a half-built index. `HashTable` opens the
index read-only; when the source is newer than the index it warns, as Postfix does
("database ... is older than source file ..."). The on-disk format is mailcarrier's own,
not Berkeley DB or LMDB.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Final

from mailcarrier.durable import AtomicFile
from mailcarrier.tables.base import Table, TableError
from mailcarrier.tables.simple import read_source
from mailcarrier.tables.spec import INDEXED

_FORMAT: Final = "mailcarrier-map-2"


def _encode(text: str) -> bytes:
    # Tables are bytes to Postfix; sources are read with surrogateescape, so any byte that is
    # not UTF-8 survives the round trip instead of failing the build.
    return text.encode("utf-8", "surrogateescape")


def index_path(source: Path, kind: str = "hash") -> Path:
    return source.with_name(source.name + INDEXED[kind])


class _Compiling(Table):
    """The source being compiled: it collects the warnings of malformed lines and has no
    entries of its own yet (the index is the table that answers lookups)."""

    def lookup(self, key: str) -> str | None:
        return None


def build_index(source: Path, kind: str = "hash") -> tuple[int, list[str]]:
    """Compile `source`; return (entries written, warnings)."""
    collector = _Compiling(f"{kind}:{source}")
    entries = read_source(source, collector)
    with AtomicFile(index_path(source, kind)) as out:
        conn = sqlite3.connect(out.path)
        try:
            # The index is rebuilt whole each time: journaling would only cost time.
            conn.execute("PRAGMA journal_mode=OFF")
            conn.execute("PRAGMA synchronous=OFF")
            conn.execute("CREATE TABLE meta (name TEXT PRIMARY KEY, value TEXT)")
            conn.execute("CREATE TABLE map (key BLOB PRIMARY KEY, value BLOB) WITHOUT ROWID")
            conn.execute("INSERT INTO meta VALUES ('format', ?)", (_FORMAT,))
            rows = ((_encode(key), _encode(value)) for key, value in entries.items())
            conn.executemany("INSERT INTO map VALUES (?, ?)", rows)
            conn.commit()
        finally:
            conn.close()
        out.commit()  # fsync (what sqlite3 wrote by name), rename, fsync the directory
    return len(entries), collector.warnings


class HashTable(Table):
    def __init__(self, spec: str, source: Path, kind: str = "hash") -> None:
        super().__init__(spec)
        self.kind = kind
        self.source = source
        self.index = index_path(source, kind)
        self._lock = threading.Lock()
        self._conn = self._open()
        try:
            if source.stat().st_mtime > self.index.stat().st_mtime:
                self.warn(f"database {self.index} is older than source file {source}")
        except OSError:
            pass  # no source beside the index: nothing to compare

    def _open(self) -> sqlite3.Connection:
        if not self.index.exists():
            raise TableError(
                f"open database {self.index}: No such file or directory "
                f'(run "mailcarrier map {self.kind}:{self.source}")'
            )
        try:
            conn = sqlite3.connect(
                self.index.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False
            )
            row = conn.execute("SELECT value FROM meta WHERE name='format'").fetchone()
        except sqlite3.DatabaseError as exc:
            raise TableError(
                f"{self.index}: not a mailcarrier table index ({exc}); "
                f'rebuild it with "mailcarrier map {self.kind}:{self.source}"'
            ) from None
        if row is None or row[0] != _FORMAT:
            conn.close()
            raise TableError(f"{self.index}: unknown index format")
        return conn

    def lookup(self, key: str) -> str | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT value FROM map WHERE key = ?", (_encode(key.lower()),)
            ).fetchone()
        return None if row is None else bytes(row[0]).decode("utf-8", "surrogateescape")

    def close(self) -> None:
        self._conn.close()

    def files(self) -> tuple[Path, ...]:
        return (self.source, self.index)

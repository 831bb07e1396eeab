"""Tables updated in place, as Postfix's dict_put()/dict_del() change ``btree:``, ``hash:``
and ``lmdb:`` files (util/dict_db.c, util/dict_lmdb.c): the SASL authentication failure
cache (sasl/authcache.py) is such a table.

`open_updatable(kind, source)` gives an `UpdatableTable` over the file Postfix would use
(``source.db`` for btree:/hash:, Berkeley DB through the ``berkeleydb`` package, built
against Debian's libdb5.3 as Postfix is; ``source.lmdb`` through py-lmdb). `lookup`,
`update` and `delete` take and give text; keys and values are written with the trailing
null byte Postfix writes on Linux, and found with or without it (DICT_FLAG_TRY1NULL /
TRY0NULL: the first one found decides for the rest of the table's life, as in Postfix).
Every operation opens the file, takes the lock Postfix's DICT_FLAG_LOCK takes (flock(2) for
Berkeley DB, fcntl(2) for LMDB; shared to read, exclusive to change), works, syncs a change
to disk and closes: a process never keeps pages cached across another's update, so several
processes may share one file. A missing file is created empty (mode 0600) under a private
name and linked into place, so no process ever opens half of one; a file in the private
format of older mailcarrier versions is replaced (`warnings` says so).

Not here: the proxywrite(8) variant (`tables.proxy.ProxyUpdatableTable`), the cache's
entry format (sasl/authcache.py), whole-file builds (build.py) and read-only tables
(berkeley.py, lmdb_file.py, whose header checks are used here).
"""

from __future__ import annotations

import abc
import contextlib
import fcntl
import os
import secrets
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Final, TypeVar

from mailcarrier.tables import berkeley, lmdb_file
from mailcarrier.tables.base import TableError
from mailcarrier.tables.indexed import SQLITE_MAGIC, index_path, require

__all__ = ["UPDATABLE_KINDS", "UpdatableTable", "open_updatable"]

UPDATABLE_KINDS: Final = {"btree": ".db", "hash": ".db", "lmdb": ".lmdb"}
_HEAD: Final = 4096
# Room for an LMDB file: Postfix's lmdb_map_size default, doubled while full (slmdb).
_MIN_MAP: Final = 16 * 1024 * 1024
_MAX_MAP: Final = 1 << 34

T = TypeVar("T")


class UpdatableTable(abc.ABC):
    """A table changed one entry at a time: `lookup`, `update`, `delete` (and their async
    forms). The files are `_FileTable`'s (Postfix's trailing-null decision, raw bytes per
    format); proxy.py's goes through proxywrite."""

    kind = ""

    def __init__(self, spec: str) -> None:
        self.spec = spec  # "btree:/path": the name Postfix's messages use
        self.warnings: list[str] = []

    # --- the operations --------------------------------------------------------------
    @abc.abstractmethod
    def lookup(self, key: str) -> str | None:
        """The value of `key`, or None."""

    @abc.abstractmethod
    def update(self, key: str, value: str) -> None:
        """Store `key` -> `value`."""

    @abc.abstractmethod
    def delete(self, key: str) -> bool:
        """True when an entry was deleted (False: there was none)."""

    async def lookup_async(self, key: str) -> str | None:
        return self.lookup(key)

    async def update_async(self, key: str, value: str) -> None:
        self.update(key, value)

    async def delete_async(self, key: str) -> bool:
        return self.delete(key)

    def take_warnings(self) -> list[str]:
        taken, self.warnings = self.warnings, []
        return taken

    def close(self) -> None:
        """Nothing is held between operations; kept for the callers' symmetry."""
        return None


class _FileTable(UpdatableTable):
    """What the file formats share: the index path, creation, the legacy check."""

    def __init__(self, kind: str, source: Path) -> None:
        super().__init__(f"{kind}:{source}")
        self.kind = kind
        self.source = source
        self.index = index_path(source, UPDATABLE_KINDS[kind])
        self._checked = False
        self._thread_lock = threading.Lock()  # fcntl locks do not exclude this process
        # DICT_FLAG_TRY1NULL / TRY0NULL: undecided until an entry is found or written.
        self.try1null = True
        self.try0null = True

    # --- Postfix's null-byte decision (dict_db.c, dict_lmdb.c) -------------------------
    def _candidates(self, key: str) -> list[tuple[bytes, bool]]:
        raw = key.encode("utf-8", "surrogateescape")
        found: list[tuple[bytes, bool]] = []
        if self.try1null:
            found.append((raw + b"\0", True))
        if self.try0null:
            found.append((raw, False))
        return found

    def _decided(self, with_null: bool) -> None:
        if with_null:
            self.try0null = False
        else:
            self.try1null = False

    # --- the operations --------------------------------------------------------------
    def lookup(self, key: str) -> str | None:
        found = self._get(self._candidates(key))
        if found is None:
            return None
        value, with_null = found
        self._decided(with_null)
        if with_null and value.endswith(b"\0"):
            value = value[:-1]
        return value.decode("utf-8", "surrogateescape")

    def update(self, key: str, value: str) -> None:
        if self.try1null and self.try0null:
            self.try0null = False  # undecided: Linux's default is to append the null byte
        tail = b"\0" if self.try1null else b""
        raw_key = key.encode("utf-8", "surrogateescape") + tail
        self._put(raw_key, value.encode("utf-8", "surrogateescape") + tail)

    def delete(self, key: str) -> bool:
        """True when an entry was deleted (False: there was none)."""
        with_null = self._del(self._candidates(key))
        if with_null is None:
            return False
        self._decided(with_null)
        return True

    # --- raw access, per format --------------------------------------------------------
    @abc.abstractmethod
    def _get(self, keys: list[tuple[bytes, bool]]) -> tuple[bytes, bool] | None:
        """The first of `keys` found (as stored, and whether with its NUL), or None."""

    @abc.abstractmethod
    def _put(self, key: bytes, value: bytes) -> None:
        """Store `key` -> `value` as the format writes them."""

    @abc.abstractmethod
    def _del(self, keys: list[tuple[bytes, bool]]) -> bool | None:
        """Delete the first of `keys` found; whether one was (None: the file is absent)."""

    @abc.abstractmethod
    def _create(self, path: Path) -> None:
        """Make an empty table of this format at `path` (a private name, linked later)."""

    def _ensure(self) -> None:
        """Create the file when it is missing (replace a legacy one), atomically."""
        if self._checked and self.index.exists():
            return
        try:
            with open(self.index, "rb") as handle:
                legacy = handle.read(len(SQLITE_MAGIC)) == SQLITE_MAGIC
        except FileNotFoundError:
            legacy = False
            missing = True
        except OSError as exc:
            raise TableError(f"open database {self.index}: {exc.strerror or exc}") from None
        else:
            missing = False
        if missing or legacy:
            self._publish(replace=legacy)
            if legacy:
                self.warnings.append(
                    f"{self.index}: replaced a file in the private format of older mailcarrier "
                    f"versions with an empty {self.kind} table"
                )
        self._checked = True

    def _publish(self, *, replace: bool) -> None:
        temporary = self.index.with_name(f".{self.index.name}.{os.getpid()}.{secrets.token_hex(4)}")
        try:
            self._create(temporary)
            os.chmod(temporary, 0o600)  # password digests: private whatever the umask
            with open(temporary, "rb") as handle:
                os.fsync(handle.fileno())
            if replace:
                os.replace(temporary, self.index)
            else:
                with contextlib.suppress(FileExistsError):  # another process was first
                    os.link(temporary, self.index)
            directory = os.open(self.index.parent, os.O_RDONLY)
            try:
                os.fsync(directory)
            finally:
                os.close(directory)
        except OSError as exc:
            raise TableError(f"create database {self.index}: {exc.strerror or exc}") from None
        finally:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


class BerkeleyUpdatable(_FileTable):
    """``btree:`` or ``hash:``: a Berkeley DB file, flock(2)ed as dict_db.c does."""

    def _db(self) -> Any:
        require(berkeley.PACKAGE, self.spec)
        from berkeleydb import db

        return db

    def _create(self, path: Path) -> None:
        db = self._db()
        handle = db.DB()
        try:
            if self.kind == "hash":
                handle.set_h_nelem(berkeley.HASH_NELEM)
            handle.open(str(path), None, self._method(db), db.DB_CREATE | db.DB_EXCL, 0o600)
            handle.sync()
        except db.DBError as exc:
            raise TableError(f"create database {path}: {berkeley.detail(exc)}") from None
        finally:
            handle.close()

    def _method(self, db: Any) -> Any:
        return db.DB_HASH if self.kind == "hash" else db.DB_BTREE

    @contextlib.contextmanager
    def _session(self, write: bool) -> Iterator[Any]:
        db = self._db()
        with self._thread_lock:
            self._ensure()
            try:
                fd = os.open(self.index, (os.O_RDWR if write else os.O_RDONLY) | os.O_CLOEXEC)
            except OSError as exc:
                raise TableError(f"open database {self.index}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
                berkeley.check_header(
                    self.index, os.pread(fd, _HEAD, 0), os.fstat(fd).st_size, self.kind
                )
                handle = db.DB()
                try:
                    flags = 0 if write else db.DB_RDONLY
                    handle.open(str(self.index), None, self._method(db), flags)
                    yield handle
                    if write:
                        handle.sync()
                except db.DBError as exc:
                    raise TableError(f"{self.index}: {berkeley.detail(exc)}") from None
                finally:
                    handle.close()
                if write:
                    os.fsync(fd)
            finally:
                os.close(fd)  # and with it the lock

    def _get(self, keys: list[tuple[bytes, bool]]) -> tuple[bytes, bool] | None:
        with self._session(write=False) as handle:
            for key, with_null in keys:
                value: bytes | None = handle.get(key)
                if value is not None:
                    return value, with_null
        return None

    def _put(self, key: bytes, value: bytes) -> None:
        with self._session(write=True) as handle:
            handle.put(key, value)

    def _del(self, keys: list[tuple[bytes, bool]]) -> bool | None:
        db = self._db()
        with self._session(write=True) as handle:
            for key, with_null in keys:
                try:
                    handle.delete(key)
                except db.DBNotFoundError:
                    continue
                return with_null
        return None


class LmdbUpdatable(_FileTable):
    """``lmdb:``: an LMDB file without LMDB's lock file, fcntl(2)ed as dict_lmdb.c does."""

    def _lmdb(self) -> Any:
        return require(lmdb_file.PACKAGE, self.spec)

    def _create(self, path: Path) -> None:
        lmdb = self._lmdb()
        try:
            env = lmdb.open(str(path), subdir=False, lock=False, map_size=_MIN_MAP)
            env.sync(True)
            env.close()
        except lmdb.Error as exc:
            raise TableError(f"create database {path}: {exc}") from None

    def _run(self, write: bool, work: Callable[[Any], T]) -> T:
        """`work(txn)` in a transaction under the file's lock; a full map is grown and the
        work done again (Postfix's slmdb does the same)."""
        lmdb = self._lmdb()
        with self._thread_lock:
            self._ensure()
            try:
                map_size = max(_MIN_MAP, 2 * self.index.stat().st_size)
            except OSError as exc:
                raise TableError(f"open database {self.index}: {exc.strerror or exc}") from None
            while True:
                try:
                    return self._attempt(lmdb, write, map_size, work)
                except (lmdb.MapFullError, lmdb.MapResizedError):
                    if map_size >= _MAX_MAP:
                        raise TableError(f"{self.index}: the database is full") from None
                    map_size *= 2

    def _attempt(self, lmdb: Any, write: bool, map_size: int, work: Callable[[Any], T]) -> T:
        """One try. fcntl locks belong to the process and go with the first close() of any
        descriptor of the file, and opening an environment closes one: as slmdb, the
        environment is opened first, then the lock taken; the header is read through the
        locked descriptor before LMDB touches a page."""
        try:
            env = lmdb.open(
                str(self.index), subdir=False, lock=False, readonly=not write, map_size=map_size
            )
        except lmdb.Error as exc:
            raise TableError(f"open database {self.index}: {exc}") from None
        try:
            with open(self.index, "r+b" if write else "rb") as lock_file:
                fd = lock_file.fileno()
                fcntl.lockf(lock_file, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
                lmdb_file.check_meta(
                    self.index,
                    os.pread(fd, _HEAD, 0),
                    os.fstat(fd).st_size,
                    lambda at, size: os.pread(fd, size, at),
                )
                with env.begin(write=write) as txn:
                    return work(txn)  # committed on the way out, and synced (LMDB's default)
        except (lmdb.MapFullError, lmdb.MapResizedError):
            raise
        except lmdb.Error as exc:
            raise TableError(f"{self.index}: {exc}") from None
        except OSError as exc:
            raise TableError(f"open database {self.index}: {exc.strerror or exc}") from None
        finally:
            env.close()

    def _get(self, keys: list[tuple[bytes, bool]]) -> tuple[bytes, bool] | None:
        def work(txn: Any) -> tuple[bytes, bool] | None:
            for key, with_null in keys:
                value: bytes | None = txn.get(key)
                if value is not None:
                    return value, with_null
            return None

        return self._run(False, work)

    def _put(self, key: bytes, value: bytes) -> None:
        self._run(True, lambda txn: txn.put(key, value))

    def _del(self, keys: list[tuple[bytes, bool]]) -> bool | None:
        def work(txn: Any) -> bool | None:
            for key, with_null in keys:
                if txn.delete(key):
                    return with_null
            return None

        return self._run(True, work)


def open_updatable(kind: str, source: Path) -> UpdatableTable:
    """The ``kind:source`` table for updates in place; `TableError` names what to install
    when the format's library is missing."""
    if kind == "lmdb":
        lmdb_table = LmdbUpdatable(kind, source)
        lmdb_table._lmdb()
        return lmdb_table
    if kind in ("btree", "hash"):
        berkeley_table = BerkeleyUpdatable(kind, source)
        berkeley_table._db()
        return berkeley_table
    raise TableError(f"{kind}:{source}: tables of type {kind} cannot be updated in place")

"""``lmdb:/path``: an LMDB file (``/path.lmdb``) as Postfix's postmap makes it (postfix-lmdb).

Postfix opens the file itself as the database (MDB_NOSUBDIR) without LMDB's lock file
(MDB_NOLOCK) and takes fcntl(2) locks on it instead (util/dict_lmdb.c): readers a shared one
around each lookup, postmap an exclusive one while it starts a rebuild. `LmdbTable` does the
same through the ``lmdb`` Python package (the ``lmdb`` extra), each lookup in its own read
transaction. Before the file is mapped it is checked, because LMDB trusts it: a page number
past the end of the file (a file cut short, a damaged page) kills the process with SIGBUS.
The two meta pages must say the file is whole (`check_meta`), and then py-lmdb's own offline
verifier (``lmdb.verify``, py-lmdb 3.0: a pure-Python walk of every page, about 4 us per
entry) must find the file sound; a file found sound is not walked again by this process until
it changes (`verify`). Either failure is one TableError line. `write` fills a new file in one
transaction, growing the map when it is full as Postfix's slmdb does (build.py publishes the
file). Key folding, the trailing null byte and the stale index warning are indexed.py's.
"""

from __future__ import annotations

import fcntl
import importlib
import os
import struct
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from mailcarrier.tables.base import TableError
from mailcarrier.tables.indexed import IndexedTable, Package, read_head, require

PACKAGE: Final = Package("lmdb", "lmdb")
_MAGIC: Final = 0xBEEFC0DE
_P_META: Final = 0x08
_PAGE_HEADER: Final = 16  # 64-bit LMDB: page number, pad, flags, lower/upper
# Offsets in a meta page (after the page header): magic, version, and, in the free-page
# database record, the page size; then the last page used and the transaction id.
_META_PSIZE: Final = _PAGE_HEADER + 24
_META_LAST_PAGE: Final = _PAGE_HEADER + 120
_META_SIZE: Final = _PAGE_HEADER + 136
# Postfix's lmdb_map_size default: the smallest map a new file gets.
_MIN_MAP: Final = 16 * 1024 * 1024
# Files this process found sound, by (device, inode, size, mtime): a process opens each
# table more than once (the agent's start-up check, then its own use, each reload).
_SOUND: dict[tuple[int, int, int, int], None] = {}
_SOUND_LIMIT: Final = 256


def _meta(page: bytes) -> tuple[int, int, int] | None:
    """(page size, last page, transaction id) of a valid meta page, else None."""
    if len(page) < _META_SIZE:
        return None
    flags = struct.unpack_from("<H", page, 10)[0]
    magic, version = struct.unpack_from("<II", page, _PAGE_HEADER)
    if magic != _MAGIC or version != 1 or not flags & _P_META:
        return None
    psize = struct.unpack_from("<I", page, _META_PSIZE)[0]
    last_page, txnid = struct.unpack_from("<QQ", page, _META_LAST_PAGE)
    return psize, last_page, txnid


def check_meta(
    index: Path, head: bytes, length: int, read_at: Callable[[int, int], bytes] | None = None
) -> None:
    """Refuse a file that is not LMDB's, or is shorter than its newest meta page says.
    `read_at(offset, size)` reads the second meta page (default: the file opened anew; a
    caller holding an fcntl lock passes its own descriptor's, as closing another would
    drop the lock)."""
    first = _meta(head)
    if first is None:
        raise TableError(f"{index}: not an LMDB file")
    psize = first[0]
    if psize < 512 or psize & (psize - 1):
        raise TableError(f"{index}: not an LMDB file (page size {psize})")
    if read_at is not None:
        second = _meta(read_at(psize, _META_SIZE))
    else:
        with open(index, "rb") as handle:
            handle.seek(psize)
            second = _meta(handle.read(_META_SIZE))
    newest = max((m for m in (first, second) if m is not None), key=lambda m: m[2])
    needed = (newest[1] + 1) * psize
    if length < needed:
        raise TableError(
            f"{index}: the file is cut short ({length} bytes; its header says {needed})"
        )


def verify(index: Path) -> None:
    """Walk every page of the file with py-lmdb's verifier (once per version of the file);
    without it (py-lmdb before 3.0) only `check_meta` stands between LMDB and the file."""
    try:
        verifier: Any = importlib.import_module("lmdb.verify")
    except ImportError:
        return
    st = index.stat()
    identity = (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns)
    if identity in _SOUND:
        return
    try:
        problems: list[str] = verifier.verify(str(index), subdir=False)
    except verifier.VerifyError as exc:
        raise TableError(f"{index}: not an LMDB file this machine can read: {exc}") from None
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise TableError(f"{index}: a damaged LMDB file: {problems[0]}{more}")
    if len(_SOUND) >= _SOUND_LIMIT:
        _SOUND.clear()
    _SOUND[identity] = None


class LmdbTable(IndexedTable):
    kind = "lmdb"
    suffix = ".lmdb"

    def _open(self) -> None:
        require(PACKAGE, self.spec)
        import lmdb

        head, length = read_head(self.index, self.spec)
        check_meta(self.index, head, length)
        verify(self.index)
        try:
            # A file object, not a bare descriptor: a table dropped without close() (the
            # agent's start-up check opens every table once) still lets it go.
            self._lock_file = open(self.index, "rb")  # noqa: SIM115 - closed by close()
        except OSError as exc:
            raise TableError(f"open database {self.index}: {exc.strerror or exc}") from None
        try:
            self._env = lmdb.open(str(self.index), subdir=False, lock=False, readonly=True)
        except lmdb.Error as exc:
            self._lock_file.close()
            raise TableError(f"open database {self.index}: {exc}") from None
        self._errors: type[Exception] = lmdb.Error
        self._max_key = self._env.max_key_size()

    def _lock(self) -> None:
        fcntl.lockf(self._lock_file, fcntl.LOCK_SH)

    def _unlock(self) -> None:
        fcntl.lockf(self._lock_file, fcntl.LOCK_UN)

    def _get(self, key: bytes) -> bytes | None:
        if not key or len(key) > self._max_key:
            return None  # LMDB holds no such key (and would call it an error)
        try:
            with self._env.begin() as txn:
                return txn.get(key)
        except self._errors as exc:
            raise self.reading_error(str(exc)) from None

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        try:
            with self._env.begin() as txn:
                yield from txn.cursor().iternext()
        except self._errors as exc:
            raise self.reading_error(str(exc)) from None

    def close(self) -> None:
        self._env.close()
        self._lock_file.close()


def _map_size(items: Sequence[tuple[bytes, bytes]]) -> int:
    """Room for `items` in LMDB's B-tree (half-full pages, node headers), at least
    Postfix's default."""
    payload = sum(len(key) + len(value) + 16 for key, value in items)
    return max(_MIN_MAP, 2 * payload + 1024 * 1024)


def write(path: Path, items: Sequence[tuple[bytes, bytes]], spec: str) -> None:
    """Fill the (new, empty) file at `path` with `items` as an LMDB file."""
    require(PACKAGE, spec)
    import lmdb

    size = _map_size(items)
    while True:
        try:
            env = lmdb.open(str(path), subdir=False, lock=False, map_size=size, sync=False)
        except lmdb.Error as exc:
            raise TableError(f"{spec}: error writing {path}: {exc}") from None
        try:
            with env.begin(write=True) as txn:
                txn.cursor().putmulti(items)
            return  # build.py fsyncs the file before it publishes it
        except lmdb.MapFullError:
            size *= 2  # as slmdb: a bigger map, the transaction again from the start
        except lmdb.Error as exc:
            raise TableError(f"{spec}: error writing {path}: {exc}") from None
        finally:
            env.close()
        os.truncate(path, 0)

"""What every indexed table file shares, whatever its format: `IndexedTable` and its options.

Postfix's conventions for ``hash:``, ``btree:``, ``lmdb:`` and ``cdb:`` files
(util/dict_db.c, dict_lmdb.c, dict_cdb.c), done once here for the three format modules
(berkeley.py, lmdb_file.py, cdb_file.py), which only open a file and find raw bytes:

- Keys are folded before they are looked up (`fold_key`): ASCII keys to lower case; other
  keys with Unicode case folding, as Postfix does with ``smtputf8_enable = yes`` (its
  default), and then, if not found, with ASCII-only lower case, which is how Postfix folds
  with ``smtputf8_enable = no`` (so files built either way are read).
- Keys and values may have been stored with a trailing null byte (postmap's default for
  Berkeley DB and LMDB files, and with ``-N``) or without (cdb's default, and ``-n``).
  `LookupOptions` says which forms to try; with both, the form with the null byte is tried
  first and, once one form has found something, only that form is tried again.
- A reader takes the format's shared lock around each lookup (where Postfix's readers do:
  a postmap rebuilding the file in place holds the exclusive lock); mailcarrier's own
  builder never needs it, since it replaces a file by rename (build.py).
- When the source file is newer than the index, and was not changed within the last 100
  seconds, a warning says "database ... is older than source file ...".

Errors are `TableError`s with one line naming the file: a missing file, a file mailcarrier's
old private (sqlite) format wrote, a file that is not of the expected format or is cut
short, a Python package the format needs that is not installed (`require`).
"""

from __future__ import annotations

import abc
import importlib
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Final

from mailcarrier.tables.base import Table, TableError

# What mailcarrier wrote to .db and .lmdb files before it wrote Postfix's formats.
SQLITE_MAGIC: Final = b"SQLite format 3\x00"
# Postfix warns about a stale index only when the source changed longer ago than this.
_RECENT_SECONDS: Final = 100
_ASCII_LOWER: Final = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_ASCII_LOWER_STR: Final = {ord(c): ord(c.lower()) for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ"}


@dataclass(frozen=True, slots=True)
class Package:
    """The Python package a format needs, and the extra of mailcarrier that installs it."""

    module: str
    extra: str
    note: str = ""


def require(package: Package, spec: str) -> ModuleType:
    """Import the format's library, or fail with one line saying what to install."""
    try:
        return importlib.import_module(package.module)
    except ImportError:
        note = f" ({package.note})" if package.note else ""
        raise TableError(
            f"{spec}: this table type needs the Python package {package.module}: "
            f"pip install 'mailcarrier[{package.extra}]'{note}"
        ) from None


def available(package: Package) -> bool:
    try:
        importlib.import_module(package.module)
    except ImportError:
        return False
    return True


@dataclass(frozen=True, slots=True)
class LookupOptions:
    """Postfix's dict flags for readers: FOLD_FIX, TRY1NULL, TRY0NULL, UTF8_REQUEST."""

    fold: bool = True
    try1null: bool = True  # try the key with a trailing null byte
    try0null: bool = True  # try the key without one
    utf8: bool = True


def fold_key(key: str, *, utf8: bool = True) -> str:
    """Postfix's case folding of a lookup key (util/casefold.c)."""
    if key.isascii():
        return key.lower()
    if utf8:
        return key.casefold()
    return key.translate(_ASCII_LOWER_STR)


def fold_bytes(key: bytes, *, utf8: bool = True) -> bytes:
    """`fold_key` for a key read from a source file (valid UTF-8 when `utf8`)."""
    if key.isascii() or not utf8:
        return key.translate(_ASCII_LOWER)
    return key.decode("utf-8").casefold().encode("utf-8")


def encode(text: str) -> bytes | None:
    """A key as the bytes a table holds (None: no stored key can be these characters)."""
    try:
        return text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None


def decode(data: bytes) -> str:
    """A stored value (or key) as text: up to the first null byte, as Postfix's C strings."""
    end = data.find(b"\0")
    return (data if end < 0 else data[:end]).decode("utf-8", "surrogateescape")


def index_path(source: Path, suffix: str) -> Path:
    return source.with_name(source.name + suffix)


def check_not_legacy(index: Path, head: bytes, spec: str) -> None:
    """Refuse a file in mailcarrier's old private format with what to do about it."""
    if head.startswith(SQLITE_MAGIC):
        kind, _, source = spec.partition(":")
        raise TableError(
            f"{index}: a table in the private format of older mailcarrier versions, which "
            f'neither Postfix nor this version reads: rebuild it with "mailcarrier map '
            f'{kind}:{source}"'
        )


def read_head(index: Path, spec: str, size: int = 4096) -> tuple[bytes, int]:
    """The first `size` bytes of an index file and its length; a missing file is an error
    that says how to make it."""
    try:
        with open(index, "rb") as handle:
            head = handle.read(size)
            length = os.fstat(handle.fileno()).st_size
    except FileNotFoundError:
        raise TableError(
            f'open database {index}: No such file or directory (run "mailcarrier map {spec}")'
        ) from None
    except OSError as exc:
        raise TableError(f"open database {index}: {exc.strerror or exc}") from None
    check_not_legacy(index, head, spec)
    return head, length


class IndexedTable(Table):
    """A ``type:/path`` table whose entries are in an index file beside ``/path``.

    Subclasses set `kind` and `suffix`, open the file in `_open` (after `read_head` checks
    it exists and is not of the old format), find raw keys in `_get` and, where Postfix's
    readers lock, take and release the shared lock around a lookup in `_lock`/`_unlock`."""

    suffix: str = ""

    def __init__(self, spec: str, source: Path, options: LookupOptions | None = None) -> None:
        super().__init__(spec)
        self.source = source
        self.index = index_path(source, self.suffix)
        self.options = options or LookupOptions()
        self._try1 = self.options.try1null
        self._try0 = self.options.try0null
        self._mutex = threading.Lock()  # a library handle serves one lookup at a time
        self._open()
        self._warn_if_stale()

    @abc.abstractmethod
    def _open(self) -> None:
        """Open the index (raise TableError with one line when it cannot be used)."""

    @abc.abstractmethod
    def _get(self, key: bytes) -> bytes | None:
        """The stored value for the raw `key` (library errors become TableError)."""

    @abc.abstractmethod
    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Every stored (key, value), raw, in the file's order (``map -s``)."""

    @abc.abstractmethod
    def close(self) -> None:
        """Release the file."""

    def _lock(self) -> None:
        """Take the shared lock for one lookup (formats whose Postfix readers lock one)."""

    def _unlock(self) -> None:
        """Release what `_lock` took."""

    def _mtime(self) -> float:
        return self.index.stat().st_mtime

    def _warn_if_stale(self) -> None:
        try:
            source_mtime = int(self.source.stat().st_mtime)
            index_mtime = int(self._mtime())
        except OSError:
            return  # no source beside the index: nothing to compare
        if index_mtime < source_mtime < time.time() - _RECENT_SECONDS:
            self.warn(f"database {self.index} is older than source file {self.source}")

    def _candidates(self, key: str) -> list[str]:
        if not self.options.fold:
            return [key]
        folded = fold_key(key, utf8=self.options.utf8)
        if self.options.utf8 and not key.isascii():
            ascii_only = key.translate(_ASCII_LOWER_STR)
            if ascii_only != folded:
                return [folded, ascii_only]
        return [folded]

    def _find(self, raw: bytes) -> bytes | None:
        if self._try1:
            found = self._get(raw + b"\0")
            if found is not None:
                self._try0 = False
                return found
        if self._try0:
            found = self._get(raw)
            if found is not None:
                self._try1 = False
                return found
        return None

    def lookup(self, key: str) -> str | None:
        with self._mutex:
            self._lock()
            try:
                for candidate in self._candidates(key):
                    raw = encode(candidate)
                    if raw is None:
                        continue
                    found = self._find(raw)
                    if found is not None:
                        return decode(found)
            finally:
                self._unlock()
        return None

    def files(self) -> tuple[Path, ...]:
        return (self.source, self.index)

    def reading_error(self, detail: str) -> TableError:
        """A library's error while reading, as the one line the callers report."""
        return TableError(f"{self.spec}: error reading {self.index}: {detail}")

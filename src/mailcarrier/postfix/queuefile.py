"""A Postfix queue file as a delivery agent uses it: where it is, opening and locking it as
deliver_request.c does, its content, and marking a recipient done (global/mail_queue.c,
mail_open_ok.c, deliver_completed.c, util/dir_forest.c).

`queue_path` is the file's path relative to queue_directory: ``<queue>/<hash>/<id>``, the
hash directories only for the queues listed in hash_queue_names (default "deferred,
defer": not ``active``), one level per hash_queue_depth, from the queue ID (or, for a long
queue ID, from the microseconds field, as Postfix names those directories).

`open_queue_file` refuses what mail_open_ok() refuses (bad names, not a regular file, not
mode 0700: a file still being written, or corrupt) and a missing file with
`QueueFileMissing`, after which Postfix replies "defer" with an empty status; any other
failure to open or to take the shared lock (``flock(LOCK_SH|LOCK_NB)``: a queue manager
that just restarted holds it exclusively) is `QueueFileOpenError`, on which Postfix's own
agent exits. The `QueueFile` gives the content (records.py's `RecordContent`) and marks a
recipient done by overwriting the type byte of its ``R`` record with ``D`` (`mark_done`),
or the file corrupt (mode 0400, mark_corrupt.c). Neighbours: request.py says which file and
which offsets; records.py reads the records.
"""

from __future__ import annotations

import errno
import fcntl
import functools
import os
import re
import stat
from collections.abc import Iterable
from typing import Final

from mailcarrier.errors import TemporaryError
from mailcarrier.postfix.records import RecordContent

__all__ = [
    "DEFAULT_HASH_QUEUE_NAMES",
    "QueueFile",
    "QueueFileError",
    "QueueFileMissing",
    "QueueFileOpenError",
    "QueueFileUpdateError",
    "mark_done",
    "open_queue_file",
    "queue_id_ok",
    "queue_name_ok",
    "queue_path",
]

DEFAULT_HASH_QUEUE_NAMES: Final = "deferred, defer"  # hash_queue_names' default
_READY_MODE: Final = stat.S_IRWXU  # MAIL_QUEUE_STAT_READY: rwx for the owner
_CORRUPT_MODE: Final = stat.S_IRUSR  # MAIL_QUEUE_STAT_CORRUPT
_QUEUE_ID_MAX: Final = 255  # VALID_HOSTNAME_LEN
# Long queue IDs (enable_long_queue_ids): base-52 seconds (>= 6), 4 base-52 microseconds, "z",
# base-51 inode number (mail_queue.h MQID_LG_*).
_LONG_ID_TIME: Final = 10
_LONG_ID_USEC: Final = 4
_BASE52: Final = "0123456789BCDFGHJKLMNPQRSTVWXYZbcdfghjklmnpqrstvwxyz"
_BASE52_VALUE: Final = {c: i for i, c in enumerate(_BASE52)}
_QUEUE_NAME: Final = re.compile(r"[0-9A-Za-z]{1,100}")
_QUEUE_ID: Final = re.compile(rf"[0-9A-Za-z_]{{1,{_QUEUE_ID_MAX}}}")


class QueueFileError(TemporaryError):
    """The queue file of a request cannot be used; `path` names it."""


class QueueFileMissing(QueueFileError):
    """No usable queue file at the path: missing, or what mail_open_ok() refuses. Postfix's
    agent replies "defer" with an empty hop status and serves the next request."""


class QueueFileOpenError(QueueFileError):
    """Opening or locking the file failed otherwise (Postfix's agent exits: msg_fatal)."""


class QueueFileUpdateError(QueueFileError):
    """A recipient could not be marked done: the record there is not a recipient, or the
    write failed."""


def queue_name_ok(name: str) -> bool:
    """mail_queue_name_ok(): 1 to 100 ASCII letters and digits."""
    return _QUEUE_NAME.fullmatch(name) is not None


def queue_id_ok(queue_id: str) -> bool:
    """mail_queue_id_ok(): 1 to 255 ASCII letters, digits and underscores."""
    return _QUEUE_ID.fullmatch(queue_id) is not None


def _hash_source(queue_id: str) -> str:
    """What the hash directories are made of: the ID, or for a long ID the microseconds
    before its "z" as five hex digits (MQID_LG_GET_HEX_USEC; undecodable: 0)."""
    z = queue_id.rfind("z")
    if z < _LONG_ID_TIME:
        return queue_id
    usec = 0
    for c in queue_id[z - _LONG_ID_USEC : z]:
        digit = _BASE52_VALUE.get(c)
        if digit is None:
            usec = 0
            break
        usec = usec * 52 + digit
    return f"{usec:05X}"


def _names(names: str | Iterable[str]) -> frozenset[str]:
    if isinstance(names, (str, tuple)):
        return _cached_names(names)  # the same value for every request of a process
    return _name_set(names)


def _name_set(names: str | Iterable[str]) -> frozenset[str]:
    if isinstance(names, str):
        names = names.replace(",", " ").split()
    return frozenset(n.lower() for n in names)


_cached_names = functools.lru_cache(maxsize=16)(_name_set)


def queue_path(
    queue_name: str,
    queue_id: str,
    *,
    hash_queue_names: str | Iterable[str] = DEFAULT_HASH_QUEUE_NAMES,
    hash_queue_depth: int = 1,
) -> str:
    """mail_queue_path(): the path of a queue file relative to queue_directory. Names that
    mail_open_ok() refuses raise `QueueFileMissing`."""
    if not queue_name_ok(queue_name):
        raise QueueFileMissing(f"bad mail queue name: {queue_name!r}", path=queue_name)
    if not queue_id_ok(queue_id):
        raise QueueFileMissing(f"bad mail queue ID: {queue_id!r}", path=queue_id)
    if hash_queue_depth < 1:
        raise ValueError(f"hash_queue_depth must be at least 1, not {hash_queue_depth}")
    if queue_name.lower() not in _names(hash_queue_names):
        return f"{queue_name}/{queue_id}"
    # dir_forest(): one directory per level, "_" when the name is too short.
    source = _hash_source(queue_id).ljust(hash_queue_depth, "_")
    forest = "".join(f"{c}/" for c in source[:hash_queue_depth])
    return f"{queue_name}/{forest}{queue_id}"


class QueueFile:
    """An open, share-locked queue file. Closing it releases the lock."""

    __slots__ = ("fd", "path", "queue_id", "queue_name")

    def __init__(self, fd: int, path: str, queue_name: str, queue_id: str) -> None:
        self.fd = fd
        self.path = path
        self.queue_name = queue_name
        self.queue_id = queue_id

    def content(self, data_offset: int, *, block_size: int = 65536) -> RecordContent:
        """The message content from `data_offset` (the request's ``offset``)."""
        return RecordContent(self.fd, data_offset, path=self.path, block_size=block_size)

    def mark_done(self, offset: int) -> None:
        """Mark the recipient whose R record is at `offset` done (-1: nothing to do)."""
        mark_done(self.fd, offset, path=self.path)

    def mark_corrupt(self) -> None:
        """mark_corrupt(): mode 0400, so that qmgr moves the file to the corrupt queue."""
        try:
            os.fchmod(self.fd, _CORRUPT_MODE)
        except OSError as exc:
            raise QueueFileUpdateError(
                f"fchmod {self.path}: {exc.strerror}", path=self.path, errno=exc.errno or 0
            ) from exc

    @property
    def closed(self) -> bool:
        return self.fd < 0

    def close(self) -> None:
        fd, self.fd = self.fd, -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> QueueFile:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _check_ready(path: str, queue_name: str, queue_id: str) -> None:
    """The lstat() half of mail_open_ok()."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        where = f"open {queue_name} {queue_id}" if exc.errno == errno.ENOENT else path
        raise QueueFileMissing(f"{where}: {exc.strerror}", path=path, errno=exc.errno or 0) from exc
    if not stat.S_ISREG(st.st_mode):
        raise QueueFileMissing(f"{path}: uid {st.st_uid}: not a regular file", path=path)
    mode = st.st_mode & stat.S_IRWXU
    if mode != _READY_MODE:
        raise QueueFileMissing(
            f"{path}: owner permissions {mode:04o} are not those of a ready queue file (0700)",
            path=path,
        )


def open_queue_file(
    queue_name: str,
    queue_id: str,
    *,
    queue_directory: str | os.PathLike[str] | None = None,
    hash_queue_names: str | Iterable[str] = DEFAULT_HASH_QUEUE_NAMES,
    hash_queue_depth: int = 1,
) -> QueueFile:
    """Open and share-lock the queue file of a request, as deliver_request_get() does.
    `queue_directory` None: the current directory (where master(8) starts its children)."""
    relative = queue_path(
        queue_name,
        queue_id,
        hash_queue_names=hash_queue_names,
        hash_queue_depth=hash_queue_depth,
    )
    path = relative if queue_directory is None else os.path.join(queue_directory, relative)
    _check_ready(path, queue_name, queue_id)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError as exc:
        kind = QueueFileMissing if exc.errno == errno.ENOENT else QueueFileOpenError
        raise kind(
            f"open {queue_name} {queue_id}: {exc.strerror}", path=path, errno=exc.errno or 0
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError as exc:
        os.close(fd)
        raise QueueFileOpenError(
            f"shared lock {path}: {exc.strerror}", path=path, errno=exc.errno or 0
        ) from exc
    return QueueFile(fd, path, queue_name, queue_id)


def mark_done(fd: int, offset: int, *, path: str = "queue file") -> None:
    """deliver_completed(): overwrite the type byte of the recipient record at `offset`
    with D (no fsync, as Postfix). -1 means "not to be marked". The byte must be R (or
    already D: nothing is written): anything else means the offset is wrong, and writing
    there would damage the file."""
    if offset == -1:
        return
    if offset <= 0:
        raise QueueFileUpdateError(f"update queue file {path}: bad offset {offset}", path=path)
    try:
        found = os.pread(fd, 1, offset)
        if found == b"D":
            return
        if found != b"R":
            what = f"record type {found.decode('latin-1')!r}" if found else "end of file"
            raise QueueFileUpdateError(
                f"update queue file {path}: offset {offset} holds {what}, not a recipient (R)",
                path=path,
            )
        if os.pwrite(fd, b"D", offset) != 1:
            raise OSError(errno.EIO, "short write")
    except OSError as exc:
        raise QueueFileUpdateError(
            f"update queue file {path}: {exc.strerror}", path=path, errno=exc.errno or 0
        ) from exc

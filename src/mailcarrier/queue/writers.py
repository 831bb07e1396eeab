"""Writing queue files: a new message (`MessageWriter`) and the state records of one
(`RecordWriter`), crash-safe, and without leaving anything half done when the local system
fails.

A new message is written to a dot-file in incoming/, fsynced, renamed to its queue ID and
the directory fsynced (durable.py's `AtomicFile`, with crash points between the steps): only
then is it acknowledged. A full disk or quota (ENOSPC, EDQUOT) or a read-only or unwritable
directory (EROFS, EACCES) removes the dot-file and raises one `TemporaryError` naming the
file and the error in Postfix's words ("queue file write error: PATH: reason"). Records are
written after the content; before a delivery, space for them is reserved in the file, so
that a full disk stops a delivery before it starts rather than after the server has the
message ("update queue file PATH: reason"). The file format is qfile.py's; the
directories, reading and moving are spool.py's.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Final

from mailcarrier.durable import AtomicFile
from mailcarrier.errors import TemporaryError
from mailcarrier.queue.crash import crash_point
from mailcarrier.queue.qfile import SIZE_WIDTH, Envelope, render_envelope, size_field_offset

__all__ = ["MessageWriter", "RecordWriter", "os_error", "record_reserve"]

_CHUNK: Final = 65536

# Space reserved for the delivery records of one recipient: a status record holds the
# relay and the server's reply (percent-encoded); 512 bytes covers the usual reply. A longer
# record is still written, beyond the reservation, and only then can a full disk fail it.
RECORD_RESERVE: Final = 512
_RESERVE_CAP: Final = 64 * 1024


def record_reserve(pending: int, recipients: int) -> int:
    """Bytes to reserve before delivering `pending` of `recipients` recipients: a status
    record per pending one and a ``notified`` record per recipient, at most 64 KiB."""
    return min(_RESERVE_CAP, RECORD_RESERVE * pending + 16 * recipients + 64)


def os_error(what: str, path: str | Path, exc: OSError) -> TemporaryError:
    """One line for an OSError: ``what path: strerror`` (Postfix: "%s %s: %m")."""
    reason = exc.strerror or str(exc)
    return TemporaryError(f"{what} {path}: {reason}", path=str(path), errno=exc.errno or 0)


class RecordWriter:
    """Writes state records into one queue file, after its content.

    Records are written at once and made durable (fsync) by `close()`, which runs before a
    message stays in the queue (deferred, back to incoming, held). A message that is removed
    because every recipient is done needs no fsync: a crash can only leave the file behind,
    and then recovery delivers what it does not show as done; at worst a recipient gets a
    second copy, the window issue 8 allows. This is Postfix's own durability for delivery
    records (written, not fsynced), and it keeps fsync off the hot path of delivery.

    `reserve` bytes of NULs are written after the records first: later records overwrite
    them in place, so writing them needs no new disk space (on file systems that overwrite
    in place, as ext4, xfs and tmpfs do). Readers see the NULs as a torn final line and
    ignore them; `close()` cuts them off. Any OSError becomes a `TemporaryError`
    ("update queue file PATH: reason").
    """

    def __init__(
        self,
        path: Path | str,
        valid_length: int,
        *,
        fd: int = -1,
        reserve: int = 0,
        size: int = -1,
    ) -> None:
        """Open `path` for writing, or adopt `fd` (open for writing) when given; an adopted
        descriptor is not closed when this fails. `size`: the file's size when the caller
        has just seen it (no fstat then)."""
        self.path = str(path)
        self.offset = valid_length  # where the next record goes
        self.end = valid_length  # the end of the file as written here
        self.dirty = False
        own = fd < 0
        try:
            self.fd = os.open(path, os.O_WRONLY) if own else fd
        except OSError as exc:
            raise os_error("update queue file", path, exc) from exc
        try:
            # Cut off a torn record (or an old reservation) before writing after it.
            if (size if size >= 0 else os.fstat(self.fd).st_size) != valid_length:
                os.ftruncate(self.fd, valid_length)
            if reserve > 0:
                _pwrite_all(self.fd, bytes(reserve), valid_length)
                self.end = valid_length + reserve
        except OSError as exc:
            with contextlib.suppress(OSError):  # give back what was reserved
                os.ftruncate(self.fd, valid_length)
            if own:
                os.close(self.fd)
            self.fd = -1
            raise os_error("update queue file", self.path, exc) from exc

    def append(self, record: bytes) -> None:
        try:
            _pwrite_all(self.fd, record, self.offset)
        except OSError as exc:
            raise os_error("update queue file", self.path, exc) from exc
        self.offset += len(record)
        self.end = max(self.end, self.offset)
        self.dirty = True

    def release(self) -> None:
        """Give back the unused reservation (the file ends after the last record)."""
        if self.fd >= 0 and self.end > self.offset:
            try:
                os.ftruncate(self.fd, self.offset)
            except OSError as exc:
                raise os_error("update queue file", self.path, exc) from exc
            self.end = self.offset

    def close(self, *, sync: bool = True) -> None:
        """Close, first making the records durable unless the file is about to be removed.
        A message that stays queued gives back its unused reservation first."""
        if self.fd < 0:
            return
        try:
            if sync:
                self.release()
                if self.dirty:
                    os.fsync(self.fd)
        except OSError as exc:
            raise os_error("update queue file", self.path, exc) from exc
        finally:
            os.close(self.fd)
            self.fd = -1


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    n = os.pwrite(fd, data, offset)
    if n == len(data):  # a regular file takes it all at once (short only when full)
        return
    view = memoryview(data)[n:]
    offset += n
    while view:
        n = os.pwrite(fd, view, offset)
        view = view[n:]
        offset += n


class MessageWriter:
    """Writes one new message into incoming/; `commit()` makes it durable and returns its ID.

    Used as a context manager: leaving the block without `commit()` removes the temporary
    file, so nothing partial is ever queued. A failure to create, write, fsync or rename the
    file (a full disk, a read-only queue) removes it too and raises `TemporaryError`
    ("queue file write error: PATH: reason", Postfix's words for cleanup's write status).
    """

    def __init__(self, root: Path, envelope: Envelope) -> None:
        """A new message for the queue whose directory is `root`."""
        self.envelope = envelope
        self.queue_id = envelope.queue_id
        incoming = root / "incoming"
        self.tmp = incoming / f".{self.queue_id}.tmp"
        self.header = render_envelope(envelope)
        self.size = 0
        self.encoding = envelope.encoding
        self.committed = False
        try:
            # A dot-file that the final name replaces (durable.py); `new`: a queue file
            # whose directory cannot be fsynced is not queued at all.
            final = incoming / self.queue_id
            self.out = AtomicFile(final, temporary=self.tmp, mode=0o600, new=True)
        except OSError as exc:
            raise self._error(exc) from exc
        self.file = self.out.file
        try:
            self.file.write(self.header)
        except OSError as exc:
            self.abort()
            raise self._error(exc) from exc

    def _error(self, exc: OSError) -> TemporaryError:
        return os_error("queue file write error:", self.tmp, exc)

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as exc:
            raise self._error(exc) from exc
        self.size += len(data)

    def copy_from(self, src: Callable[[int], bytes], limit: int | None = None) -> None:
        """Copy from a `read(n)` function in bounded chunks (up to `limit` bytes)."""
        left = limit
        while left is None or left > 0:
            block = src(_CHUNK if left is None else min(_CHUNK, left))
            if not block:
                break
            self.write(block)
            if left is not None:
                left -= len(block)

    def set_encoding(self, encoding: str) -> None:
        """Declare the body 7bit or 8bit after streaming it (same width: patched in place)."""
        if encoding not in ("7bit", "8bit"):
            raise ValueError(encoding)
        self.encoding = encoding

    def commit(self) -> str:
        try:
            return self._commit()
        except OSError as exc:
            raise self._error(exc) from exc

    def _commit(self) -> str:
        if self.encoding != self.envelope.encoding:
            self.file.seek(self.header.index(b"\nbody ") + len(b"\nbody "))
            self.file.write(self.encoding.encode())
        self.file.seek(size_field_offset(self.header))
        self.file.write(f"{self.size:0{SIZE_WIDTH}d}".encode())
        self.out.flush()
        crash_point("enqueue-after-write")
        self.out.sync()
        crash_point("enqueue-before-rename")
        self.out.publish()
        self.committed = True
        crash_point("enqueue-after-rename")
        return self.queue_id

    def abort(self) -> None:
        """Drop the temporary file. Never raises: closing may fail to flush what a full
        disk did not take, and the file goes anyway."""
        self.out.abort()

    def __enter__(self) -> MessageWriter:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.committed:
            self.abort()

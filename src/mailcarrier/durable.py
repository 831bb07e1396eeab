"""Files that appear whole or not at all, and survive a crash once written: `AtomicFile`.

A file is written under a temporary name in the directory of its final name, flushed,
fsynced, closed, renamed to its final name and the directory fsynced; only then is it
durable (a crash at any instant leaves the old file or the new one, never part of one).
`write_atomically(path, data)` does all of it for data at hand; `create_once(path, data)` does
it only when no file has the name yet (link(2) instead of rename: of processes racing to make
the same file, one wins and the others read its content); `AtomicFile` does it step
by step for a writer that streams (queue/writers.py: a message of any size, with a crash
point between the steps) or lets another library fill the file by name (tables/build.py:
Berkeley DB and LMDB files). `fsync_dir(path)` makes renames and new names in a directory durable
(queue/spool.py's moves). Errors are the `OSError`s of the system calls: the callers say
in their own words what failed (a full disk is a `TemporaryError` in the queue, a failed
``conf -e`` is a configuration error). This module imports nothing of the package.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

__all__ = ["AtomicFile", "create_once", "fsync_dir", "write_atomically"]

StrPath = str | os.PathLike[str]


def fsync_dir(path: StrPath) -> None:
    """Make the names in directory `path` durable (after a rename or a new file)."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class AtomicFile:
    """A new version of `target`, written under a temporary name beside it.

    `file` is open for writing (buffered, binary). The steps: `flush()`, `sync()` (fsync and
    close), `publish()` (rename over `target`, fsync the directory); `commit()` runs all
    three. Leaving a `with` block without `publish()` (or calling `abort()`) removes the
    temporary file, so a failure leaves nothing behind.

    `temporary` names the temporary file (it must not exist: it is created exclusively);
    without it, a unique dot-name ``.<prefix>XXXXXXXX<suffix>`` is made. `mode` sets the
    permissions (without it, those of a temporary file: 0600). With `new`, `target` must be
    a name that did not exist (a queue file): when the directory cannot be fsynced, the
    file is removed again, since it is not known to be durable. Without `new`, `target` is
    replaced (main.cf, a table index) and stays in place in that case: the old version is
    gone already.
    """

    def __init__(
        self,
        target: StrPath,
        *,
        temporary: StrPath | None = None,
        prefix: str = ".",
        suffix: str = ".tmp",
        mode: int | None = None,
        new: bool = False,
    ) -> None:
        self.target = Path(target)
        self.new = new
        self.published = False
        if temporary is None:
            import tempfile  # not for a named temporary file (the queue's): it loads shutil

            fd, name = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=self.target.parent)
            self.path = Path(name)
            self.file: BinaryIO = os.fdopen(fd, "wb")
        else:
            self.path = Path(temporary)
            self.file = open(self.path, "xb")  # noqa: SIM115 - closed by sync() or abort()
        if mode is not None:
            try:
                os.chmod(self.path, mode)
            except BaseException:
                self.abort()
                raise

    def write(self, data: bytes) -> None:
        self.file.write(data)

    def flush(self) -> None:
        """Hand what is buffered to the kernel (not yet durable)."""
        self.file.flush()

    def sync(self) -> None:
        """Flush, fsync and close the temporary file: its content is durable."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()

    def publish(self) -> None:
        """Rename the (synced) temporary file to `target` and fsync the directory."""
        os.rename(self.path, self.target)  # replaces `target` atomically (POSIX rename(2))
        self.published = True
        try:
            fsync_dir(self.target.parent)
        except OSError:
            if self.new:  # not known to be durable: not there either
                with contextlib.suppress(OSError):
                    os.unlink(self.target)
                self.published = False
            raise

    def commit(self) -> None:
        self.sync()
        self.publish()

    def abort(self) -> None:
        """Drop the temporary file. Never raises: closing may fail to flush what a full
        disk did not take, and the file goes anyway."""
        if not self.file.closed:
            with contextlib.suppress(OSError):
                self.file.close()
        if not self.published:
            with contextlib.suppress(OSError):
                os.unlink(self.path)

    def __enter__(self) -> AtomicFile:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self.published:
            self.abort()


def write_atomically(
    path: StrPath, data: bytes, *, mode: int | None = None, prefix: str = ".", suffix: str = ".tmp"
) -> None:
    """Replace (or create) the file at `path` with `data`, durably (see the module text)."""
    with AtomicFile(path, mode=mode, prefix=prefix, suffix=suffix) as out:
        out.write(data)
        out.commit()


def create_once(path: StrPath, data: bytes, *, prefix: str = ".", suffix: str = ".tmp") -> bool:
    """Create the file at `path` with `data`, durably, unless a file has that name already:
    then nothing changes and the answer is False. The content is synced before the name
    appears (link(2) of the synced temporary file), so a reader never sees part of it."""
    with AtomicFile(path, prefix=prefix, suffix=suffix) as out:
        out.write(data)
        out.sync()
        try:
            os.link(out.path, out.target)
        except FileExistsError:
            return False
        out.abort()  # the temporary name only: the content keeps the name `path`
        fsync_dir(out.target.parent)
        return True

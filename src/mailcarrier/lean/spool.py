"""The lean path's queue: IDs, directories and one new queue file, as queue/ has them.

`new_id()` is queue/spool.py `Spool.new_id` (queue/ids.py's IDs: `new_queue_id`),
`ensure()` is `Spool.ensure`, and `QueueFile` is queue/writers.py `MessageWriter` over
durable.py `AtomicFile`: a dot-file in incoming/ (mode 0600), the size and body type patched
in place, flushed, fsynced, renamed to the queue ID, the directory fsynced (the file removed
again when that fails), with queue/crash.py's crash points between the steps
(``MAILCARRIER_CRASH_AT``). A failure once the file exists is `Failed`, with cli.py's line
for TemporaryError ("queue file write error: PATH: reason", exit 75). Used by
lean/submit.py; it imports nothing of mailcarrier outside lean/.
"""

from __future__ import annotations

import io
import os
import time

from mailcarrier.lean.message import SIZE_WIDTH

TYPE_CHECKING = False  # typing is not imported at run time (see lean/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "EX_TEMPFAIL",
    "QUEUES",
    "Failed",
    "QueueFile",
    "crash_point",
    "ensure",
    "new_id",
    "new_queue_id",
    "quietly",
]

QUEUES = ("incoming", "active", "deferred", "hold", "corrupt")  # queue/spool.py
_DIGITS = "0123456789BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy"  # queue/ids.py
_CRASH_AT = os.environ.get("MAILCARRIER_CRASH_AT", "")  # queue/crash.py CRASH_ENV
_SIGKILL = 9  # POSIX; signal.SIGKILL without importing signal (it makes enums)
EX_TEMPFAIL = 75


class Failed(Exception):
    """One of the two errors the lean path reports itself: (exit code, line)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code
        self.text = text


def new_queue_id(now: float, random: bytes) -> str:
    """queue/ids.py `new_queue_id(now)` with `random` as its five bytes of os.urandom()."""
    return _encode(int(now * 1_000_000), 10) + "z" + _encode(int.from_bytes(random, "big"), 5)


def _encode(value: int, width: int) -> str:
    out = []
    for _ in range(width):
        value, rem = divmod(value, len(_DIGITS))
        out.append(_DIGITS[rem])
    return "".join(reversed(out))


def new_id(root: str) -> str:
    """queue/spool.py `Spool.new_id`: an ID that no queue holds."""
    while True:
        queue_id = new_queue_id(time.time(), os.urandom(5))
        if not any(os.path.exists(f"{root}/{queue}/{queue_id}") for queue in QUEUES):
            return queue_id


def ensure(root: str) -> bool:
    """queue/spool.py `Spool.ensure`; False when a directory cannot be made."""
    try:
        for name in QUEUES:
            os.makedirs(f"{root}/{name}", mode=0o700, exist_ok=True)
    except OSError:
        return False
    return True


def crash_point(name: str) -> None:
    """queue/crash.py `crash_point`."""
    if _CRASH_AT and name == _CRASH_AT:
        os.kill(os.getpid(), _SIGKILL)


def quietly(call: Callable[..., object], *args: str) -> None:
    """`call(*args)`, an OSError ignored: contextlib.suppress without loading contextlib
    (with collections and functools) for it."""
    try:  # noqa: SIM105 - see above
        call(*args)
    except OSError:
        pass


class QueueFile:
    """queue/writers.py `MessageWriter` over durable.py `AtomicFile`: a new queue file."""

    def __init__(self, root: str, queue_id: str, envelope: bytes, file: io.BufferedWriter) -> None:
        self.tmp = f"{root}/incoming/.{queue_id}.tmp"
        self.final = f"{root}/incoming/{queue_id}"
        self.directory = f"{root}/incoming"
        self.envelope = envelope
        self.file = file
        self.size = 0
        self.published = False

    @classmethod
    def create(cls, root: str, queue_id: str, envelope: bytes) -> QueueFile | None:
        """The file, its envelope written; None when it cannot be made (the general path
        then tries, and says why)."""
        tmp = f"{root}/incoming/.{queue_id}.tmp"
        try:
            file = open(tmp, "xb")  # noqa: SIM115 - closed by commit() or __exit__
        except OSError:
            return None
        out = cls(root, queue_id, envelope, file)
        try:
            os.chmod(tmp, 0o600)
            file.write(envelope)
        except OSError:
            out.abort()
            return None
        return out

    def _error(self, exc: OSError) -> Failed:
        reason = exc.strerror or str(exc)
        return Failed(EX_TEMPFAIL, f"queue file write error: {self.tmp}: {reason}")

    def write(self, data: bytes) -> None:
        try:
            self.file.write(data)
        except OSError as exc:
            raise self._error(exc) from exc
        self.size += len(data)

    def commit(self, *, eight_bit: bool) -> None:
        try:
            self._commit(eight_bit)
        except OSError as exc:
            raise self._error(exc) from exc

    def _commit(self, eight_bit: bool) -> None:
        if eight_bit:
            self.file.seek(self.envelope.index(b"\nbody ") + len(b"\nbody "))
            self.file.write(b"8bit")
        self.file.seek(self.envelope.rindex(b"size ") + len(b"size "))
        self.file.write(f"{self.size:0{SIZE_WIDTH}d}".encode())
        self.file.flush()
        crash_point("enqueue-after-write")
        os.fsync(self.file.fileno())
        self.file.close()
        crash_point("enqueue-before-rename")
        os.rename(self.tmp, self.final)
        self.published = True
        try:
            fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            # Not known to be durable: not there either (durable.py, `new`).
            quietly(os.unlink, self.final)
            self.published = False
            raise
        crash_point("enqueue-after-rename")

    def abort(self) -> None:
        """durable.py `AtomicFile.abort`: close, remove the dot-file; never raises."""
        if not self.file.closed:
            quietly(self.file.close)
        if not self.published:
            quietly(os.unlink, self.tmp)

    def __enter__(self) -> QueueFile:
        return self

    def __exit__(self, *exc_info: object) -> None:
        if not self.published:
            self.abort()

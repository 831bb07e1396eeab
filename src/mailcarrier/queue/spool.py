"""The spool: queue directories on local disk, with crash-safe writes and moves.

Layout (as Postfix's): ``incoming/`` (complete new messages), ``active/`` (owned by the
running scheduler), ``deferred/`` (waiting; the file's mtime is the time of the next attempt,
as in Postfix), ``hold/`` (kept until released) and ``corrupt/`` (files that cannot be parsed).
A message is written to a dot-file in incoming/, fsynced, renamed to its queue ID and the
directory fsynced: only then is it acknowledged. Moves are rename + fsync of both directories.
State records are appended and fsynced (`RecordWriter`). Reading a message reads its envelope
and state records, never its content. File format: qfile.py; writing files: writers.py;
scheduling: scheduler.py.

The local system can fail: a full disk or quota (ENOSPC, EDQUOT), a read-only or unwritable
directory (EROFS, EACCES). Every such OSError becomes one `TemporaryError` naming the file
and the error, and nothing is left half done: a message that cannot be taken into active/
(opened for writing, given room for its records, renamed) stays where it was, as it was.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Final

from mailcarrier.aio import EndOfTurn
from mailcarrier.config.settings import Settings
from mailcarrier.durable import fsync_dir
from mailcarrier.errors import TemporaryError
from mailcarrier.log import LogSink, NullLog
from mailcarrier.queue.ids import new_queue_id
from mailcarrier.queue.names import QMGR
from mailcarrier.queue.params import QueueParams
from mailcarrier.queue.qfile import (
    MAX_ENVELOPE,
    Envelope,
    ParseError,
    StateLog,
    parse_envelope,
    parse_records,
)
from mailcarrier.queue.writers import MessageWriter, RecordWriter, os_error, record_reserve
from mailcarrier.status import DeliveryStatus, fast_init

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

__all__ = [
    "QUEUES",
    "MessageWriter",
    "QueueMessage",
    "RecordWriter",
    "Spool",
    "open_spool",
    "record_reserve",
]

QUEUES: Final = ("incoming", "active", "deferred", "hold", "corrupt")
_CHUNK: Final = 65536
_Removal = tuple[str, str, Callable[[], None]]  # queue ID, path, what to do once removed


@fast_init
@dataclass(frozen=True, slots=True)
class QueueMessage:
    """A message as the queue sees it: where it is, its envelope and its recorded state."""

    queue: str
    name: str  # the file's path (`path`: as a Path, made when asked)
    envelope: Envelope
    state: StateLog
    mtime: float
    origin: str = ""  # the queue a message in active/ came from ("" when not taken)
    # Its content, when `Spool.take` was asked to keep it and the first read held it whole.
    content: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def queue_id(self) -> str:
        return self.envelope.queue_id

    @property
    def path(self) -> Path:
        return Path(self.name)

    def pending(self) -> list[int]:
        """Recipients with no final verdict yet (`pending`)."""
        return pending(self.envelope, self.state)


def pending(env: Envelope, state: StateLog) -> list[int]:
    """Recipients with no final verdict yet. Every verdict of an address probe is final
    (Postfix's trace_append() marks the recipient done, deferred or not)."""
    count = len(env.recipients)
    if not state.states:  # no verdict recorded yet (most messages): every recipient
        return list(range(count))
    states = state.states
    if env.probe:
        return [i for i in range(count) if i not in states]
    deferred = DeliveryStatus.DEFERRED  # `state.is_final(i)`, without a call per recipient
    return [i for i in range(count) if i not in states or states[i].status is deferred]


class Spool:
    """One queue directory tree. Injected: a wall clock (for IDs and retry times) and a log."""

    def __init__(
        self,
        root: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        log: LogSink | None = None,
    ) -> None:
        self.root = Path(root)
        self._base = str(self.root)
        self.clock = clock
        self.log: LogSink = log if log is not None else NullLog()
        self.removing: set[str] = set()
        # Removals of this event-loop turn (queue ID, path, then), started together at its
        # end (aio.py); those that came while a batch ran, for the next one; the batch
        # running on the helper thread (one at a time).
        self._unlink_batch: EndOfTurn[_Removal] = EndOfTurn(self._start_unlinks)
        self._unlink_next: list[_Removal] = []
        self._unlinks: set[asyncio.Future[list[str | None]]] = set()
        self._unlinker: ThreadPoolExecutor | None = None

    def ensure(self) -> Spool:
        """Create the queue directories (private to the user) if they do not exist."""
        for name in QUEUES:
            path = self.root / name
            try:
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
            except OSError as exc:
                raise os_error("create queue directory", path, exc) from exc
        return self

    # --- writing ----------------------------------------------------------------------
    def create(self, envelope: Envelope) -> MessageWriter:
        """Start a new message; `envelope.queue_id` empty means: assign one now."""
        if not envelope.queue_id:
            from dataclasses import replace

            envelope = replace(envelope, queue_id=self.new_id())
        return MessageWriter(self.root, envelope)

    def new_id(self) -> str:
        while True:
            queue_id = new_queue_id(self.clock())
            if self.find(queue_id) is None:
                return queue_id

    # --- finding ----------------------------------------------------------------------
    def path(self, queue: str, queue_id: str) -> Path:
        return Path(self._name(queue, queue_id))

    def _name(self, queue: str, queue_id: str) -> str:
        # Plain strings on the hot path: a pathlib join costs more than the system call.
        return f"{self._base}/{queue}/{queue_id}"

    def ids(self, queue: str) -> list[str]:
        """Queue IDs in one queue, oldest first (IDs sort by time); temp files excluded."""
        try:
            names = os.listdir(self.root / queue)
        except FileNotFoundError:
            return []
        return sorted(n for n in names if not n.startswith("."))

    def due(self, queue: str, now: float) -> list[str]:
        """IDs whose next-attempt time (mtime) has come."""
        out = []
        for queue_id in self.ids(queue):
            try:
                if os.stat(self._name(queue, queue_id)).st_mtime <= now:
                    out.append(queue_id)
            except FileNotFoundError:
                continue
        return out

    def find(self, queue_id: str) -> str | None:
        """The queue holding `queue_id`, or None."""
        if not queue_id or "/" in queue_id or queue_id.startswith("."):
            return None
        for queue in QUEUES:
            if os.path.exists(self._name(queue, queue_id)):
                return queue
        return None

    # --- reading ----------------------------------------------------------------------
    def read(self, queue: str, queue_id: str) -> QueueMessage:
        """Envelope and state of one message (not its content). Raises ParseError when the
        file is damaged and FileNotFoundError when it is gone."""
        name = self._name(queue, queue_id)
        fd = os.open(name, os.O_RDONLY)
        try:
            st = os.fstat(fd)
            env, state, _ = _load(fd, queue_id, st.st_size)
        finally:
            os.close(fd)
        return QueueMessage(queue, name, env, state, st.st_mtime)

    def take(
        self, queue: str, queue_id: str, *, content_up_to: int = 0
    ) -> tuple[QueueMessage, RecordWriter] | None:
        """Read a message, reserve space for its delivery records and move it into active/,
        keeping its file open for the records (one open, not two). None when it is gone or
        was quarantined (damaged). `TemporaryError` when it cannot be opened for writing,
        the reservation fails (a full disk) or the move fails: then it stays where it was,
        as it was. A content of at most `content_up_to` bytes that the first read held
        whole is kept in the message (`QueueMessage.content`)."""
        name = self._name(queue, queue_id)
        try:
            fd = os.open(name, os.O_RDWR)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise os_error("open queue file", name, exc) from exc
        try:
            return self._take(fd, queue, queue_id, name, content_up_to)
        except FileNotFoundError:
            os.close(fd)
            return None
        except ParseError as exc:
            os.close(fd)
            self.quarantine(queue, queue_id, str(exc))
            return None
        except BaseException:
            os.close(fd)
            raise

    def _take(
        self, fd: int, queue: str, queue_id: str, name: str, content_up_to: int
    ) -> tuple[QueueMessage, RecordWriter]:
        st = os.fstat(fd)  # one for all: the size read, the records' end, the old times
        env, state, content = _load(fd, queue_id, st.st_size, content_up_to)
        reserve = record_reserve(len(pending(env, state)), len(env.recipients))
        active = self._name("active", queue_id)
        try:
            records = RecordWriter(
                name, state.valid_length, fd=fd, reserve=reserve, size=st.st_size
            )
            self._rename_file(name, active, queue, "active", None)
            records.path = active
        except (TemporaryError, FileNotFoundError):
            # Stays where it was, as it was: no reservation, the same next-attempt time.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, state.valid_length)
                os.utime(fd, ns=(st.st_atime_ns, st.st_mtime_ns))
            raise
        taken = QueueMessage("active", active, env, state, st.st_mtime, queue, content)
        return taken, records

    def read_or_quarantine(self, queue: str, queue_id: str) -> QueueMessage | None:
        """`read`, moving a damaged file to corrupt/ with a log line (None when gone too)."""
        try:
            return self.read(queue, queue_id)
        except FileNotFoundError:
            return None
        except ParseError as exc:
            self.quarantine(queue, queue_id, str(exc))
            return None

    def quarantine(self, queue: str, queue_id: str, reason: str) -> None:
        self.log.warning(QMGR, f"{queue}/{queue_id}: {reason}: moved to corrupt queue")
        try:
            self.move(queue_id, queue, "corrupt")
        except FileNotFoundError:
            pass
        except TemporaryError as exc:
            self.log.warning(QMGR, f"{queue_id}: {exc}")

    def scan(self, queue: str) -> Iterator[QueueMessage]:
        for queue_id in self.ids(queue):
            message = self.read_or_quarantine(queue, queue_id)
            if message is not None:
                yield message

    def records(self, message: QueueMessage) -> RecordWriter:
        return RecordWriter(message.name, message.state.valid_length)

    # --- moving -----------------------------------------------------------------------
    def move(self, queue_id: str, src: str, dst: str, *, mtime: float | None = None) -> Path:
        """Rename a message to another queue, durably; `mtime` sets its next-attempt time.
        FileNotFoundError when it is gone; `TemporaryError` when the file system refuses."""
        return Path(self._rename(queue_id, src, dst, mtime))

    def _rename(self, queue_id: str, src: str, dst: str, mtime: float | None) -> str:
        """`move`, returning the new name as a string (no Path made on the hot path)."""
        return self._rename_file(
            self._name(src, queue_id), self._name(dst, queue_id), src, dst, mtime
        )

    def _rename_file(self, old: str, new: str, src: str, dst: str, mtime: float | None) -> str:
        """`_rename` of the file `old` in `src` to `new` in `dst` (names made already)."""
        try:
            if mtime is not None:
                os.utime(old, (mtime, mtime))
            if src != dst:
                os.rename(old, new)
                if dst != "active":
                    # Into active needs no fsync: after a crash the file is in one queue or
                    # the other, and recovery scans both. Leaving active (deferred, hold,
                    # incoming) is made durable, so a deferral or a hold is not undone by a
                    # crash.
                    fsync_dir(self.root / dst)
                    fsync_dir(self.root / src)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise os_error(f"rename {old} to", new, exc) from exc
        return new

    def remove(self, queue: str, queue_id: str) -> None:
        """Unlink a finished message. No directory fsync: a crash that undoes the unlink
        leaves a file whose durable records say which recipients are done.
        FileNotFoundError when it is gone; `TemporaryError` when the file system refuses."""
        name = self._name(queue, queue_id)
        try:
            os.unlink(name)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise os_error("remove", name, exc) from exc

    def remove_soon(self, queue: str, queue_id: str, then: Callable[[], None]) -> None:
        """`remove`, off the event loop when one is running, then `then()` on the loop.

        Unlinking a file that was fsynced costs the file system a journal transaction
        (tens to hundreds of microseconds on ext4): a draining queue removes a file per
        message, so the unlinks run on a helper thread, batched per event-loop turn (and
        while one batch runs, the next gathers), while deliveries go on. Until then the
        queue ID is in `removing` (recovery leaves it alone); `settle()` waits for all of
        them. A crash before the unlink leaves a file
        whose records show every recipient done: recovery finishes it again. `then` runs
        only when the file was removed (not when it was already gone)."""
        import asyncio  # here, not above: submission never removes, nor loads asyncio

        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            with contextlib.suppress(FileNotFoundError):
                self.remove(queue, queue_id)
                then()
            return
        self.removing.add(queue_id)
        self._unlink_batch.add((queue_id, self._name(queue, queue_id), then), loop)

    def _start_unlinks(self, batch: list[_Removal]) -> None:
        """Hand `batch` to the helper thread; while it unlinks one batch, what comes waits
        and goes as the next, one batch: a wake-up of the thread and of the loop per batch,
        and batches grow when the thread is slower than the turns of the loop."""
        if self._unlinks:
            self._unlink_next += batch
            return
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        loop = asyncio.get_running_loop()
        if self._unlinker is None:
            self._unlinker = ThreadPoolExecutor(1, thread_name_prefix="mailcarrier-unlink")
        future = loop.run_in_executor(self._unlinker, _unlink_all, [p for _, p, _ in batch])
        self._unlinks.add(future)

        def done(fut: asyncio.Future[list[str | None]]) -> None:
            self._unlinks.discard(fut)
            results = fut.result() if not fut.cancelled() and fut.exception() is None else []
            for (_, path, then), error in zip(batch, results, strict=False):
                if error is None:
                    then()
                elif error:
                    self.log.warning(QMGR, f"remove {path}: {error}")
            for queue_id, _, _ in batch:
                self.removing.discard(queue_id)
            if self._unlink_next:
                waiting, self._unlink_next = self._unlink_next, []
                self._start_unlinks(waiting)

        future.add_done_callback(done)

    async def settle(self) -> None:
        """Wait until every removal started by `remove_soon` has run."""
        import asyncio

        while self._unlink_batch or self._unlinks or self._unlink_next:
            if self._unlinks:
                await asyncio.wait(set(self._unlinks))
            else:
                await asyncio.sleep(0)

    def clean_temporary(self, older_than: float = 3600.0) -> int:
        """Remove dot-files in incoming/ left by a submission that crashed (a file that
        cannot be removed is logged and left)."""
        removed = 0
        now = time.time()
        for name in os.listdir(self.root / "incoming"):
            path = self.root / "incoming" / name
            if name.startswith(".") and name.endswith(".tmp"):
                try:
                    if now - path.stat().st_mtime >= older_than:
                        path.unlink()
                        removed += 1
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    self.log.warning(QMGR, f"remove {path}: {exc.strerror or exc}")
        return removed


def _load(
    fd: int, queue_id: str, size: int, content_up_to: int = 0
) -> tuple[Envelope, StateLog, bytes | None]:
    """Envelope and state records of the open queue file `fd` of `size` bytes (one read
    for a small message), and the content when the read held it whole and it is at most
    `content_up_to` bytes (else None). ParseError when it is damaged or not `queue_id`'s."""
    data = os.read(fd, _CHUNK)
    while b"\ncontent\n" not in data:
        block = os.read(fd, _CHUNK)
        if not block or len(data) > MAX_ENVELOPE:
            raise ParseError("truncated envelope")
        data += block
    env = parse_envelope(data)
    end = env.content_offset + env.size
    if size < end:
        raise ParseError(f"file shorter than its content ({size} < {end})")
    if env.queue_id != queue_id:
        raise ParseError(f"file name {queue_id} does not match queue ID {env.queue_id}")
    content = None
    if len(data) >= size:  # a small message: the first read had it all
        records = data[end:]
        if env.size <= content_up_to:
            content = data[env.content_offset : end]
    else:
        os.lseek(fd, end, os.SEEK_SET)
        chunks = []
        while block := os.read(fd, _CHUNK):
            chunks.append(block)
        records = b"".join(chunks)
    state = parse_records(records)
    state.valid_length += end
    return env, state, content


def _unlink_all(paths: list[str]) -> list[str | None]:
    """Unlink each path (on the helper thread): None where the file was removed, "" where
    it was already gone, else the error."""
    out: list[str | None] = []
    for path in paths:
        try:
            os.unlink(path)
        except FileNotFoundError:
            out.append("")
        except OSError as exc:
            out.append(exc.strerror or str(exc))
        else:
            out.append(None)
    return out


def open_spool(
    settings: Settings, *, log: LogSink | None = None, clock: Callable[[], float] = time.time
) -> Spool:
    """The spool at `queue_directory` (per-user by default), created if missing."""
    return Spool(QueueParams(settings).queue_directory(), clock=clock, log=log).ensure()

"""The TLSRPT counts (RFC 8460): every TLS attempt, per policy domain and UTC day, on disk.

`TlsrptStore` keeps one sqlite3 database, ``$data_directory/tlsrpt.sqlite``: one row per
distinct `Attempt` (day, report and policy domain, policy, result type, addresses, reason
code) with its count, so a day of mail to a big provider stays a few rows. `record()` only
adds to counts in memory; on an event loop they are written together after `interval`
seconds (one transaction with ``synchronous=FULL`` per batch, in a worker thread, so the
loop never waits for an fsync), without one at once. A clean stop writes what is pending:
the agents' stop paths call `aclose()` (or `close()`), and a process that ends without
either writes its stores at exit (atexit). Once written a count is on disk, and a crash at
any instant leaves the count before or after a batch, never a torn file (the same promise
durable.py makes for whole files, which an append-per-attempt does not need). A batch that
cannot be written (`OSError`, `sqlite3.Error`) stays pending, is tried again with the next,
and is reported through `warn` (one line each time); it never stops a delivery. The
database of an older release (no report domain) is converted when opened. It decides
nothing: delivery/tlsrpt_step.py records, and tls/tlsrpt_report.py turns `rows()` into the
report.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import json
import sqlite3
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Final

from mailcarrier.tls.tlsrpt import Attempt

__all__ = ["FILENAME", "FLUSH_INTERVAL", "TlsrptStore"]

FILENAME: Final = "tlsrpt.sqlite"
# Seconds between the batches written on an event loop.
FLUSH_INTERVAL: Final = 1.0

_COLUMN_LIST: Final = (
    "day",
    "report_domain",
    "policy_domain",
    "policy_type",
    "policy_strings",
    "mx_hosts",
    "result_type",
    "sending_ip",
    "receiving_mx",
    "receiving_ip",
    "reason_code",
)
_COLUMNS: Final = ", ".join(_COLUMN_LIST)
_SCHEMA: Final = (
    "CREATE TABLE IF NOT EXISTS attempts ("
    + ", ".join(f"{name} TEXT NOT NULL" for name in _COLUMN_LIST)
    + f", count INTEGER NOT NULL, PRIMARY KEY ({_COLUMNS}))"
)
_UPSERT: Final = (
    f"INSERT INTO attempts ({_COLUMNS}, count) VALUES ({', '.join('?' * 12)}) "
    f"ON CONFLICT ({_COLUMNS}) DO UPDATE SET count = count + excluded.count"
)

# Stores with counts not yet written, written when the process ends (a clean stop that
# did not close them: the API's deliver(), an embedding program).
_UNWRITTEN: weakref.WeakSet[TlsrptStore] = weakref.WeakSet()


@atexit.register
def _write_at_exit() -> None:
    for store in list(_UNWRITTEN):
        with contextlib.suppress(OSError, sqlite3.Error):
            store.close()


def _values(attempt: Attempt, count: int) -> tuple[str | int, ...]:
    return (
        attempt.day,
        attempt.reported_by,
        attempt.policy_domain,
        attempt.policy_type,
        json.dumps(list(attempt.policy_strings)),
        json.dumps(list(attempt.mx_hosts)),
        attempt.result_type,
        attempt.sending_ip,
        attempt.receiving_mx,
        attempt.receiving_ip,
        attempt.reason_code,
        count,
    )


def _convert(db: sqlite3.Connection) -> None:
    """A table without the report domain (its policy domain was the next hop): rebuilt."""
    columns = {str(row[1]) for row in db.execute("PRAGMA table_info(attempts)")}
    if not columns or "report_domain" in columns:
        return
    old = [c for c in _COLUMN_LIST if c != "report_domain"]
    db.execute("BEGIN IMMEDIATE")
    db.execute("ALTER TABLE attempts RENAME TO attempts_old")
    db.execute(_SCHEMA)
    db.execute(
        f"INSERT INTO attempts ({_COLUMNS}, count) SELECT day, policy_domain, "
        f"{', '.join(old[1:])}, count FROM attempts_old"
    )
    db.execute("DROP TABLE attempts_old")
    db.execute("COMMIT")


class TlsrptStore:
    """The counts in ``directory/tlsrpt.sqlite`` (see the module docstring)."""

    def __init__(
        self,
        directory: Path,
        *,
        interval: float = FLUSH_INTERVAL,
        warn: Callable[[str], None] | None = None,
    ) -> None:
        self.path = directory / FILENAME
        self.interval = interval
        self._warn = warn
        self._db: sqlite3.Connection | None = None
        self._lock = threading.Lock()  # the connection is used by worker threads too
        self._pending: dict[Attempt, int] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._writing: asyncio.Task[None] | None = None

    def _open(self) -> sqlite3.Connection:
        if self._db is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                db.execute("PRAGMA synchronous=FULL")
                _convert(db)
                db.execute(_SCHEMA)
            except sqlite3.Error:
                db.close()
                raise
            self._db = db
        return self._db

    # --- counting -----------------------------------------------------------------------
    def record(self, attempt: Attempt, count: int = 1) -> None:
        """Count `attempt` (`count` times): written with the next batch on an event loop,
        at once without one (then an error is raised, the count kept pending)."""
        self._pending[attempt] = self._pending.get(attempt, 0) + count
        _UNWRITTEN.add(self)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if self._timer is None and self._writing is None:
            self._timer = loop.call_later(self.interval, self._start_batch)

    def _start_batch(self) -> None:
        self._timer = None
        self._writing = asyncio.get_running_loop().create_task(self._write_batch())

    async def _write_batch(self) -> None:
        try:
            await self.aflush()
        finally:
            self._writing = None
        if self._pending and self._timer is None:  # counted meanwhile, or not written
            self._timer = asyncio.get_running_loop().call_later(self.interval, self._start_batch)

    def _take(self) -> dict[Attempt, int]:
        batch, self._pending = self._pending, {}
        return batch

    def _restore(self, batch: dict[Attempt, int]) -> None:
        for attempt, count in batch.items():
            self._pending[attempt] = self._pending.get(attempt, 0) + count
        _UNWRITTEN.add(self)

    def _write(self, batch: dict[Attempt, int]) -> None:
        """One transaction for the whole batch (one fsync)."""
        with self._lock:
            db = self._open()
            db.execute("BEGIN IMMEDIATE")
            try:
                db.executemany(_UPSERT, (_values(a, c) for a, c in batch.items()))
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def flush(self) -> None:
        """Write the pending counts now, on this thread; on an error they stay pending."""
        batch = self._take()
        if not batch:
            return
        try:
            self._write(batch)
        except BaseException:
            self._restore(batch)
            raise
        if not self._pending:
            _UNWRITTEN.discard(self)

    async def aflush(self) -> None:
        """Write the pending counts in a worker thread; an error is reported (`warn`), the
        counts stay pending."""
        batch = self._take()
        if not batch:
            return
        try:
            await asyncio.to_thread(self._write, batch)
        except (OSError, sqlite3.Error) as exc:
            self._restore(batch)
            if self._warn is not None:
                total = sum(batch.values())
                self._warn(f"cannot write {total} TLSRPT count(s) to {self.path}: {exc}")
            return
        if not self._pending:
            _UNWRITTEN.discard(self)

    async def aclose(self) -> None:
        """A clean stop on the loop: the batch being written, then the rest, then close."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._writing is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._writing)
        await self.aflush()
        self._close_db()

    def close(self) -> None:
        """Write what is pending (errors raised) and close the database; it reopens when
        used again."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        try:
            self.flush()
        finally:
            self._close_db()

    def _close_db(self) -> None:
        with self._lock:
            if self._db is not None:
                self._db.close()
                self._db = None

    # --- reading ------------------------------------------------------------------------
    def days(self) -> list[str]:
        """The days with counts, oldest first."""
        self.flush()
        if not self.path.exists():
            return []
        with self._lock:
            rows = self._open().execute("SELECT DISTINCT day FROM attempts ORDER BY day")
            return [str(row[0]) for row in rows]

    def rows(self, day: str) -> list[tuple[Attempt, int]]:
        """Every distinct attempt of `day` with its count, in a stable order."""
        self.flush()
        if not self.path.exists():
            return []
        with self._lock:
            found = self._open().execute(
                f"SELECT {_COLUMNS}, count FROM attempts WHERE day = ? ORDER BY {_COLUMNS}",
                (day,),
            )
            return [(_attempt(row), int(row[11])) for row in found]

    def forget(self, day: str) -> None:
        """Drop the counts of `day` (after its reports were sent)."""
        self.flush()
        if self.path.exists():
            with self._lock:
                self._open().execute("DELETE FROM attempts WHERE day = ?", (day,))


def _attempt(row: tuple[object, ...]) -> Attempt:
    report_domain, policy_domain = str(row[1]), str(row[2])
    return Attempt(
        day=str(row[0]),
        policy_domain=policy_domain,
        policy_type=str(row[3]),
        policy_strings=tuple(json.loads(str(row[4]))),
        mx_hosts=tuple(json.loads(str(row[5]))),
        result_type=str(row[6]),
        sending_ip=str(row[7]),
        receiving_mx=str(row[8]),
        receiving_ip=str(row[9]),
        reason_code=str(row[10]),
        report_domain="" if report_domain == policy_domain else report_domain,
    )

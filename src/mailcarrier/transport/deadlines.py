"""How long each wait of a session may take: Postfix's smtp_*_timeout limits, applied per
read or write call, or per request with smtp_per_request_deadline.

Without per-request deadlines (Postfix's default) every read and every drain of a stage gets
that stage's whole time limit, so a server that trickles one byte just inside the limit can
stretch a reply over line-length times the limit. With them (Postfix 3.7's
smtp_per_request_deadline, which the older smtp_per_record_deadline turns on), the limit is
for the whole reply to one command: the time spent waiting for it is added up across reads
and the next read gets only what is left. During the content, the budget is
smtp_data_xfer_timeout, each write of N bytes adds N / smtp_min_data_rate seconds, never
beyond the limit, and the time spent waiting for the socket is taken off.

Only time spent waiting in reads and drains counts, as in Postfix. The clock is injected.
`session.py` and `bdat.py` use this; `connection.py` enforces the one deadline it is given.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Final

from mailcarrier.protocol.stages import Stage
from mailcarrier.transport.connection import Connection
from mailcarrier.transport.options import SessionOptions

__all__ = ["ContentDeadline", "ReplyDeadline"]

# The reply a budget was started for: none yet (the greeting's command is None).
_NOTHING: Final = object()


class ReplyDeadline:
    """Reads of one session, each limited by the stage of the reply it waits for."""

    __slots__ = ("_awaited", "_clock", "_options", "_spent")

    def __init__(
        self, options: SessionOptions, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._options = options
        self._clock = clock
        self._awaited: object = _NOTHING
        self._spent = 0.0

    def read(self, conn: Connection, awaited: object, stage: Stage) -> Awaitable[bytes]:
        """Read for the reply to `awaited` (the command in flight; None: the greeting).
        With a limit per call, the connection's own read is awaited: no coroutine of this
        object's stands between the session and the socket (two reads every message)."""
        limit = self._options.timeout(stage)
        if not self._options.per_request_deadline:
            return conn.read(limit, stage)
        return self._read_within(conn, awaited, stage, limit)

    async def _read_within(
        self, conn: Connection, awaited: object, stage: Stage, limit: float
    ) -> bytes:
        """A read with what is left of the budget for the reply to `awaited`."""
        if awaited is not self._awaited:
            self._awaited = awaited
            self._spent = 0.0
        left = limit - self._spent
        if left <= 0:
            raise conn.timeout_error(stage)
        start = self._clock()
        try:
            return await conn.read(left, stage)
        finally:
            self._spent += self._clock() - start


class ContentDeadline:
    """The writes of one message's content (DATA or BDAT chunks)."""

    __slots__ = ("_clock", "_limit", "_rate", "left", "per_request")

    def __init__(
        self, options: SessionOptions, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._limit = options.timeout(Stage.BODY)
        self._rate = options.min_data_rate
        self._clock = clock
        self.per_request = options.per_request_deadline
        self.left = self._limit

    def sent(self, octets: int) -> None:
        """`octets` of content were written: they earn their time (smtp_min_data_rate)."""
        if self.per_request:
            self.left = min(self._limit, self.left + octets / self._rate)

    async def drain(self, conn: Connection, stage: Stage, limit: float | None = None) -> None:
        """Wait for room in the socket; `limit` replaces the content's own limit when
        deadlines are per call (the final dot's drain has the data-done limit)."""
        if not self.per_request:
            await conn.drain(self._limit if limit is None else limit, stage)
            return
        if self.left <= 0:
            raise conn.timeout_error(stage)
        start = self._clock()
        try:
            await conn.drain(self.left, stage)
        finally:
            self.left -= self._clock() - start

"""Queue administration: what Postfix's mailq/postqueue and postsuper do, on the spool.

`list_queue()` yields one `QueueEntry` per message (envelope and recorded state only, never
the content); `format_mailq()` renders them as mailq does and `QueueEntry.to_json()` as
``postqueue -j`` does. `hold`, `release`, `delete` and `requeue` act on queue IDs or ``ALL``
with durable renames; `flush` makes every deferred message due now and asks a running
scheduler to scan the deferred queue at once. Log lines use postsuper's wording, each with
its ``operator`` event record (events.py; a flush has the record only). A queue
that cannot be written (read-only) stops an action with one `TemporaryError`.
"""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mailcarrier.errors import TemporaryError
from mailcarrier.events import operator_event
from mailcarrier.log import LogSink, NullLog, log_event
from mailcarrier.printable import json_safe, printable
from mailcarrier.queue.daemon import FLUSH_REQUEST
from mailcarrier.queue.names import POSTQUEUE, POSTSUPER
from mailcarrier.queue.spool import Spool

__all__ = ["QueueAdmin", "QueueEntry", "format_mailq"]

_LISTED = ("active", "incoming", "deferred", "hold")
_MARK = {"active": "*", "hold": "!", "incoming": "", "deferred": ""}


@dataclass(frozen=True, slots=True)
class QueueEntry:
    queue: str
    queue_id: str
    size: int
    arrival_time: float
    sender: str
    recipients: tuple[tuple[str, str], ...]  # (address, delay reason or "")

    def to_json(self) -> dict[str, object]:
        """One line of `queue list --json`; strings are JSON-safe (printable.py)."""
        return json_safe(
            {
                "queue_name": self.queue,
                "queue_id": self.queue_id,
                "arrival_time": int(self.arrival_time),
                "message_size": self.size,
                "forced_expire": False,
                "sender": self.sender,
                "recipients": [
                    {"address": a, **({"delay_reason": r} if r else {})} for a, r in self.recipients
                ],
            }
        )


def format_mailq(entries: Iterable[QueueEntry], *, utf8: bool = True) -> str:
    """The mailq listing. Sender, recipients and delay reasons are made printable as
    Postfix's showq does, so a reply stored as a reason cannot forge a line."""
    lines: list[str] = []
    total = 0
    count = 0
    for e in entries:
        if not lines:
            lines.append("-Queue ID-  --Size-- ----Arrival Time---- -Sender/Recipient-------")
        count += 1
        total += e.size
        stamp = time.strftime("%a %b %d %H:%M:%S", time.localtime(e.arrival_time))
        ident = e.queue_id + _MARK[e.queue]
        sender = printable(e.sender, utf8=utf8) or "MAILER-DAEMON"
        lines.append(f"{ident:<11} {e.size:>8} {stamp}  {sender}")
        last_reason = None
        for address, reason in e.recipients:
            if reason and reason != last_reason:
                shown = f"({printable(reason, utf8=utf8)})"
                wrapped = textwrap.wrap(shown, 79 - 20) or [shown]
                lines.extend(" " * 20 + w if i else w for i, w in enumerate(wrapped))
            last_reason = reason
            lines.append(" " * 42 + printable(address, utf8=utf8))
        lines.append("")
    if not count:
        return "Mail queue is empty\n"
    kbytes = (total + 1023) // 1024
    lines.append(f"-- {kbytes} Kbytes in {count} Request{'s' if count != 1 else ''}.")
    return "\n".join(lines) + "\n"


class QueueAdmin:
    def __init__(self, spool: Spool, log: LogSink | None = None) -> None:
        self.spool = spool
        self.log: LogSink = log if log is not None else NullLog()

    def list_queue(self) -> Iterator[QueueEntry]:
        for queue in _LISTED:
            for message in self.spool.scan(queue):
                env = message.envelope
                rcpts = []
                for i in message.pending():
                    state = message.state.states.get(i)
                    rcpts.append((env.recipients[i].address, state.diagnostic if state else ""))
                yield QueueEntry(
                    queue, env.queue_id, env.size, env.arrival_time, env.sender, tuple(rcpts)
                )

    def _select(self, ids: Iterable[str], queues: tuple[str, ...]) -> list[tuple[str, str]]:
        """(queue, id) pairs; ``ALL`` means every message in `queues`."""
        wanted = list(ids)
        if any(i.upper() == "ALL" for i in wanted):
            return [(q, i) for q in queues for i in self.spool.ids(q)]
        out = []
        for queue_id in wanted:
            queue = self.spool.find(queue_id)
            if queue is None or queue not in queues:
                self.log.warning(POSTSUPER, f"{queue_id}: no such message in {', '.join(queues)}")
                continue
            out.append((queue, queue_id))
        return out

    def _each(
        self,
        pairs: list[tuple[str, str]],
        dst: str,
        *,
        mtime: float | None,
        note: str,
        action: str,
    ) -> int:
        done = 0
        for queue, queue_id in pairs:
            try:
                self.spool.move(queue_id, queue, dst, mtime=mtime)
            except FileNotFoundError:
                continue
            event = operator_event(queue_id, action=action, from_queue=queue, to_queue=dst)
            log_event(self.log, POSTSUPER, f"{queue_id}: {note}", event)
            done += 1
        return done

    def hold(self, ids: Iterable[str]) -> int:
        pairs = self._select(ids, ("incoming", "active", "deferred"))
        return self._each(pairs, "hold", mtime=None, note="placed on hold", action="hold")

    def release(self, ids: Iterable[str]) -> int:
        pairs = self._select(ids, ("hold",))
        note = "released from hold"
        return self._each(pairs, "deferred", mtime=0.0, note=note, action="release")

    def requeue(self, ids: Iterable[str]) -> int:
        pairs = self._select(ids, ("incoming", "active", "deferred", "hold"))
        mtime = self.spool.clock()
        return self._each(pairs, "incoming", mtime=mtime, note="requeued", action="requeue")

    def delete(self, ids: Iterable[str]) -> int:
        done = 0
        for queue, queue_id in self._select(
            ids, ("incoming", "active", "deferred", "hold", "corrupt")
        ):
            try:
                self.spool.remove(queue, queue_id)
            except FileNotFoundError:
                continue
            event = operator_event(queue_id, action="delete", from_queue=queue, to_queue="")
            log_event(self.log, POSTSUPER, f"{queue_id}: removed", event)
            done += 1
        return done

    def flush(self) -> int:
        """Make every deferred message due now and ask a running scheduler to scan.
        `TemporaryError` when the queue cannot be written (a read-only file system)."""
        count = 0
        for queue_id in self.spool.ids("deferred"):
            path = self.spool.path("deferred", queue_id)
            try:
                os.utime(path, (0, 0))
                count += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise _error(f"update time stamps of {path}", exc) from exc
            # Postfix logs no line for a flush (postqueue -f): the event record only.
            event = operator_event(
                queue_id, action="flush", from_queue="deferred", to_queue="deferred"
            )
            log_event(self.log, POSTQUEUE, "", event)
        request = self.spool.root / FLUSH_REQUEST
        try:
            request.touch()
        except OSError as exc:
            raise _error(f"create {request}", exc) from exc
        return count


def _error(what: str, exc: OSError) -> TemporaryError:
    return TemporaryError(f"{what}: {exc.strerror or exc}", errno=exc.errno or 0)

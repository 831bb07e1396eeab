"""Queue administration: what Postfix's mailq/postqueue and postsuper do, on the spool.

`list_queue()` yields one `QueueEntry` per message (envelope and recorded state only, never
the content), or per message a `Selection` (select.py) chooses; `format_mailq()` renders them
as mailq does and `QueueEntry.to_json()` as ``postqueue -j`` does. `hold`, `release`,
`delete` and `requeue` act on queue IDs or ``ALL``, narrowed by a selection, with durable
renames; `flush` makes deferred messages due now and asks a running scheduler to scan the
deferred queue at once. Each action is `plan` (what it would touch; ``--dry-run`` shows
that) then `apply`, which reports to a `Progress` (progress.py). Log lines use postsuper's
wording, each with its ``operator`` event record (events.py; a flush has the record only).
A queue that cannot be written (read-only) stops an action with one `TemporaryError`.
"""

from __future__ import annotations

import os
import textwrap
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Final

from mailcarrier.errors import TemporaryError
from mailcarrier.events import operator_event
from mailcarrier.log import LogSink, NullLog, log_event
from mailcarrier.printable import json_safe, printable
from mailcarrier.progress import NULL_PROGRESS, Progress
from mailcarrier.queue.daemon import FLUSH_REQUEST
from mailcarrier.queue.names import POSTQUEUE, POSTSUPER
from mailcarrier.queue.qfile import ParseError
from mailcarrier.queue.select import Selection
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


@dataclass(frozen=True, slots=True)
class _Action:
    queues: tuple[str, ...]  # where the messages it acts on may be
    note: str  # the log line's words, as postsuper's
    to_queue: str  # where the messages go ("": removed)


_ACTIONS: Final = {
    "hold": _Action(("incoming", "active", "deferred"), "placed on hold", "hold"),
    "release": _Action(("hold",), "released from hold", "deferred"),
    "requeue": _Action(("incoming", "active", "deferred", "hold"), "requeued", "incoming"),
    "delete": _Action(("incoming", "active", "deferred", "hold", "corrupt"), "removed", ""),
    "flush": _Action(("deferred",), "flushed", "deferred"),
}


class QueueAdmin:
    def __init__(self, spool: Spool, log: LogSink | None = None) -> None:
        self.spool = spool
        self.log: LogSink = log if log is not None else NullLog()

    def list_queue(self, selection: Selection | None = None) -> Iterator[QueueEntry]:
        """The messages of the queue, or those `selection` chooses."""
        now = self.spool.clock()
        for queue in _LISTED:
            for message in self.spool.scan(queue):
                if selection is not None and not selection.matches(message, now):
                    continue
                env = message.envelope
                rcpts = []
                for i in message.pending():
                    state = message.state.states.get(i)
                    rcpts.append((env.recipients[i].address, state.diagnostic if state else ""))
                yield QueueEntry(
                    queue, env.queue_id, env.size, env.arrival_time, env.sender, tuple(rcpts)
                )

    @staticmethod
    def note(action: str) -> str:
        """What `action` does to a message, in the words of its log line."""
        return _ACTIONS[action].note

    def plan(
        self,
        action: str,
        ids: Iterable[str],
        selection: Selection | None = None,
        progress: Progress = NULL_PROGRESS,
    ) -> list[tuple[str, str]]:
        """The (queue, ID) pairs `action` would touch: the messages named by `ids` (``ALL``:
        every one; no IDs: every one, when there is a selection) that `selection` chooses.
        Nothing is changed; `progress` is told of each message read for the selection."""
        queues = _ACTIONS[action].queues
        wanted = list(ids)
        if not wanted or any(i.upper() == "ALL" for i in wanted):
            pairs = [(q, i) for q in queues for i in self.spool.ids(q)]
        else:
            pairs = []
            for queue_id in wanted:
                queue = self.spool.find(queue_id)
                if queue is None or queue not in queues:
                    where = ", ".join(queues)
                    with progress.outside():
                        self.log.warning(POSTSUPER, f"{queue_id}: no such message in {where}")
                    continue
                pairs.append((queue, queue_id))
        if selection is None or selection.empty:
            return pairs
        now = self.spool.clock()
        progress.grow(len(pairs))
        chosen = []
        for pair in pairs:
            if self._chosen(pair, selection, now):
                chosen.append(pair)
            progress.advance()
        return chosen

    def _chosen(self, pair: tuple[str, str], selection: Selection, now: float) -> bool:
        queue, queue_id = pair
        try:
            message = self.spool.read(queue, queue_id)
        except (FileNotFoundError, ParseError):  # gone, or damaged: chosen by ID only
            return False
        return selection.matches(message, now)

    def apply(
        self, action: str, pairs: Sequence[tuple[str, str]], progress: Progress = NULL_PROGRESS
    ) -> int:
        """Do `action` to the messages `plan` chose; how many it was done to (the others
        went away meanwhile). `progress` is told the total and each message done."""
        if action == "flush":
            return self._flush(pairs, progress)
        progress.grow(len(pairs))
        note = _ACTIONS[action].note
        done = 0
        for queue, queue_id in pairs:
            try:
                self._one(action, queue, queue_id)
            except FileNotFoundError:
                continue
            finally:
                progress.advance()
            to_queue = _ACTIONS[action].to_queue
            event = operator_event(queue_id, action=action, from_queue=queue, to_queue=to_queue)
            with progress.outside():
                log_event(self.log, POSTSUPER, f"{queue_id}: {note}", event)
            done += 1
        return done

    def _one(self, action: str, queue: str, queue_id: str) -> None:
        if action == "hold":
            self.spool.move(queue_id, queue, "hold")
        elif action == "release":
            self.spool.move(queue_id, queue, "deferred", mtime=0.0)
        elif action == "requeue":
            self.spool.move(queue_id, queue, "incoming", mtime=self.spool.clock())
        else:
            self.spool.remove(queue, queue_id)

    def hold(self, ids: Iterable[str], selection: Selection | None = None) -> int:
        return self.apply("hold", self.plan("hold", ids, selection))

    def release(self, ids: Iterable[str], selection: Selection | None = None) -> int:
        return self.apply("release", self.plan("release", ids, selection))

    def requeue(self, ids: Iterable[str], selection: Selection | None = None) -> int:
        return self.apply("requeue", self.plan("requeue", ids, selection))

    def delete(self, ids: Iterable[str], selection: Selection | None = None) -> int:
        return self.apply("delete", self.plan("delete", ids, selection))

    def flush(self, ids: Iterable[str] = (), selection: Selection | None = None) -> int:
        """Make deferred messages due now (every one, or those named and chosen) and ask a
        running scheduler to scan. `TemporaryError` when the queue cannot be written (a
        read-only file system)."""
        return self.apply("flush", self.plan("flush", ids, selection))

    def _flush(self, pairs: Sequence[tuple[str, str]], progress: Progress) -> int:
        progress.grow(len(pairs))
        count = 0
        for queue, queue_id in pairs:
            path = self.spool.path(queue, queue_id)
            try:
                os.utime(path, (0, 0))
                count += 1
            except FileNotFoundError:
                continue
            except OSError as exc:
                raise _error(f"update time stamps of {path}", exc) from exc
            finally:
                progress.advance()
            # Postfix logs no line for a flush (postqueue -f): the event record only.
            event = operator_event(queue_id, action="flush", from_queue=queue, to_queue=queue)
            log_event(self.log, POSTQUEUE, "", event)
        request = self.spool.root / FLUSH_REQUEST
        try:
            request.touch()
        except OSError as exc:
            raise _error(f"create {request}", exc) from exc
        return count


def _error(what: str, exc: OSError) -> TemporaryError:
    return TemporaryError(f"{what}: {exc.strerror or exc}", errno=exc.errno or 0)

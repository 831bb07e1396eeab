"""What the queue holds right now, for the metrics and the status page: read from the spool.

`queue_sizes()` counts the messages of each queue and the age of its oldest (by arrival
time; queue IDs sort by time, so the oldest is the first that can be read).
`deferred_destinations()` reads the deferred queue (at most `scan_limit` messages, so that a
page never takes long on a huge queue) and ranks the recipients' domains by deferred
recipients, each with the reason of its latest deferral, as `queue list` shows them. Both
only read: nothing here moves, locks or writes a queue file. Neighbours: queue/spool.py
(reading), metrics.py and page.py (showing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mailcarrier.errors import MailcarrierError
from mailcarrier.queue.spool import Spool

__all__ = [
    "LISTED_QUEUES",
    "DeferredDestination",
    "QueueSize",
    "deferred_destinations",
    "queue_sizes",
]

LISTED_QUEUES: Final = ("incoming", "active", "deferred", "hold")
SCAN_LIMIT: Final = 10000


@dataclass(frozen=True, slots=True)
class QueueSize:
    queue: str
    messages: int
    oldest_age: float  # seconds; 0 when the queue is empty

    def to_json(self) -> dict[str, object]:
        return {"messages": self.messages, "oldest_age": round(self.oldest_age, 3)}


@dataclass(frozen=True, slots=True)
class DeferredDestination:
    domain: str
    messages: int
    recipients: int
    last_reason: str  # hostile text: escape before showing

    def to_json(self) -> dict[str, object]:
        return {
            "domain": self.domain,
            "messages": self.messages,
            "recipients": self.recipients,
            "last_reason": self.last_reason,
        }


def _oldest_arrival(spool: Spool, queue: str, ids: list[str]) -> float | None:
    for queue_id in ids[:8]:  # a message may leave, or be damaged, as we read
        try:
            return spool.read(queue, queue_id).envelope.arrival_time
        except (OSError, MailcarrierError):
            continue
    return None


def queue_sizes(spool: Spool, now: float) -> list[QueueSize]:
    """Messages and the oldest one's age, per queue (incoming, active, deferred, hold)."""
    sizes = []
    for queue in LISTED_QUEUES:
        ids = spool.ids(queue)
        arrival = _oldest_arrival(spool, queue, ids) if ids else None
        age = max(0.0, now - arrival) if arrival is not None else 0.0
        sizes.append(QueueSize(queue, len(ids), age))
    return sizes


def deferred_destinations(
    spool: Spool, limit: int = 10, scan_limit: int = SCAN_LIMIT
) -> list[DeferredDestination]:
    """The `limit` domains with the most deferred recipients, most first (then by name)."""
    recipients: dict[str, int] = {}
    messages: dict[str, int] = {}
    latest: dict[str, tuple[float, str]] = {}
    for queue_id in spool.ids("deferred")[:scan_limit]:
        try:
            message = spool.read("deferred", queue_id)
        except (OSError, MailcarrierError):
            continue
        seen: set[str] = set()
        for i in message.pending():
            address = message.envelope.recipients[i].address
            domain = address.rpartition("@")[2].lower() if "@" in address else "(local)"
            recipients[domain] = recipients.get(domain, 0) + 1
            if domain not in seen:
                seen.add(domain)
                messages[domain] = messages.get(domain, 0) + 1
            state = message.state.states.get(i)
            if state is not None and state.when >= latest.get(domain, (-1.0, ""))[0]:
                latest[domain] = (state.when, state.diagnostic)
    ranked = sorted(recipients, key=lambda d: (-recipients[d], d))[:limit]
    return [
        DeferredDestination(d, messages[d], recipients[d], latest.get(d, (0.0, ""))[1])
        for d in ranked
    ]

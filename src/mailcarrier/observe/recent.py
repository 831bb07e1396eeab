"""The last hour of deliveries, minute by minute, and the TLS outcomes since the start: what
the status page draws (page.py) and /api/status returns.

`Recent.delivered()` adds a verdict to its minute (`delivered_many()` several); `rate()`
gives the 60 minutes up to now, oldest first, with zeros for quiet minutes; `tls_outcomes()`
the TLS sessions by level and result. Memory is bounded: 61 minutes of counts, and one count
per (level, result). The clock is injected; nothing here does I/O. Fed by monitor.py.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mailcarrier.status import DeliveryStatus

__all__ = ["MINUTES", "Minute", "Recent"]

MINUTES: Final = 60


@dataclass(frozen=True, slots=True)
class Minute:
    start: float  # epoch seconds of the minute's start
    sent: int
    deferred: int
    bounced: int

    def to_json(self) -> dict[str, object]:
        return {
            "start": int(self.start),
            "sent": self.sent,
            "deferred": self.deferred,
            "bounced": self.bounced,
        }


class Recent:
    def __init__(self, clock: Callable[[], float]) -> None:
        self.clock = clock
        self.started = clock()
        self._minutes: dict[int, Counter[DeliveryStatus]] = {}
        self._tls: Counter[tuple[str, str]] = Counter()
        self.totals: Counter[DeliveryStatus] = Counter()
        self.expired = 0  # messages returned at maximal_queue_lifetime since the start

    def delivered(self, status: DeliveryStatus) -> None:
        self.delivered_many(status, 1)

    def delivered_many(self, status: DeliveryStatus, count: int) -> None:
        """`count` verdicts at once (observe --postfix samples the agents' totals)."""
        if count <= 0:
            return
        minute = int(self.clock() // 60)
        counts = self._minutes.get(minute)
        if counts is None:
            for old in [m for m in self._minutes if m <= minute - MINUTES]:
                del self._minutes[old]
            counts = self._minutes[minute] = Counter()
        counts[status] += count
        self.totals[status] += count

    def tls(self, level: str, result: str, count: int) -> None:
        self._tls[(level, result)] += count

    def rate(self) -> list[Minute]:
        """The last `MINUTES` minutes, the current one last."""
        now = int(self.clock() // 60)
        out = []
        for minute in range(now - MINUTES + 1, now + 1):
            c = self._minutes.get(minute, Counter())
            sent, deferred = c[DeliveryStatus.SENT], c[DeliveryStatus.DEFERRED]
            out.append(Minute(minute * 60.0, sent, deferred, c[DeliveryStatus.BOUNCED]))
        return out

    def tls_outcomes(self) -> list[tuple[str, str, int]]:
        """(level, result, sessions), most first."""
        return sorted(((lv, r, n) for (lv, r), n in self._tls.items()), key=lambda t: (-t[2], t))

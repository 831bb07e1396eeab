"""The scheduler's observer in ``mailcarrier run``: the metrics and the status page's data.

`Monitor` is the queue manager's `QueueObserver` (queue/observer.py): each verdict and each
result's counts go to the Prometheus metrics (metrics.py) and to the last hour's activity
(recent.py). `queue_json()` and `status_json()` are what /api/queue and /api/status return
and what the status page (page.py) shows; the queue's part is read from the spool when asked
(snapshot.py). `Monitor.from_settings()` builds one for a run. http.py serves it all.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from mailcarrier.config.settings import Settings
from mailcarrier.observe.metrics import MetricSet
from mailcarrier.observe.recent import Recent
from mailcarrier.observe.snapshot import deferred_destinations, queue_sizes
from mailcarrier.queue.spool import Spool
from mailcarrier.status import Counts, DeliveryStatus, RecipientStatus

__all__ = ["Monitor"]


class Monitor:
    def __init__(
        self,
        spool: Spool,
        *,
        clock: Callable[[], float] = time.time,
        fleet: bool = False,
        destination_limit: int = 0,
        statistics: Callable[[], dict[str, int]] | None = None,
        node: str = "",
    ) -> None:
        self.spool = spool
        self.clock = clock
        self.node = node
        self.statistics = statistics
        self.metrics = MetricSet(
            spool,
            clock=clock,
            fleet=fleet,
            destination_limit=destination_limit,
            statistics=statistics,
        )
        self.recent = Recent(clock)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        spool: Spool,
        statistics: Callable[[], dict[str, int]] | None = None,
    ) -> Monitor:
        p = settings.params
        return cls(
            spool,
            fleet=bool(p.shared_state_server.strip()),
            destination_limit=p.metrics_destination_limit,
            statistics=statistics,
            node=p.myhostname,
        )

    # --- QueueObserver ------------------------------------------------------------------
    def recorded(self, transport: str, nexthop: str, status: RecipientStatus) -> None:
        self.metrics.recorded(transport, nexthop, status)
        self.recent.delivered(status.status)

    def counted(self, transport: str, counts: Counts) -> None:
        self.metrics.counted(transport, counts)
        for key, n in counts:
            if len(key) == 3 and key[0] == "tls":
                self.recent.tls(key[1], key[2], n)

    def expired(self, recipients: int) -> None:
        self.metrics.expired(recipients)
        self.recent.expired += 1

    # --- the status page's data ---------------------------------------------------------
    async def exposition(self) -> bytes:
        """/metrics (on the loop: the scheduler's counters are not made for threads)."""
        return self.metrics.exposition()

    def queue_json(self) -> dict[str, object]:
        now = self.clock()
        return {
            "time": int(now),
            "queues": {q.queue: q.to_json() for q in queue_sizes(self.spool, now)},
            "deferred_destinations": [d.to_json() for d in deferred_destinations(self.spool)],
        }

    def status_json(self) -> dict[str, object]:
        now = self.clock()
        totals = self.recent.totals
        running = self.statistics().get("running_jobs", 0) if self.statistics else 0
        return {
            "time": int(now),
            "node": self.node,
            "started": int(self.recent.started),
            "uptime": round(now - self.recent.started, 3),
            "active_deliveries": running,
            "deliveries": {s.value: totals[s] for s in DeliveryStatus},
            "expired_messages": self.recent.expired,
            "last_hour": [m.to_json() for m in self.recent.rate()],
            "tls": [
                {"level": level, "result": result, "sessions": n}
                for level, result, n in self.recent.tls_outcomes()
            ],
        }

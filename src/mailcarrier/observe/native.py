"""``mailcarrier observe --postfix``: the metrics and the status page of the
mailcarrier-smtp/-lmtp agents running inside Postfix.

In Postfix-native mode no scheduler of ours exists: qmgr(8) is Postfix's and master(8)
starts and stops the agent processes, each of which counts its own deliveries in
``metrics_directory`` (counters.py, prometheus-client's multiprocess files). `NativeMonitor`
adds those files up when scraped (prometheus-client's `MultiProcessCollector`, after
archive.py folded the files of processes that are gone), and reads Postfix's queue with
Postfix's ``postqueue -j`` (postfix/postqueue.py) for the queue gauges and the page:
messages and the oldest arrival per queue (incoming, active, deferred, hold), and the
domains with the most deferred recipients with a reason (the one of the latest arrival:
showq says no time of deferral); one ``observe`` per directory, whose folding and reading
never overlap. `status_json()` gives what the agents counted: totals by
status, TLS outcomes, deliveries running (the live processes' gauges), and the deliveries
per minute since ``observe`` started, sampled every `SAMPLE_SECONDS` (`sample()`), as the
counts say nothing of when. What needs no agent (/api/queue) works without
``metrics_directory``. Served by http.py as `Monitor` is for ``run``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Final

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from mailcarrier.observe.archive import compact
from mailcarrier.observe.recent import Recent
from mailcarrier.observe.snapshot import LISTED_QUEUES, DeferredDestination, QueueSize
from mailcarrier.status import DeliveryStatus

__all__ = ["SAMPLE_SECONDS", "NativeMonitor", "deferred_domains", "queue_shape"]

SAMPLE_SECONDS: Final = 15.0
QueueReader = Callable[[], list[dict[str, Any]]]


def queue_shape(messages: Iterable[dict[str, Any]], now: float) -> list[QueueSize]:
    """Messages and the oldest one's age per queue, from ``postqueue -j`` objects."""
    count: Counter[str] = Counter()
    oldest: dict[str, float] = {}
    for message in messages:
        queue = str(message.get("queue_name", ""))
        count[queue] += 1
        arrival = float(message.get("arrival_time", now))
        oldest[queue] = min(oldest.get(queue, arrival), arrival)
    return [
        QueueSize(q, count[q], max(0.0, now - oldest[q]) if q in oldest else 0.0)
        for q in LISTED_QUEUES
    ]


def deferred_domains(
    messages: Iterable[dict[str, Any]], limit: int = 10
) -> list[DeferredDestination]:
    """The `limit` domains with the most deferred recipients, most first (then by name),
    each with the reason of its latest-arrived message."""
    recipients: Counter[str] = Counter()
    held: Counter[str] = Counter()
    latest: dict[str, tuple[float, str]] = {}
    for message in messages:
        if message.get("queue_name") != "deferred":
            continue
        arrival = float(message.get("arrival_time", 0))
        seen: set[str] = set()
        for rcpt in message.get("recipients", []):
            address = str(rcpt.get("address", ""))
            domain = address.rpartition("@")[2].lower() if "@" in address else "(local)"
            recipients[domain] += 1
            if domain not in seen:
                seen.add(domain)
                held[domain] += 1
            reason = str(rcpt.get("delay_reason", ""))
            if reason and arrival >= latest.get(domain, (-1.0, ""))[0]:
                latest[domain] = (arrival, reason)
    ranked = sorted(recipients, key=lambda d: (-recipients[d], d))[:limit]
    return [
        DeferredDestination(d, held[d], recipients[d], latest.get(d, (0.0, ""))[1]) for d in ranked
    ]


class _QueueGauges(Collector):
    def __init__(self, monitor: NativeMonitor) -> None:
        self.monitor = monitor

    def collect(self) -> Iterable[Metric]:
        size = GaugeMetricFamily(
            "mailcarrier_queue_messages", "Messages in each Postfix queue.", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "mailcarrier_queue_oldest_age_seconds",
            "Age of the oldest message of each Postfix queue (by arrival; 0 when empty).",
            labels=["queue"],
        )
        for q in queue_shape(self.monitor.read_queue(), self.monitor.clock()):
            size.add_metric([q.queue], q.messages)
            age.add_metric([q.queue], q.oldest_age)
        yield size
        yield age


class NativeMonitor:
    def __init__(
        self,
        directory: str,
        read_queue: QueueReader,
        *,
        node: str = "",
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.directory = directory
        self.read_queue = read_queue
        self.node = node
        self.clock = clock
        # The agents' files, summed (multiprocess mode: no registry of theirs to read), and
        # Postfix's queue: two registries, so that postqueue runs outside the files' lock.
        self.registry = CollectorRegistry()
        self.queue_registry = CollectorRegistry()
        self.counts: MultiProcessCollector | None = None
        if directory:
            collector: Any = MultiProcessCollector  # untyped in prometheus-client
            self.counts = collector(self.registry, path=directory)
        self.queue_registry.register(_QueueGauges(self))
        self.recent = Recent(clock)
        self._last: Counter[DeliveryStatus] | None = None
        # Files are folded (sample) and read (scrapes, status) on different threads: a
        # scrape between a fold and the removal of the folded file would count it twice,
        # and a counter that then goes down reads as a reset to Prometheus.
        self._files = threading.Lock()

    # --- what the agents counted ------------------------------------------------------
    def _samples(self) -> list[tuple[str, dict[str, str], float]]:
        if self.counts is None:
            return []
        with self._files:
            metrics = list(self.counts.collect())  # type: ignore[no-untyped-call]
        return [(s.name, s.labels, s.value) for metric in metrics for s in metric.samples]

    def sample(self) -> None:
        """Fold the dead processes' files, then add what was delivered since the last
        sample to the current minute (the first sample only sets the base)."""
        if not self.directory:
            return
        with self._files:
            compact(self.directory)
        totals: Counter[DeliveryStatus] = Counter()
        for name, labels, value in self._samples():
            if name == "mailcarrier_deliveries_total":
                totals[DeliveryStatus(labels["status"])] += int(value)
        if self._last is not None:
            for status in DeliveryStatus:
                self.recent.delivered_many(status, totals[status] - self._last[status])
        self._last = totals

    async def sampling(self, warn: Callable[[str], None]) -> None:
        """`sample()` every SAMPLE_SECONDS, until cancelled; a failure is one `warn` line
        (a full disk, a directory gone) and the next sample tries again."""
        while True:
            try:
                await asyncio.to_thread(self.sample)
            except (OSError, ValueError) as exc:
                warn(f"metrics_directory {self.directory}: {exc}")
            await asyncio.sleep(SAMPLE_SECONDS)

    # --- what http.py serves ----------------------------------------------------------
    async def exposition(self) -> bytes:
        return await asyncio.to_thread(self._exposition)

    def _exposition(self) -> bytes:
        queue = generate_latest(self.queue_registry)
        with self._files:
            return generate_latest(self.registry) + queue

    def queue_json(self) -> dict[str, object]:
        now = self.clock()
        messages = self.read_queue()
        return {
            "time": int(now),
            "queues": {q.queue: q.to_json() for q in queue_shape(messages, now)},
            "deferred_destinations": [d.to_json() for d in deferred_domains(messages)],
        }

    def status_json(self) -> dict[str, object]:
        now = self.clock()
        totals: Counter[str] = Counter()
        tls: Counter[tuple[str, str]] = Counter()
        active = 0.0
        for name, labels, value in self._samples():
            if name == "mailcarrier_deliveries_total":
                totals[labels["status"]] += int(value)
            elif name == "mailcarrier_tls_sessions_total":
                tls[(labels["level"], labels["result"])] += int(value)
            elif name == "mailcarrier_active_deliveries":
                active += value
        return {
            "time": int(now),
            "node": self.node,
            "started": int(self.recent.started),
            "uptime": round(now - self.recent.started, 3),
            "active_deliveries": int(active),
            "deliveries": {s.value: totals[s.value] for s in DeliveryStatus},
            "last_hour": [m.to_json() for m in self.recent.rate()],
            "tls": [
                {"level": level, "result": result, "sessions": n}
                for (level, result), n in sorted(tls.items(), key=lambda t: (-t[1], t[0]))
            ],
        }

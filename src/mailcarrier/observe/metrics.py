"""The Prometheus metrics of ``mailcarrier run`` (prometheus-client), in one private registry.

`MetricSet` declares every metric (README "Monitoring" lists them) and turns the scheduler's
reports into samples: `recorded()` for each recipient verdict (deliveries by transport,
status and DSN class; the four delays= stages as histograms, observed at a final status
only: sent or bounced, never at a deferral, so a message's delays are counted once),
`counted()` for what the agents counted (status.Counts: connections, TLS, DANE, MTA-STS,
DNS, fleet): those families are counters.py's, which Postfix-native agents count too.
`expired()` counts the messages maximal_queue_lifetime (bounce_queue_lifetime) returned and
their recipients. Queue sizes and ages are read from the spool when scraped
(`_QueueCollector`, snapshot.py). With `destination_limit` N > 0 the N busiest next hops get
their own series (`_Destinations`): opt-in, as a label per domain has no bound. Fleet
metrics exist only in fleet mode. Fed by monitor.py; served by http.py.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mailcarrier.counters import DELAY_BUCKETS, STAGES, DeliveryCounters
from mailcarrier.observe.snapshot import queue_sizes
from mailcarrier.queue.spool import Spool
from mailcarrier.status import Counts, RecipientStatus

__all__ = ["DELAY_BUCKETS", "STAGES", "MetricSet"]


class _QueueCollector(Collector):
    def __init__(self, spool: Spool, clock: Callable[[], float]) -> None:
        self.spool = spool
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        size = GaugeMetricFamily(
            "mailcarrier_queue_messages", "Messages in each queue.", labels=["queue"]
        )
        age = GaugeMetricFamily(
            "mailcarrier_queue_oldest_age_seconds",
            "Age of the oldest message of each queue (by arrival time; 0 when empty).",
            labels=["queue"],
        )
        for q in queue_sizes(self.spool, self.clock()):
            size.add_metric([q.queue], q.messages)
            age.add_metric([q.queue], q.oldest_age)
        yield size
        yield age


class _Destinations(Collector):
    """Deliveries per next hop, for the `limit` busiest only (bounded memory: when more
    than 10 times as many are known, the least busy half is forgotten)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.counts: dict[str, Tally[str]] = {}

    def add(self, nexthop: str, status: str) -> None:
        counts = self.counts.get(nexthop)
        if counts is None:
            if len(self.counts) >= 10 * self.limit + 100:
                ranked = sorted(self.counts, key=lambda d: sum(self.counts[d].values()))
                for gone in ranked[: len(ranked) // 2]:
                    del self.counts[gone]
            counts = self.counts[nexthop] = Tally()
        counts[status] += 1

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "mailcarrier_destination_deliveries",
            "Recipient verdicts of the busiest next hops (metrics_destination_limit).",
            labels=["destination", "status"],
        )
        busiest = sorted(self.counts, key=lambda d: (-sum(self.counts[d].values()), d))
        for nexthop in busiest[: self.limit]:
            for status, count in sorted(self.counts[nexthop].items()):
                family.add_metric([nexthop, status], count)
        yield family


class MetricSet:
    def __init__(
        self,
        spool: Spool,
        *,
        clock: Callable[[], float],
        fleet: bool = False,
        destination_limit: int = 0,
        statistics: Callable[[], dict[str, int]] | None = None,
    ) -> None:
        self.registry = registry = CollectorRegistry()
        self.counters = DeliveryCounters(registry, fleet=fleet)
        self.expired_messages = Counter(
            "mailcarrier_expired_messages",
            "Messages returned to the sender at maximal_queue_lifetime "
            "(bounce_queue_lifetime for notices).",
            registry=registry,
        )
        self.expired_recipients = Counter(
            "mailcarrier_expired_recipients",
            "Recipients still deferred in the messages that expired.",
            registry=registry,
        )
        registry.register(_QueueCollector(spool, clock))
        self.destinations: _Destinations | None = None
        if destination_limit > 0:
            self.destinations = _Destinations(destination_limit)
            registry.register(self.destinations)
        if statistics is not None:
            active = Gauge(
                "mailcarrier_active_deliveries",
                "Deliveries running now.",
                registry=registry,
            )
            active.set_function(lambda: statistics().get("running_jobs", 0))
        Gauge(
            "mailcarrier_start_time_seconds",
            "When this run started (Unix time).",
            registry=registry,
        ).set(clock())

    def recorded(self, transport: str, nexthop: str, status: RecipientStatus) -> None:
        self.counters.recorded(transport, status)
        if self.destinations is not None:
            self.destinations.add(nexthop, status.status.value)

    def counted(self, transport: str, counts: Counts) -> None:
        self.counters.counted(transport, counts)

    def expired(self, recipients: int) -> None:
        self.expired_messages.inc()
        self.expired_recipients.inc(recipients)

    def exposition(self) -> bytes:
        """The text format of every metric, as /metrics serves it."""
        return generate_latest(self.registry)

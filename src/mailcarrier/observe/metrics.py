"""The Prometheus metrics of ``mailcarrier run`` (prometheus-client), in one private registry.

`MetricSet` declares every metric (README "Monitoring" lists them) and turns the scheduler's
reports into samples: `recorded()` for each recipient verdict (deliveries by transport,
status and DSN class; the four delays= stages as histograms, observed at a final status
only: sent or bounced, never at a deferral, so a message's delays are counted once),
`counted()` for what the agents counted (status.Counts: connections, TLS, DANE, MTA-STS,
DNS, fleet). Queue sizes and ages are read from the spool when scraped (`_QueueCollector`,
snapshot.py). With `destination_limit` N > 0 the N busiest next hops get their own series
(`_Destinations`): opt-in, as a label per domain has no bound. Fleet metrics exist only in
fleet mode. Fed by monitor.py; served by http.py.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Callable, Iterator
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mailcarrier.observe.snapshot import queue_sizes
from mailcarrier.queue.spool import Spool
from mailcarrier.status import Counts, DeliveryStatus, RecipientStatus

__all__ = ["DELAY_BUCKETS", "STAGES", "MetricSet"]

# Mail delays run from milliseconds (a transmission) to days (a deferred message).
DELAY_BUCKETS: Final = (
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    14400.0, 86400.0, 432000.0,
)  # fmt: skip
# Postfix's delays=a/b/c/d, in order.
STAGES: Final = ("before_qmgr", "in_qmgr", "conn_setup", "transmission")
_DNS_FAILURES: Final = frozenset({"servfail", "timeout", "no_recovery"})


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
        self._declare_deliveries(registry)
        self._declare_agents(registry)
        self.fleet_denials: Counter | None = None
        self.fleet_errors: Counter | None = None
        if fleet:
            self._declare_fleet(registry)
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

    def _declare_deliveries(self, registry: CollectorRegistry) -> None:
        self.deliveries = Counter(
            "mailcarrier_deliveries",
            "Recipient verdicts recorded, by transport, status and DSN class (2, 4, 5).",
            ["transport", "status", "dsn_class"],
            registry=registry,
        )
        self.delay = Histogram(
            "mailcarrier_delivery_delay_seconds",
            "The delays= stages of a recipient's final verdict (sent or bounced).",
            ["transport", "stage"],
            buckets=DELAY_BUCKETS,
            registry=registry,
        )

    def _declare_agents(self, registry: CollectorRegistry) -> None:
        self.connections = Counter(
            "mailcarrier_connections",
            "Connections opened, and cached sessions reused for a delivery.",
            ["transport", "kind"],
            registry=registry,
        )
        self.tls = Counter(
            "mailcarrier_tls_sessions",
            "TLS policies applied to a server, by level and result.",
            ["transport", "level", "result"],
            registry=registry,
        )
        self.dane = Counter(
            "mailcarrier_dane_results",
            "Servers under a DANE level: verified, no_usable_tlsa or failed.",
            ["transport", "result"],
            registry=registry,
        )
        self.mta_sts = Counter(
            "mailcarrier_mta_sts_results",
            "Servers under an MTA-STS policy, by mode and result (pass, fail).",
            ["transport", "mode", "result"],
            registry=registry,
        )
        self.dns = Counter(
            "mailcarrier_dns_lookups",
            "DNS questions of the delivery agents, by type and outcome.",
            ["type", "outcome"],
            registry=registry,
        )
        self.dns_failures = Counter(
            "mailcarrier_dns_failures",
            "DNS questions that failed (servfail, timeout, no_recovery), by type.",
            ["type"],
            registry=registry,
        )

    def _declare_fleet(self, registry: CollectorRegistry) -> None:
        self.fleet_denials = Counter(
            "mailcarrier_fleet_denials",
            "Fleet mode: requests refused, by kind (lease, rate, dead destination).",
            ["transport", "kind"],
            registry=registry,
        )
        self.fleet_errors = Counter(
            "mailcarrier_fleet_errors",
            "Fleet mode: requests the shared state server did not answer.",
            registry=registry,
        )

    def recorded(self, transport: str, nexthop: str, status: RecipientStatus) -> None:
        self.deliveries.labels(transport, status.status.value, status.dsn[:1]).inc()
        if status.status is not DeliveryStatus.DEFERRED:
            d = status.delays
            values = (d.before_qmgr, d.in_qmgr, d.conn_setup, d.transmission)
            for stage, value in zip(STAGES, values, strict=True):
                self.delay.labels(transport, stage).observe(value)
        if self.destinations is not None:
            self.destinations.add(nexthop, status.status.value)

    def counted(self, transport: str, counts: Counts) -> None:
        for key, n in counts:
            self._count(transport, key, n)

    def _count(self, transport: str, key: tuple[str, ...], n: int) -> None:
        match key:
            case ("connection", kind):
                self.connections.labels(transport, kind).inc(n)
            case ("tls", level, result):
                self.tls.labels(transport, level, result).inc(n)
            case ("dane", result):
                self.dane.labels(transport, result).inc(n)
            case ("mta_sts", mode, result):
                self.mta_sts.labels(transport, mode, result).inc(n)
            case ("dns", rdtype, outcome):
                self.dns.labels(rdtype, outcome).inc(n)
                if outcome in _DNS_FAILURES:
                    self.dns_failures.labels(rdtype).inc(n)
            case ("fleet", "server", "error"):
                if self.fleet_errors is not None:
                    self.fleet_errors.inc(n)
            case ("fleet", kind, result):
                if self.fleet_denials is not None:
                    kind = "dead" if result == "dead" else kind
                    self.fleet_denials.labels(transport, kind).inc(n)
            case _:
                pass  # an event this version does not show

    def exposition(self) -> bytes:
        """The text format of every metric, as /metrics serves it."""
        return generate_latest(self.registry)

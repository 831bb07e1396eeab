"""The Prometheus counters of deliveries and of what delivery agents count, declared once for
both modes that count them.

`DeliveryCounters` declares the families README "Monitoring" lists for verdicts and agents
(deliveries by transport, status and DSN class; the four delays= stages as histograms,
observed at a final status only: sent or bounced; connections, TLS, DANE, MTA-STS, DNS, and
with `fleet` the fleet's denials and errors) and turns reports into samples: `recorded()` for
each recipient verdict, `counted()` for a result's status.Counts. ``mailcarrier run``
registers them in observe/metrics.py's registry: one process, the scheduler, counts. In
Postfix-native mode each mailcarrier-smtp/-lmtp process master(8) starts counts its own
deliveries: `multiprocess(directory)` (before any metric exists) makes prometheus-client
keep every value in a file of that process in ``metrics_directory``, which ``mailcarrier
observe --postfix`` adds up (observe/native.py); `NativeCounters` is what such a process
counts, with `active_deliveries` as a gauge of the live processes only. This module
imports prometheus-client (the ``metrics`` extra); nothing imports it unless metrics are
configured. Neighbours: observe/metrics.py, postfix/main.py.
"""

from __future__ import annotations

import os
from typing import Final

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, values

from mailcarrier.status import Counts, DeliveryStatus, RecipientStatus

__all__ = [
    "DELAY_BUCKETS",
    "STAGES",
    "DeliveryCounters",
    "NativeCounters",
    "multiprocess",
]

# Mail delays run from milliseconds (a transmission) to days (a deferred message).
DELAY_BUCKETS: Final = (
    0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
    14400.0, 86400.0, 432000.0,
)  # fmt: skip
# Postfix's delays=a/b/c/d, in order.
STAGES: Final = ("before_qmgr", "in_qmgr", "conn_setup", "transmission")
_DNS_FAILURES: Final = frozenset({"servfail", "timeout", "no_recovery"})
# prometheus-client's variable: where a process in multiprocess mode keeps its files.
MULTIPROC_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"


def multiprocess(directory: str) -> None:
    """Count into files of this process in `directory` from now on (prometheus-client's
    multiprocess mode), for metrics made after this call."""
    os.environ[MULTIPROC_VARIABLE] = directory
    values.ValueClass = values.MultiProcessValue()  # type: ignore[no-untyped-call]


class DeliveryCounters:
    def __init__(self, registry: CollectorRegistry | None, *, fleet: bool = False) -> None:
        # registry None: not registered (multiprocess mode: the files are what is read).
        self._declare_deliveries(registry)
        self._declare_agents(registry)
        self.fleet_denials: Counter | None = None
        self.fleet_errors: Counter | None = None
        if fleet:
            self._declare_fleet(registry)

    def _declare_deliveries(self, registry: CollectorRegistry | None) -> None:
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

    def _declare_agents(self, registry: CollectorRegistry | None) -> None:
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

    def _declare_fleet(self, registry: CollectorRegistry | None) -> None:
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

    def recorded(self, transport: str, status: RecipientStatus) -> None:
        self.deliveries.labels(transport, status.status.value, status.dsn[:1]).inc()
        if status.status is not DeliveryStatus.DEFERRED:
            d = status.delays
            stages = (d.before_qmgr, d.in_qmgr, d.conn_setup, d.transmission)
            for stage, value in zip(STAGES, stages, strict=True):
                self.delay.labels(transport, stage).observe(value)

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


class NativeCounters(DeliveryCounters):
    """What one Postfix-native agent process counts, for `transport` (master.cf's service
    name: smtp, relay, lmtp), in multiprocess files (call `multiprocess()` first)."""

    def __init__(self, transport: str) -> None:
        super().__init__(None)
        self.transport = transport
        self.active = Gauge(
            "mailcarrier_active_deliveries",
            "Deliveries running now.",
            registry=None,
            multiprocess_mode="livesum",
        )

    def started(self) -> None:
        self.active.inc()

    def ended(self) -> None:
        self.active.dec()

    def verdict(self, status: RecipientStatus) -> None:
        self.recorded(self.transport, status)

    def result(self, counts: Counts) -> None:
        self.counted(self.transport, counts)

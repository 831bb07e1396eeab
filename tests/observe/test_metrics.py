"""observe/metrics.py: reports of the scheduler turned into Prometheus samples, exactly."""

from __future__ import annotations

from pathlib import Path

from mailcarrier.observe.metrics import MetricSet
from mailcarrier.queue.spool import Spool
from mailcarrier.status import Delays, DeliveryStatus, RecipientStatus
from tests.observe.daemon import samples


def _metrics(tmp_path: Path, *, fleet: bool = False, destination_limit: int = 0) -> MetricSet:
    spool = Spool(tmp_path / "queue").ensure()
    return MetricSet(spool, clock=lambda: 1000.0, fleet=fleet, destination_limit=destination_limit)


def _status(status: DeliveryStatus, dsn: str) -> RecipientStatus:
    return RecipientStatus("u@example.net", status, dsn, "x", delays=Delays(1, 2, 0.5, 0.02))


def test_every_count_of_an_agent(tmp_path: Path) -> None:
    metrics = _metrics(tmp_path, fleet=True)
    counts = (
        (("connection", "opened"), 3),
        (("connection", "reused"), 2),
        (("tls", "may", "untrusted"), 1),
        (("dane", "verified"), 1),
        (("mta_sts", "enforce", "fail"), 1),
        (("dns", "MX", "ok"), 4),
        (("dns", "MX", "timeout"), 1),
        (("dns", "TLSA", "servfail"), 2),
        (("dns", "A", "nxdomain"), 1),
        (("fleet", "lease", "denied"), 2),
        (("fleet", "lease", "dead"), 1),
        (("fleet", "rate", "denied"), 5),
        (("fleet", "server", "error"), 3),
        (("from", "a", "later", "version"), 9),
    )
    metrics.counted("smtp", counts)
    got = {k: v for k, v in samples(metrics.exposition()).items() if "_created" not in k}
    t = 'transport="smtp"'
    assert got[f'mailcarrier_connections_total{{kind="opened",{t}}}'] == 3
    assert got[f'mailcarrier_connections_total{{kind="reused",{t}}}'] == 2
    assert got[f'mailcarrier_tls_sessions_total{{level="may",result="untrusted",{t}}}'] == 1
    assert got[f'mailcarrier_dane_results_total{{result="verified",{t}}}'] == 1
    assert got[f'mailcarrier_mta_sts_results_total{{mode="enforce",result="fail",{t}}}'] == 1
    assert got['mailcarrier_dns_lookups_total{outcome="ok",type="MX"}'] == 4
    assert got['mailcarrier_dns_lookups_total{outcome="nxdomain",type="A"}'] == 1
    assert got['mailcarrier_dns_failures_total{type="MX"}'] == 1
    assert got['mailcarrier_dns_failures_total{type="TLSA"}'] == 2
    assert 'mailcarrier_dns_failures_total{type="A"}' not in got  # NXDOMAIN is an answer
    assert got[f'mailcarrier_fleet_denials_total{{kind="lease",{t}}}'] == 2
    assert got[f'mailcarrier_fleet_denials_total{{kind="dead",{t}}}'] == 1
    assert got[f'mailcarrier_fleet_denials_total{{kind="rate",{t}}}'] == 5
    assert got["mailcarrier_fleet_errors_total"] == 3
    assert got["mailcarrier_start_time_seconds"] == 1000.0


def test_delays_are_observed_at_a_final_verdict_only(tmp_path: Path) -> None:
    metrics = _metrics(tmp_path)
    metrics.recorded("smtp", "[relay]", _status(DeliveryStatus.DEFERRED, "4.4.1"))
    metrics.recorded("smtp", "[relay]", _status(DeliveryStatus.SENT, "2.0.0"))
    metrics.recorded("lmtp", "unix:/x", _status(DeliveryStatus.BOUNCED, "5.1.1"))
    got = samples(metrics.exposition())
    assert (
        got['mailcarrier_deliveries_total{dsn_class="4",status="deferred",transport="smtp"}'] == 1
    )
    assert got['mailcarrier_deliveries_total{dsn_class="2",status="sent",transport="smtp"}'] == 1
    assert got['mailcarrier_deliveries_total{dsn_class="5",status="bounced",transport="lmtp"}'] == 1
    smtp = 'transport="smtp"'
    assert got[f'mailcarrier_delivery_delay_seconds_count{{stage="before_qmgr",{smtp}}}'] == 1
    assert got[f'mailcarrier_delivery_delay_seconds_sum{{stage="in_qmgr",{smtp}}}'] == 2
    assert (
        got[f'mailcarrier_delivery_delay_seconds_bucket{{le="0.5",stage="conn_setup",{smtp}}}'] == 1
    )
    assert (
        got[f'mailcarrier_delivery_delay_seconds_bucket{{le="0.01",stage="transmission",{smtp}}}']
        == 0
    )
    assert not any(name.startswith("mailcarrier_fleet") for name in got)
    assert not any(name.startswith("mailcarrier_destination") for name in got)


def test_only_the_busiest_destinations_get_a_series(tmp_path: Path) -> None:
    metrics = _metrics(tmp_path, destination_limit=2)
    for nexthop, n in (("a.example", 3), ("b.example", 1), ("c.example", 2)):
        for _ in range(n):
            metrics.recorded("smtp", nexthop, _status(DeliveryStatus.SENT, "2.0.0"))
    got = samples(metrics.exposition())
    shown = {
        k: v for k, v in got.items() if k.startswith("mailcarrier_destination_deliveries_total")
    }
    assert shown == {
        'mailcarrier_destination_deliveries_total{destination="a.example",status="sent"}': 3,
        'mailcarrier_destination_deliveries_total{destination="c.example",status="sent"}': 2,
    }

"""The TLSRPT report of a day (queue/tlsrpt.py over tls/tlsrpt_report.py and
routing/tlsrpt.py), from real TLS attempts: the loopback DNS zone publishes MX, ``_mta-sts``
and ``_smtp._tls`` records, the MTA-STS policy server and scripted STARTTLS servers (good,
expired and wrong-name certificates) take the deliveries; the report is then checked field
by field against RFC 8460 4 and its schema's required members.
"""

from __future__ import annotations

import datetime
import gzip
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import RR

import mailcarrier
from mailcarrier import DeliveryStatus
from mailcarrier.config.settings import Settings
from mailcarrier.log import MemoryLog
from mailcarrier.queue.tlsrpt import DayReport, day_reports, format_reports, yesterday
from mailcarrier.tls.tlsrpt_report import gzip_report, report_filename, report_id
from tests.support.deliver import request_to
from tests.support.sts_server import PolicyAnswer, PolicyServer, add_policy_host, policy_text
from tests.support.tls import (
    SECRET,
    Pki,
    StartServer,
    Zone,
    add_mx,
    context_from_pem,
    mint_expired_leaf,
    tls_settings,
)
from tests.support.tls_server import ScriptedTlsServer, TlsServerScript

DOMAIN = "rpt.test"
MX = "mx.rpt.test"
RUA = ("mailto:tlsrpt@rpt.test", "https://reports.rpt.test/v1")


@pytest.fixture
def policy_server(pki: Pki) -> Iterator[PolicyServer]:
    server = PolicyServer(pki.server_context(pki.leaf(f"mta-sts.{DOMAIN}")))
    yield server
    server.stop()


def settings(pki: Pki, zone: Zone, policy: PolicyServer, data: Path) -> Settings:
    return tls_settings(
        zone[0],
        smtp_tls_CAfile=pki.cafile(),
        smtp_mta_sts_https_port=str(policy.port),
        data_directory=str(data),
        smtp_tlsrpt_enable="yes",
        tlsrpt_organization_name="Example Sender",
        tlsrpt_contact_info="tlsrpt-admin@sender.example",
    )


async def send(server: ScriptedTlsServer, config: Settings) -> DeliveryStatus:
    request = request_to(
        f"{DOMAIN}:{server.port}",
        b"Subject: s\n\n" + SECRET + b"\n",
        sender="s@example.org",
        recipients=[f"u@{DOMAIN}"],
    )
    result = await mailcarrier.deliver(request, config=config, log=MemoryLog())
    return result.recipients[0].status


def today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")


async def a_day(
    pki: Pki, zone: Zone, policy: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> tuple[Settings, list[DayReport]]:
    add_mx(zone[1], DOMAIN, MX)
    add_policy_host(zone[1], DOMAIN)
    zone[1].records.extend(
        RR.fromZone(f'_smtp._tls.{DOMAIN}. 300 IN TXT "v=TLSRPTv1; rua={",".join(RUA)}"')
    )
    policy.answers[f"mta-sts.{DOMAIN}"] = PolicyAnswer(policy_text("enforce", MX))
    config = settings(pki, zone, policy, tmp_path / "data")
    good = tls_server(TlsServerScript(pki.server_context(pki.leaf(MX))))
    expired = tls_server(
        TlsServerScript(context_from_pem(tmp_path, *mint_expired_leaf(pki.ca, MX)))
    )
    wrong = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.elsewhere.test"))))
    for server, status in ((good, "sent"), (good, "sent"), (good, "sent"), (expired, "deferred")):
        assert (await send(server, config)).value == status
    for _ in range(2):
        assert await send(wrong, config) is DeliveryStatus.DEFERRED
    return config, await day_reports(config, today())


async def test_a_day_with_successes_and_two_kinds_of_failure(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _, reports = await a_day(pki, dns_zone, policy_server, tls_server, tmp_path)
    [item] = reports
    assert (item.domain, item.day, item.uris, item.problem) == (DOMAIN, today(), RUA, "")
    report = item.report
    # RFC 8460 4.3 top level, in the RFC's order.
    assert list(report) == [
        "organization-name",
        "date-range",
        "contact-info",
        "report-id",
        "policies",
    ]
    assert report["organization-name"] == "Example Sender"
    assert report["date-range"] == {
        "start-datetime": f"{today()}T00:00:00Z",
        "end-datetime": f"{today()}T23:59:59Z",
    }
    assert report["contact-info"] == "tlsrpt-admin@sender.example"
    assert report["report-id"] == report_id("Example Sender", DOMAIN, today())
    [entry] = report["policies"]
    assert entry["policy"] == {
        "policy-type": "sts",
        "policy-string": ["version: STSv1", "mode: enforce", f"mx: {MX}", "max_age: 86400"],
        "policy-domain": DOMAIN,
        "mx-host": [MX],
    }
    assert entry["summary"] == {
        "total-successful-session-count": 3,
        "total-failure-session-count": 3,
    }
    common = {
        "sending-mta-ip": "127.0.0.1",
        "receiving-mx-hostname": MX,
        "receiving-ip": "127.0.0.1",
    }
    assert entry["failure-details"] == [
        {"result-type": "certificate-expired", **common, "failed-session-count": 1},
        {"result-type": "certificate-host-mismatch", **common, "failed-session-count": 2},
    ]


async def test_the_report_is_json_with_the_schema_required_members(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _, [item] = await a_day(pki, dns_zone, policy_server, tls_server, tmp_path)
    parsed = json.loads(gzip.decompress(gzip_report(item.report)))
    assert parsed == item.report
    for member in ("organization-name", "date-range", "contact-info", "report-id", "policies"):
        assert member in parsed
    assert set(parsed["date-range"]) == {"start-datetime", "end-datetime"}
    for entry in parsed["policies"]:
        assert {"policy-type", "policy-domain"} <= set(entry["policy"])
        assert entry["policy"]["policy-type"] in ("sts", "tlsa", "no-policy-found")
        assert set(entry["summary"]) == {
            "total-successful-session-count",
            "total-failure-session-count",
        }
        for detail in entry["failure-details"]:
            assert {"result-type", "failed-session-count"} <= set(detail)
            assert isinstance(detail["failed-session-count"], int)
    for moment in parsed["date-range"].values():
        assert datetime.datetime.fromisoformat(moment).tzinfo == datetime.UTC
    assert gzip_report(item.report) == gzip_report(item.report)  # reproducible bytes


async def test_show_text_and_a_domain_without_record(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    config, [item] = await a_day(pki, dns_zone, policy_server, tls_server, tmp_path)
    rid = item.report["report-id"]
    assert format_reports([item]) == [
        f"{DOMAIN} {today()} report-id {rid}: {' '.join(RUA)}",
        f"  policy sts mx {MX}: 3 successful, 3 failed",
        "    version: STSv1",
        "    mode: enforce",
        f"    mx: {MX}",
        "    max_age: 86400",
        f"    certificate-expired: 1 from 127.0.0.1 to {MX}[127.0.0.1]",
        f"    certificate-host-mismatch: 2 from 127.0.0.1 to {MX}[127.0.0.1]",
    ]
    dns_zone[1].records[:] = [r for r in dns_zone[1].records if "_smtp._tls" not in str(r.rname)]
    [bare] = await day_reports(config, today())
    assert (bare.uris, bare.problem) == ((), "no TLSRPT record")
    assert await day_reports(config, "2001-01-01") == []


def test_filename_and_yesterday() -> None:
    assert report_filename("sender.example", DOMAIN, "2026-12-01") == (
        f"sender.example!{DOMAIN}!1796083200!1796169599.json.gz"
    )
    noon = datetime.datetime(2026, 12, 3, 12, tzinfo=datetime.UTC)
    assert yesterday(noon) == "2026-12-02"

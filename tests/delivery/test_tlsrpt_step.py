"""TLSRPT counting (delivery/tlsrpt_step.py, tlsrpt_store.py): real TLS attempts against
loopback servers (the MTA-STS tests' DNS zone, policy server and scripted STARTTLS servers),
counted per policy domain and day in ``$data_directory/tlsrpt.sqlite``, and nothing written
when ``smtp_tlsrpt_enable = no``.
"""

from __future__ import annotations

import dataclasses
import datetime
from collections.abc import Iterator
from pathlib import Path

import pytest

import mailcarrier
from mailcarrier import DeliveryStatus
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.tlsrpt_store import TlsrptStore
from mailcarrier.log import MemoryLog
from mailcarrier.tls.tlsrpt import Attempt
from mailcarrier.tls.tlsrpt_report import build_report
from tests.support.deliver import request_to
from tests.support.sts_server import PolicyAnswer, PolicyServer, add_policy_host, policy_text
from tests.support.tls import (
    SECRET,
    Pki,
    StartServer,
    Zone,
    add_mx,
    add_tlsa,
    context_from_pem,
    mint_expired_leaf,
    spki_sha256,
    tls_settings,
)
from tests.support.tls_server import ScriptedTlsServer, TlsServerScript

DOMAIN = "rpt.test"
MX = "mx.rpt.test"
STS_LINES = ("version: STSv1", "mode: enforce", f"mx: {MX}", "max_age: 86400")


@pytest.fixture
def policy_server(pki: Pki) -> Iterator[PolicyServer]:
    server = PolicyServer(pki.server_context(pki.leaf(f"mta-sts.{DOMAIN}")))
    yield server
    server.stop()


def settings(
    pki: Pki, zone: Zone, policy: PolicyServer, data: Path, enable: str = "yes", **params: str
) -> Settings:
    return tls_settings(
        zone[0],
        smtp_tls_CAfile=pki.cafile(),
        smtp_mta_sts_https_port=str(policy.port),
        data_directory=str(data),
        smtp_tlsrpt_enable=enable,
        **params,
    )


def publish(zone: Zone, policy: PolicyServer) -> None:
    add_mx(zone[1], DOMAIN, MX)
    add_policy_host(zone[1], DOMAIN)
    policy.answers[f"mta-sts.{DOMAIN}"] = PolicyAnswer(policy_text("enforce", MX))


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


def sts_attempt(result: str = "", reason: str = "") -> Attempt:
    failed = bool(result)
    return Attempt(
        day=today(),
        policy_domain=DOMAIN,
        policy_type="sts",
        policy_strings=STS_LINES,
        mx_hosts=(MX,),
        result_type=result,
        sending_ip="127.0.0.1" if failed else "",
        receiving_mx=MX if failed else "",
        receiving_ip="127.0.0.1" if failed else "",
        reason_code=reason,
    )


async def test_a_day_of_attempts_is_counted_by_result(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    publish(dns_zone, policy_server)
    config = settings(pki, dns_zone, policy_server, tmp_path / "data")
    good = tls_server(TlsServerScript(pki.server_context(pki.leaf(MX))))
    expired = tls_server(
        TlsServerScript(context_from_pem(tmp_path, *mint_expired_leaf(pki.ca, MX)))
    )
    wrong = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.elsewhere.test"))))
    plain = tls_server(TlsServerScript(None, offer_starttls=False))
    assert await send(good, config) is DeliveryStatus.SENT
    assert await send(good, config) is DeliveryStatus.SENT
    for server in (expired, wrong, plain):
        assert await send(server, config) is DeliveryStatus.DEFERRED
    rows = TlsrptStore(tmp_path / "data").rows(today())
    assert rows == sorted(
        [
            (sts_attempt(), 2),
            (sts_attempt("certificate-expired"), 1),
            (sts_attempt("certificate-host-mismatch"), 1),
            (sts_attempt("starttls-not-supported", "starttls-not-offered"), 1),
        ],
        key=lambda row: (row[0].result_type, row[0].reason_code),
    )


async def test_an_mx_outside_the_policy_is_counted_before_connecting(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    add_mx(dns_zone[1], DOMAIN, MX)
    add_policy_host(dns_zone[1], DOMAIN)
    policy_server.answers[f"mta-sts.{DOMAIN}"] = PolicyAnswer(
        policy_text("enforce", "mail.example.net")
    )
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf(MX))))
    config = settings(pki, dns_zone, policy_server, tmp_path / "data")
    assert await send(server, config) is DeliveryStatus.DEFERRED
    [(attempt, count)] = TlsrptStore(tmp_path / "data").rows(today())
    assert count == 1
    assert (attempt.result_type, attempt.reason_code) == (
        "certificate-host-mismatch",
        "mx-not-allowed",
    )
    assert (attempt.receiving_mx, attempt.receiving_ip, attempt.sending_ip) == (MX, "127.0.0.1", "")
    assert attempt.mx_hosts == ("mail.example.net",)


async def test_a_domain_without_policy_is_no_policy_found(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    add_mx(dns_zone[1], DOMAIN, MX)  # no _mta-sts record
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf(MX))))
    plain = tls_server(TlsServerScript(None, offer_starttls=False))
    data = tmp_path / "data"
    config = settings(pki, dns_zone, policy_server, data, smtp_tls_security_level="may")
    assert await send(server, config) is DeliveryStatus.SENT
    assert await send(plain, config) is DeliveryStatus.SENT  # in plaintext: a failure
    failure = Attempt(
        today(),
        DOMAIN,
        "no-policy-found",
        result_type="starttls-not-supported",
        sending_ip="127.0.0.1",
        receiving_mx=MX,
        receiving_ip="127.0.0.1",
        reason_code="starttls-not-offered",
    )
    assert TlsrptStore(data).rows(today()) == [
        (Attempt(today(), DOMAIN, "no-policy-found"), 1),
        (failure, 1),
    ]
    # At level none no TLS is tried, and nothing is counted.
    none = settings(pki, dns_zone, policy_server, data, smtp_tls_security_level="none")
    assert await send(server, none) is DeliveryStatus.SENT
    assert len(TlsrptStore(data).rows(today())) == 2


async def test_nothing_is_written_when_disabled(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    publish(dns_zone, policy_server)
    config = settings(pki, dns_zone, policy_server, tmp_path / "data", enable="no")
    good = tls_server(TlsServerScript(pki.server_context(pki.leaf(MX))))
    assert await send(good, config) is DeliveryStatus.SENT
    assert not (tmp_path / "data" / "tlsrpt.sqlite").exists()


async def test_dane_is_counted_as_tlsa_with_its_records(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    domain, host = "dane.signed.test", "mx.dane.signed.test"
    leaf = pki.leaf(host)
    server = tls_server(TlsServerScript(pki.server_context(leaf)))
    add_mx(dns_zone[1], domain, host)
    good = f"3 1 1 {spki_sha256(leaf)}"
    owner = add_tlsa(dns_zone[1], host, server.port, good)
    data = tmp_path / "data"
    config = settings(
        pki,
        dns_zone,
        policy_server,
        data,
        smtp_tls_security_level="dane",
        smtp_dns_support_level="dnssec",
    )
    request = request_to(
        f"{domain}:{server.port}",
        b"Subject: s\n\nx\n",
        sender="s@example.org",
        recipients=[f"u@{domain}"],
    )
    result = await mailcarrier.deliver(request, config=config, log=MemoryLog())
    assert result.recipients[0].status is DeliveryStatus.SENT
    with dns_zone[1].lock:
        dns_zone[1].records = [r for r in dns_zone[1].records if str(r.rname) != owner]
    bad = "3 1 1 " + "00" * 32
    add_tlsa(dns_zone[1], host, server.port, bad)
    result = await mailcarrier.deliver(request, config=config, log=MemoryLog())
    assert result.recipients[0].status is DeliveryStatus.DEFERRED
    # The policy domain of a DANE policy is the TLSA base domain, the MX host (RFC 8460
    # 1.3, Postfix's base_domain); the next hop's report counts it.
    rows = TlsrptStore(data).rows(today())
    assert rows == [
        (
            Attempt(
                today(),
                host,
                "tlsa",
                (bad,),
                (),
                "validation-failure",
                "127.0.0.1",
                host,
                "127.0.0.1",
                report_domain=domain,
            ),
            1,
        ),
        (Attempt(today(), host, "tlsa", (good,), report_domain=domain), 1),
    ]
    report = build_report(rows, domain=domain, day=today(), organization="O", contact="c")
    assert [p["policy"] for p in report["policies"]] == [
        {"policy-type": "tlsa", "policy-string": [bad], "policy-domain": host},
        {"policy-type": "tlsa", "policy-string": [good], "policy-domain": host},
    ]
    assert (
        build_report(rows, domain=host, day=today(), organization="O", contact="c")["policies"]
        == []
    )


async def test_testing_mode_counts_what_enforce_would_refuse(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    add_mx(dns_zone[1], DOMAIN, MX)
    add_policy_host(dns_zone[1], DOMAIN)
    policy_server.answers[f"mta-sts.{DOMAIN}"] = PolicyAnswer(policy_text("testing", MX))
    wrong = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.elsewhere.test"))))
    good = tls_server(TlsServerScript(pki.server_context(pki.leaf(MX))))
    config = settings(pki, dns_zone, policy_server, tmp_path / "data")
    assert await send(wrong, config) is DeliveryStatus.SENT  # testing: delivered anyway
    assert await send(good, config) is DeliveryStatus.SENT
    lines = ("version: STSv1", "mode: testing", f"mx: {MX}", "max_age: 86400")
    success = Attempt(today(), DOMAIN, "sts", lines, (MX,))
    failure = dataclasses.replace(
        success,
        result_type="certificate-host-mismatch",
        sending_ip="127.0.0.1",
        receiving_mx=MX,
        receiving_ip="127.0.0.1",
    )
    assert TlsrptStore(tmp_path / "data").rows(today()) == [(success, 1), (failure, 1)]

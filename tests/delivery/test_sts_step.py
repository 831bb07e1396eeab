"""MTA-STS (RFC 8461) end to end: the loopback DNS zone publishes ``_mta-sts`` TXT, MX and A
records, an HTTPS policy server (tests/support/sts_server.py, trustme certificate for
``mta-sts.<domain>``) serves the policies, the scripted STARTTLS server is the MX host.

Covers delivery/sts_step.py (which policy applies per MX host), the TLS step's enforcement
and testing-mode reports (tls_step.py), the fetch's refusals (sts_fetch.py) and the cache
(sts_cache.py: id change, server down, restart, proactive refresh), DANE and
smtp_tls_policy_maps precedence, and a Postfix STS plugin's answer in smtp_tls_policy_maps.
`settled_policy()` and `table_policy()` (the policies reuse keys read without the TLS state)
are pinned to what the TLS state resolves by hypothesis tests over configurations,
destinations and servers.
"""

from __future__ import annotations

import asyncio
import io
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import hypothesis
import pytest
from dnslib import RR
from hypothesis import given
from hypothesis import strategies as st

import mailcarrier
from mailcarrier import DeliveryStatus
from mailcarrier.config.settings import AgentSettings, Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.delivery.hop import Hop
from mailcarrier.delivery.recipients import RecipientTracker
from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.delivery.servers import Destination
from mailcarrier.delivery.state import Attempt, DeliveryState
from mailcarrier.delivery.sts_cache import CachedPolicy, StsPolicies
from mailcarrier.delivery.sts_fetch import FetchSettings
from mailcarrier.delivery.sts_step import (
    plain_policy,
    refine_policy,
    settled_policy,
    table_policy,
)
from mailcarrier.delivery.tls_job import TlsClient, TlsJob
from mailcarrier.log import MemoryLog
from mailcarrier.routing.resolver import Resolver
from mailcarrier.status import RecipientStatus
from mailcarrier.tls.policy import untabled_policy
from mailcarrier.transport.connection import Peer
from tests.support.deliver import request_to
from tests.support.sts_server import (
    PolicyAnswer,
    PolicyServer,
    add_policy_host,
    policy_text,
    set_record_id,
)
from tests.support.tls import (
    SECRET,
    Pki,
    StartServer,
    Zone,
    add_mx,
    add_tlsa,
    context_from_pem,
    mint_expired_leaf,
    mint_self_signed,
    no_plaintext_envelope,
    spki_sha256,
    tls_field,
    tls_settings,
)
from tests.support.tls_server import ScriptedTlsServer, TlsServerScript

DOMAIN = "sts.test"
MX = "mx.sts.test"
HOST = f"mta-sts.{DOMAIN}"
POLICY_NAMES = (HOST, "mta-sts.other.test", "mta-sts.slow.test", "mta-sts.dane.signed.test")


@pytest.fixture
def policy_server(pki: Pki) -> Iterator[PolicyServer]:
    server = PolicyServer(pki.server_context(pki.leaf(*POLICY_NAMES)))
    yield server
    server.stop()


def _settings(
    pki: Pki, zone: Zone, policy: PolicyServer, tmp_path: Path, **params: str
) -> Settings:
    return tls_settings(
        zone[0],
        smtp_tls_CAfile=pki.cafile(),
        smtp_mta_sts_https_port=str(policy.port),
        data_directory=str(tmp_path / "data"),
        **params,
    )


def _publish(zone: Zone, policy: PolicyServer, body: bytes, domain: str = DOMAIN) -> None:
    add_mx(zone[1], domain, f"mx.{domain}")
    add_policy_host(zone[1], domain)
    policy.answers[f"mta-sts.{domain}"] = PolicyAnswer(body)


def _good_server(pki: Pki, tls_server: StartServer, name: str = MX) -> ScriptedTlsServer:
    return tls_server(TlsServerScript(pki.server_context(pki.leaf(name))))


async def _send(
    server: ScriptedTlsServer,
    config: Settings,
    *,
    domain: str = DOMAIN,
    agent: DeliveryAgent | None = None,
) -> tuple[RecipientStatus, list[str]]:
    request = request_to(
        f"{domain}:{server.port}",
        b"Subject: secret\n\n" + SECRET + b"\n",
        sender="s@example.org",
        recipients=[f"u@{domain}"],
    )
    log = MemoryLog()
    if agent is None:
        result = await mailcarrier.deliver(request, config=config, log=log)
    else:
        agent.log = log
        if agent.sts is not None:
            agent.sts.log = log
        result = await agent.deliver(request)
    return result.recipients[0], log.lines


def _warnings(lines: list[str]) -> list[str]:
    return [ln.split("warning: ", 1)[1] for ln in lines if "warning: " in ln]


# --- enforce ------------------------------------------------------------------------------------
async def test_enforce_with_a_matching_mx_delivers_over_verified_tls(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("enforce", "*.sts.test"))
    server = _good_server(pki, tls_server)
    status, lines = await _send(server, _settings(pki, dns_zone, policy_server, tmp_path))
    assert status.status is DeliveryStatus.SENT, lines
    assert tls_field(lines) == "sts"
    assert status.tls == "sts" and status.to_json()["tls"] == "sts"
    assert no_plaintext_envelope(server)
    assert any(f"Verified TLS connection established to {MX}[127.0.0.1]" in ln for ln in lines)
    assert policy_server.hits[HOST] == 1
    assert _warnings(lines) == []
    # The policy is cached durably in data_directory, one file per domain.
    cached = json.loads((tmp_path / "data" / "mta-sts" / f"{DOMAIN}.json").read_text())
    assert (cached["id"], cached["mode"], cached["mx"]) == ("20260101", "enforce", ["*.sts.test"])


async def test_enforce_with_a_non_matching_mx_defers_without_connecting(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("enforce", "mail.example.net"))
    server = _good_server(pki, tls_server)
    status, lines = await _send(server, _settings(pki, dns_zone, policy_server, tmp_path))
    assert (status.status, status.dsn) == (DeliveryStatus.DEFERRED, "4.7.5")
    assert status.diagnostic == f"MX host {MX} is not allowed by the MTA-STS policy of {DOMAIN}"
    assert _warnings(lines) == [f"MX name '{MX}' does not match STS MX pattern for '{DOMAIN}'"]
    assert tls_field(lines) == "!sts"
    assert server.capture.connections == 0


@pytest.mark.parametrize("kind", ["expired", "self-signed", "wrong-name"])
async def test_enforce_refuses_a_bad_mx_certificate(
    kind: str,
    pki: Pki,
    dns_zone: Zone,
    policy_server: PolicyServer,
    tls_server: StartServer,
    tmp_path: Path,
) -> None:
    _publish(dns_zone, policy_server, policy_text("enforce", MX))
    if kind == "expired":
        ctx = context_from_pem(tmp_path, *mint_expired_leaf(pki.ca, MX))
    elif kind == "self-signed":
        ctx = context_from_pem(tmp_path, *mint_self_signed(MX)[1:])
    else:
        ctx = pki.server_context(pki.leaf("mx.elsewhere.test"))
    server = tls_server(TlsServerScript(ctx))
    status, lines = await _send(server, _settings(pki, dns_zone, policy_server, tmp_path))
    assert (status.status, status.dsn) == (DeliveryStatus.DEFERRED, "4.7.5")
    assert status.diagnostic == "Server certificate not verified"
    assert tls_field(lines) == "!sts"
    assert any("certificate verification failed for" in ln for ln in lines)
    assert no_plaintext_envelope(server)


async def test_enforce_without_starttls_defers_never_plaintext(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("enforce", MX))
    server = tls_server(TlsServerScript(None, offer_starttls=False))
    status, lines = await _send(server, _settings(pki, dns_zone, policy_server, tmp_path))
    assert (status.status, status.dsn) == (DeliveryStatus.DEFERRED, "4.7.4")
    assert tls_field(lines) == "!sts"
    assert no_plaintext_envelope(server)


async def test_enforce_starttls_refused_with_5xx_defers(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("enforce", MX))
    script = TlsServerScript(pki.server_context(pki.leaf(MX)), starttls_reply=b"554 5.7.0 no\r\n")
    status, _ = await _send(tls_server(script), _settings(pki, dns_zone, policy_server, tmp_path))
    assert (status.status, status.dsn) == (DeliveryStatus.DEFERRED, "4.7.0")


# --- testing and none ---------------------------------------------------------------------------
async def test_testing_mode_delivers_and_logs_what_would_fail(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("testing", "mail.example.net"))
    ctx = context_from_pem(tmp_path, *mint_self_signed(MX)[1:])
    server = tls_server(TlsServerScript(ctx))
    status, lines = await _send(server, _settings(pki, dns_zone, policy_server, tmp_path))
    assert status.status is DeliveryStatus.SENT, lines
    assert tls_field(lines) == "may/!(sts)"
    prefix = f"MTA-STS policy of {DOMAIN} in testing mode: delivery to {MX}[127.0.0.1]:"
    reports = [ln[ln.index(prefix) :] for ln in lines if prefix in ln]
    assert len(reports) == 2, lines
    assert reports[0].endswith(
        f"would fail under enforce: MX name '{MX}' does not match the mx patterns"
    )
    assert "would fail under enforce: certificate verification failed:" in reports[1]
    assert no_plaintext_envelope(server)  # testing mode still tries STARTTLS


async def test_testing_mode_that_would_pass(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("testing", MX))
    server = _good_server(pki, tls_server)
    status, lines = await _send(server, _settings(pki, dns_zone, policy_server, tmp_path))
    assert status.status is DeliveryStatus.SENT
    assert tls_field(lines) == "may/(sts)"
    assert not any("testing mode" in ln for ln in lines)


async def test_none_mode_applies_no_policy(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("none"))
    server = _good_server(pki, tls_server)
    status, lines = await _send(server, _settings(pki, dns_zone, policy_server, tmp_path))
    assert status.status is DeliveryStatus.SENT
    assert tls_field(lines) is None  # smtp_tls_security_level is empty: plaintext, as asked
    assert policy_server.hits[HOST] == 1


# --- what the fetch refuses (one line, then no policy) ------------------------------------------
@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        (
            PolicyAnswer(b"", status=301, headers={"Location": "https://evil.test/p.txt"}),
            f"https://{HOST}/.well-known/mta-sts.txt: redirect (HTTP 301) to "
            "https://evil.test/p.txt not followed",
        ),
        (
            PolicyAnswer(policy_text("enforce", "x.test") + b"#" * (65 * 1024)),
            f"https://{HOST}/.well-known/mta-sts.txt: policy larger than 65536 bytes",
        ),
        (
            PolicyAnswer(policy_text("enforce", "x.test"), content_type="text/html"),
            f'https://{HOST}/.well-known/mta-sts.txt: media type "text/html" is not text/plain',
        ),
        (PolicyAnswer(b"", status=404), f"https://{HOST}/.well-known/mta-sts.txt: HTTP status 404"),
    ],
    ids=["redirect", "65KB", "media-type", "404"],
)
async def test_refused_fetch_falls_back_to_no_policy(
    answer: PolicyAnswer,
    problem: str,
    pki: Pki,
    dns_zone: Zone,
    policy_server: PolicyServer,
    tls_server: StartServer,
    tmp_path: Path,
) -> None:
    _publish(dns_zone, policy_server, b"")
    policy_server.answers[HOST] = answer
    server = _good_server(pki, tls_server)
    status, lines = await _send(server, _settings(pki, dns_zone, policy_server, tmp_path))
    assert status.status is DeliveryStatus.SENT  # as though the domain had no MTA-STS
    assert _warnings(lines) == [
        f"MTA-STS policy fetch for {DOMAIN} failed: {problem}; no MTA-STS policy applied"
    ]
    assert tls_field(lines) is None


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (b"version: STSv1\nmode: enforce\nmx: mx.sts.test\n", "no max_age field"),
        (
            b"version: STSv1\nmode: enforce\nmax_age: 99999999999\nmx: a.test\n",
            'bad max_age "99999999999"',
        ),
        (
            b"version: STSv1\nmode: enforce\nmax_age: 60\nmx: *.*.test\n",
            'bad mx pattern "*.*.test"',
        ),
        (b"version: STSv1\nmode: enforce\nmax_age: 60\n", "no mx field in enforce mode"),
        (b"mode: enforce\nmax_age: 60\nmx: a.test\n", "no version field"),
    ],
)
async def test_invalid_policy_falls_back_to_no_policy(
    body: bytes,
    problem: str,
    pki: Pki,
    dns_zone: Zone,
    policy_server: PolicyServer,
    tls_server: StartServer,
    tmp_path: Path,
) -> None:
    _publish(dns_zone, policy_server, body)
    server = _good_server(pki, tls_server)
    status, lines = await _send(server, _settings(pki, dns_zone, policy_server, tmp_path))
    assert status.status is DeliveryStatus.SENT
    assert _warnings(lines) == [
        f"MTA-STS policy of {DOMAIN} is invalid: {problem}; no MTA-STS policy applied"
    ]


async def test_policy_host_with_a_certificate_for_another_name_is_refused(
    pki: Pki, dns_zone: Zone, tls_server: StartServer, tmp_path: Path
) -> None:
    wrong = PolicyServer(pki.server_context(pki.leaf("mta-sts.elsewhere.test")))
    try:
        _publish(dns_zone, wrong, policy_text("enforce", "nomatch.test"))
        server = _good_server(pki, tls_server)
        status, lines = await _send(server, _settings(pki, dns_zone, wrong, tmp_path))
    finally:
        wrong.stop()
    assert status.status is DeliveryStatus.SENT
    (warning,) = _warnings(lines)
    assert warning.startswith(
        f"MTA-STS policy fetch for {DOMAIN} failed: certificate verification failed for "
        f"{HOST}[127.0.0.1]:{wrong.port}: Hostname mismatch"
    ), warning
    assert warning.endswith("; no MTA-STS policy applied")


async def test_unreachable_policy_host(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    add_mx(dns_zone[1], DOMAIN, MX)
    dns_zone[1].records.extend(
        RR.fromZone(f'_mta-sts.{DOMAIN}. 300 IN TXT "v=STSv1; id=1"\n{HOST}. 300 IN A 127.0.0.2')
    )
    server = _good_server(pki, tls_server)
    status, lines = await _send(server, _settings(pki, dns_zone, policy_server, tmp_path))
    assert status.status is DeliveryStatus.SENT
    assert _warnings(lines) == [
        f"MTA-STS policy fetch for {DOMAIN} failed: connect to {HOST}[127.0.0.2]:"
        f"{policy_server.port}: Connect call failed ('127.0.0.2', {policy_server.port}); "
        "no MTA-STS policy applied"
    ]


async def test_a_slow_policy_host_does_not_hold_up_other_destinations(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, b"", domain="slow.test")
    policy_server.answers["mta-sts.slow.test"] = PolicyAnswer(stall=True)
    add_mx(dns_zone[1], "fast.test", "mx.fast.test")
    slow_server = _good_server(pki, tls_server, "mx.slow.test")
    fast_server = _good_server(pki, tls_server, "mx.fast.test")
    config = _settings(pki, dns_zone, policy_server, tmp_path, smtp_mta_sts_timeout="3s")
    agent = DeliveryAgent(config, log=MemoryLog())
    finished: list[str] = []

    async def one(server: ScriptedTlsServer, domain: str) -> list[str]:
        request = request_to(f"{domain}:{server.port}", b"x\n", recipients=[f"u@{domain}"])
        log = MemoryLog()
        result = await DeliveryAgent(config, log=log, sts=agent.sts).deliver(request)
        assert result.recipients[0].status is DeliveryStatus.SENT
        finished.append(domain)
        return log.lines

    slow = asyncio.ensure_future(one(slow_server, "slow.test"))
    await asyncio.sleep(0)  # the slow fetch is under way
    await one(fast_server, "fast.test")
    assert finished == ["fast.test"]  # delivered while the slow fetch was pending
    await asyncio.wait_for(slow, 20)
    assert finished == ["fast.test", "slow.test"]


# --- the cache ----------------------------------------------------------------------------------
async def test_id_change_refetches_and_same_id_does_not(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("enforce", MX))
    server = _good_server(pki, tls_server)
    agent = DeliveryAgent(_settings(pki, dns_zone, policy_server, tmp_path))
    await _send(server, agent.settings, agent=agent)
    await _send(server, agent.settings, agent=agent)
    assert policy_server.hits[HOST] == 1
    policy_server.answers[HOST] = PolicyAnswer(policy_text("enforce", "mail.example.net"))
    set_record_id(dns_zone[1], DOMAIN, "20260202")
    status, lines = await _send(server, agent.settings, agent=agent)
    assert policy_server.hits[HOST] == 2
    assert status.status is DeliveryStatus.DEFERRED
    assert _warnings(lines) == [f"MX name '{MX}' does not match STS MX pattern for '{DOMAIN}'"]


async def test_cached_policy_applies_while_the_policy_server_is_down(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("enforce", MX))
    server = _good_server(pki, tls_server)
    agent = DeliveryAgent(_settings(pki, dns_zone, policy_server, tmp_path))
    await _send(server, agent.settings, agent=agent)
    policy_server.stop()
    set_record_id(dns_zone[1], DOMAIN, "20260303")  # a new id: a fetch is tried, and fails
    status, lines = await _send(server, agent.settings, agent=agent)
    assert status.status is DeliveryStatus.SENT
    assert tls_field(lines) == "sts"
    (warning,) = _warnings(lines)
    assert warning.startswith(f"MTA-STS policy fetch for {DOMAIN} failed: connect to {HOST}")
    assert warning.endswith("; using the cached policy (mode enforce, id 20260101)")
    # A TXT record that disappears does not remove the cached policy either (RFC 8461 5.1).
    with dns_zone[1].lock:
        dns_zone[1].records = [r for r in dns_zone[1].records if "_mta-sts" not in str(r.rname)]
    status, lines = await _send(server, agent.settings, agent=agent)
    assert (status.status, tls_field(lines)) == (DeliveryStatus.SENT, "sts")


async def test_cache_survives_a_restart(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("enforce", "mail.example.net"))
    server = _good_server(pki, tls_server)
    config = _settings(pki, dns_zone, policy_server, tmp_path)
    first, _ = await _send(server, config)
    policy_server.stop()
    second, lines = await _send(server, config)  # a new agent, the same data_directory
    assert first.status is second.status is DeliveryStatus.DEFERRED
    assert second.diagnostic == f"MX host {MX} is not allowed by the MTA-STS policy of {DOMAIN}"
    assert policy_server.hits[HOST] == 1
    assert _warnings(lines) == [f"MX name '{MX}' does not match STS MX pattern for '{DOMAIN}'"]


async def test_proactive_refresh_without_mail(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("enforce", MX, max_age=2))
    server = _good_server(pki, tls_server)
    agent = DeliveryAgent(_settings(pki, dns_zone, policy_server, tmp_path), sts_refresh=True)
    status, _ = await _send(server, agent.settings, agent=agent)
    assert status.status is DeliveryStatus.SENT
    deadline = time.monotonic() + 20
    while policy_server.hits[HOST] < 3 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    agent.stop_sts_refresh()
    assert policy_server.hits[HOST] >= 3  # refreshed twice, no second message


# --- precedence ---------------------------------------------------------------------------------
async def test_dane_wins_over_sts_on_one_domain(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    domain, host = "dane.signed.test", "mx.dane.signed.test"
    leaf = pki.leaf(host)
    server = tls_server(TlsServerScript(pki.server_context(leaf)))
    _publish(dns_zone, policy_server, policy_text("enforce", "mail.example.net"), domain)
    owner = add_tlsa(dns_zone[1], host, server.port, f"3 1 1 {spki_sha256(leaf)}")
    config = _settings(
        pki,
        dns_zone,
        policy_server,
        tmp_path,
        smtp_tls_security_level="dane",
        smtp_dns_support_level="dnssec",
    )
    status, lines = await _send(server, config, domain=domain)
    assert status.status is DeliveryStatus.SENT, lines
    assert tls_field(lines) == "dane"
    # A failing DANE check is never overridden by the (matching) MTA-STS policy.
    policy_server.answers[f"mta-sts.{domain}"] = PolicyAnswer(policy_text("enforce", host))
    set_record_id(dns_zone[1], domain, "2")
    with dns_zone[1].lock:
        dns_zone[1].records = [r for r in dns_zone[1].records if str(r.rname) != owner]
    add_tlsa(dns_zone[1], host, server.port, "3 1 1 " + "00" * 32)
    status, lines = await _send(server, config, domain=domain)
    assert (status.status, status.diagnostic) == (
        DeliveryStatus.DEFERRED,
        "Server certificate not verified",
    )
    assert tls_field(lines) == "!dane"


async def test_policy_maps_entry_wins_over_sts(
    pki: Pki, dns_zone: Zone, policy_server: PolicyServer, tls_server: StartServer, tmp_path: Path
) -> None:
    _publish(dns_zone, policy_server, policy_text("enforce", "mail.example.net"))
    server = _good_server(pki, tls_server)
    config = _settings(
        pki, dns_zone, policy_server, tmp_path, smtp_tls_policy_maps=f"inline:{{{DOMAIN}=may}}"
    )
    status, lines = await _send(server, config)
    assert status.status is DeliveryStatus.SENT
    assert tls_field(lines) == "may"
    assert policy_server.hits[HOST] == 0


# --- a Postfix 3.10+ STS policy plugin's answer in smtp_tls_policy_maps -------------------------
def _plugin(tail: str) -> str:
    return f"inline:{{ {{{DOMAIN} = secure match=sts.test:.sts.test servername=hostname {tail}}} }}"


@pytest.mark.parametrize(
    ("tail", "status", "diagnostic", "warning"),
    [
        (
            "policy_type=sts policy_domain=sts.test mx_host_pattern=*.sts.test",
            DeliveryStatus.SENT,
            "",
            "",
        ),
        (
            "policy_type=sts policy_domain=sts.test mx_host_pattern=mail.example.net",
            DeliveryStatus.DEFERRED,
            f"MX host {MX} is not allowed by the MTA-STS policy of {DOMAIN}",
            f"MX name '{MX}' does not match STS MX pattern for '{DOMAIN}'",
        ),
        (
            "policy_type=sts policy_domain=sts.test mx_host_pattern=*.sts.test "
            "policy_failure=sts-policy-fetch-error",
            DeliveryStatus.DEFERRED,
            "Server certificate not verified",
            "",
        ),
        (
            "policy_type=bogus",
            DeliveryStatus.DEFERRED,
            "client TLS configuration problem",
            'smtp_tls_policy_maps: attribute "policy_type" has an unexpected value: "bogus"',
        ),
        (
            "mx_host_pattern=*.sts.test",
            DeliveryStatus.DEFERRED,
            "client TLS configuration problem",
            "smtp_tls_policy_maps: built-in policy has unexpected attribute policy_ttl, "
            "policy_domain, policy_string, mx_host_pattern or policy_failure",
        ),
    ],
    ids=["match", "no-match", "policy-failure", "bad-type", "no-type"],
)
async def test_postfix_sts_plugin_answers(
    tail: str,
    status: DeliveryStatus,
    diagnostic: str,
    warning: str,
    pki: Pki,
    dns_zone: Zone,
    policy_server: PolicyServer,
    tls_server: StartServer,
    tmp_path: Path,
) -> None:
    add_mx(dns_zone[1], DOMAIN, MX)
    server = _good_server(pki, tls_server)
    config = _settings(pki, dns_zone, policy_server, tmp_path, smtp_tls_policy_maps=_plugin(tail))
    got, lines = await _send(server, config)
    assert got.status is status, lines
    if diagnostic:
        assert got.diagnostic == diagnostic
    assert _warnings(lines) == ([warning] if warning else [])
    assert policy_server.hits[HOST] == 0  # the plugin's answer, not ours
    if status is DeliveryStatus.SENT:
        assert tls_field(lines) == "secure"


# --- settled_policy(): the policy known without the TLS state ---------------------------


class _EnforceEverywhere(StsPolicies):
    """An enforce policy for every domain, so that a settled policy that forgot MTA-STS
    would differ from what `TlsJob.resolve()` gives."""

    async def policy_for(
        self, domain: str, resolver: Resolver, settings: FetchSettings
    ) -> CachedPolicy | None:
        return CachedPolicy(domain, "1", "enforce", ("*.example.com",), 86400, time.time())


_YES_NO = st.sampled_from(["yes", "no"])
_CLIENT_PARAMS = {
    "tls_security_level": st.sampled_from(["", "none", "may", "encrypt", "verify", "dane"]),
    "mta_sts_enable": _YES_NO,
    "tls_wrappermode": _YES_NO,
    "use_tls": _YES_NO,
    "enforce_tls": _YES_NO,
    "tls_policy_maps": st.sampled_from(
        [
            "",
            "inline:{example.com=encrypt}",
            "inline:{[192.0.2.1]:25=none}",
            # A Postfix STS plugin's answer: its MX patterns are matched per server.
            "inline:{{example.com=secure policy_type=sts policy_domain=example.com "
            "mx_host_pattern=*.example.com}}",
        ]
    ),
    "tls_per_site": st.sampled_from(["", "inline:{mx.example.com=MUST}"]),
}
_MAIN_PARAMS = {"requiretls_enable": _YES_NO, "tls_required_enable": _YES_NO}
_DESTINATIONS = st.sampled_from(
    ["example.com", "Example.COM:587", "[192.0.2.1]", "[192.0.2.1]:25", " [mx.example.com]"]
)

_PEERS = st.builds(
    Peer,
    st.sampled_from(["mx.example.com", "mail.other.test", "192.0.2.1"]),
    st.just("192.0.2.1"),
    st.sampled_from([25, 587]),
    mx_dnssec_valid=st.sampled_from([None, False, True]),
)


def _agent(**params: str) -> AgentSettings:
    return Settings.defaults().with_overrides(params).for_transport("smtp")


@st.composite
def _configurations(draw: st.DrawFn) -> AgentSettings:
    transport = draw(st.sampled_from(["smtp", "lmtp"]))
    params = {
        f"{transport}_{name}": value
        for name, value in draw(st.fixed_dictionaries({}, optional=_CLIENT_PARAMS)).items()
    }
    params.update(draw(st.fixed_dictionaries({}, optional=_MAIN_PARAMS)))
    return Settings.defaults().with_overrides(params).for_transport(transport)


@given(
    agent=_configurations(),
    destination=_DESTINATIONS,
    peer=_PEERS,
    with_sts=st.booleans(),
    requiretls=st.booleans(),
    tls_required_no=st.booleans(),
)
# Where the TLS state gives another policy: MTA-STS for an MX host of a domain, and
# "TLS-Required: No" capping a level above may.
@hypothesis.example(
    agent=_agent(),
    destination="example.com",
    peer=Peer("mx.example.com", "192.0.2.1", 25, mx_dnssec_valid=False),
    with_sts=True,
    requiretls=False,
    tls_required_no=False,
)
@hypothesis.example(
    agent=_agent(smtp_tls_security_level="encrypt"),
    destination="[192.0.2.1]",
    peer=Peer("192.0.2.1", "192.0.2.1", 25),
    with_sts=False,
    requiretls=False,
    tls_required_no=True,
)
@hypothesis.settings(max_examples=300, deadline=None)
def test_settled_policy_is_what_the_tls_state_resolves(
    agent: AgentSettings,
    destination: str,
    peer: Peer,
    with_sts: bool,
    requiretls: bool,
    tls_required_no: bool,
) -> None:
    """The fast path of reuse keys (Hop.settled) pinned to the general one: a settled policy
    is exactly what `TlsJob.resolve()` gives the server (MTA-STS refinement included) and
    what `TlsJob.policy()` gives without it, and resolving it logs nothing."""
    sts = _EnforceEverywhere(Path("/nonexistent"), log=MemoryLog()) if with_sts else None
    settled = settled_policy(
        agent, destination, sts=sts, requiretls=requiretls, tls_required_no=tls_required_no
    )
    if settled is None:
        return  # the TLS state decides, as before

    log = MemoryLog()

    def job() -> TlsJob:
        return TlsClient().job(
            agent,
            destination,
            log=log,
            resolver=lambda: cast(Resolver, object()),
            preactive_delay=0.0,
            sts=sts,
            refine=refine_policy if sts is not None else None,
            requiretls=requiretls,
            tls_required_no=tls_required_no,
        )

    resolving = job()
    assert asyncio.run(resolving.resolve(peer)) is settled
    assert resolving.policy(peer) is settled
    assert job().policy(peer) is settled  # the state made later, without resolve()
    assert log.lines == []


def test_settled_policy_only_where_nothing_else_decides() -> None:
    """Settled for the usual plaintext relay and for any destination without MTA-STS; not
    with a policy table, an RFC 8689 flag, or MTA-STS possible for the destination."""
    agent = Settings.defaults().for_transport("smtp")
    sts = _EnforceEverywhere(Path("/nonexistent"), log=MemoryLog())
    plain = {"requiretls": False, "tls_required_no": False}
    assert settled_policy(agent, "[192.0.2.1]:25", sts=sts, **plain) is untabled_policy(agent)
    assert settled_policy(agent, "example.com", sts=None, **plain) is not None
    assert settled_policy(agent, "example.com", sts=sts, **plain) is None
    for flag in ("requiretls", "tls_required_no"):
        assert settled_policy(agent, "[192.0.2.1]", sts=None, **{**plain, flag: True}) is None
    tabled = Settings.defaults().with_overrides({"smtp_tls_policy_maps": "inline:{a.b=may}"})
    assert settled_policy(tabled.for_transport("smtp"), "[192.0.2.1]", sts=None, **plain) is None
    broken = Settings.defaults().with_overrides({"smtp_tls_policy_maps": "hash:/nonexistent/x"})
    assert untabled_policy(broken.for_transport("smtp")) is None


_SENDERS = st.sampled_from(["", "a@example.org", "b@example.org"])
_HOP_QUERIES = st.lists(
    st.tuples(_DESTINATIONS, st.booleans(), st.booleans(), _SENDERS), max_size=8
)


def _hop_of(delivery: DeliveryAgent, request: DeliveryRequest, destination: str) -> Hop:
    job = DeliveryState(
        request=request,
        profile=delivery._profile(request.transport),
        tracker=RecipientTracker(request.recipients),
        attempt=Attempt(request, 0.0, 0.0),
        factory=lambda: (),
        size=0,
    )
    return delivery._hop(job, Destination(destination, False))


@given(
    configuration=_configurations(),
    with_sts=st.booleans(),
    sender_dependent=st.booleans(),
    queries=_HOP_QUERIES,
)
@hypothesis.settings(max_examples=200, deadline=None)
def test_the_hops_an_agent_keeps_are_the_general_answers(
    configuration: AgentSettings,
    with_sts: bool,
    sender_dependent: bool,
    queries: list[tuple[str, bool, bool, str]],
) -> None:
    """`DeliveryAgent._hop` starts a hop from what the agent kept of earlier requests (its
    settled policy, whether a table decides alone, its connection-cache key): pinned to
    `settled_policy()`, `plain_policy()` and the hop a new agent makes, over a run of
    requests (destinations, RFC 8689 flags and senders, repeated or not) through one
    agent, with and without sender-dependent authentication (whose keys name the sender)."""
    transport, settings = configuration.transport, configuration.settings
    if sender_dependent:
        settings = settings.with_overrides(
            {
                f"{transport}_sasl_auth_enable": "yes",
                f"{transport}_sender_dependent_authentication": "yes",
            }
        )
    agent = settings.for_transport(transport)
    sts = _EnforceEverywhere(Path("/nonexistent"), log=MemoryLog()) if with_sts else None

    def new_agent() -> DeliveryAgent:  # without `sts`: its own when MTA-STS is enabled
        return DeliveryAgent(settings, sts=sts, cache=ConnectionCache(CacheLimits()))

    keeping = new_agent()
    for destination, requiretls, tls_required_no, sender in [*queries, *queries]:
        request = DeliveryRequest(
            "Q1",
            destination,
            sender,
            (Recipient("u@example.net"),),
            io.BytesIO(),
            transport=transport,
            requiretls=requiretls,
            tls_required_no=tls_required_no,
        )
        hop = _hop_of(keeping, request, destination)
        general = _hop_of(new_agent(), request, destination)
        flags = {"requiretls": requiretls, "tls_required_no": tls_required_no}
        settled = settled_policy(agent, destination, sts=keeping.sts, **flags)
        assert hop.settled is settled
        assert general.settled is settled
        plain = plain_policy(agent, destination, sts=keeping.sts, **flags)
        assert hop.by_table == general.by_table == (settled is None and plain)
        assert hop.dest_key == general.dest_key


@given(
    agent=_configurations(),
    destination=_DESTINATIONS,
    peer=_PEERS,
    with_sts=st.booleans(),
)
@hypothesis.settings(max_examples=300, deadline=None)
def test_table_policy_is_what_the_tls_state_resolves(
    agent: AgentSettings, destination: str, peer: Peer, with_sts: bool
) -> None:
    """The table's answer kept on the hop (Hop.resolved, sts_step.table_policy) where the
    policy is a table's alone: the same policy as `TlsJob.resolve()`, an STS plugin's MX
    match included, with the same log lines."""
    sts = _EnforceEverywhere(Path("/nonexistent"), log=MemoryLog()) if with_sts else None
    plain = plain_policy(agent, destination, sts=sts, requiretls=False, tls_required_no=False)
    hypothesis.assume(plain)
    fast, general = MemoryLog(), MemoryLog()
    job = TlsClient().job(
        agent,
        destination,
        log=general,
        resolver=lambda: cast(Resolver, object()),
        preactive_delay=0.0,
        sts=sts,
        refine=refine_policy if sts is not None else None,
    )
    found = asyncio.run(table_policy(agent, destination, peer, sts=sts is not None, log=fast))
    assert found == asyncio.run(job.resolve(peer))
    assert fast.lines == general.lines

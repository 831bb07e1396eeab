"""delivery/tally.py: what the agent counts for the metrics and hands over with each result
(`DeliveryResult.counts`): connections, DNS questions, TLS levels and results, DANE; checked
against the scripted STARTTLS server and the loopback DNS zone of tests/support/tls.py. The
MTA-STS results of setup.py's count_tls() are checked on its own."""

from __future__ import annotations

import socket
from typing import cast

import pytest
import trustme
from dnslib import RR

from mailcarrier import DeliveryStatus
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.setup import count_tls
from mailcarrier.delivery.tally import Tally
from mailcarrier.delivery.tls_job import TlsOutcome, TlsResult, deferred_outcome
from mailcarrier.delivery.tls_step import TlsJob
from mailcarrier.log import MemoryLog
from mailcarrier.routing.resolver import AddressRecord, NativeAnswer
from mailcarrier.status import Counts
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.policy import TlsPolicy
from mailcarrier.tls.verify import Trust
from mailcarrier.transport.connection import Peer
from tests.support.deliver import request_to
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.settings import CLIENT, make_settings
from tests.support.tls import Pki, StartServer, Zone, add_mx, spki_sha256, tls_settings
from tests.support.tls_server import TlsServerScript


async def _counts(agent: DeliveryAgent, nexthop: str, recipient: str = "u@tls.test") -> Counts:
    request = request_to(
        nexthop, b"Subject: t\n\nbody\n", sender="s@example.org", recipients=[recipient]
    )
    result = await agent.deliver(request)
    return result.counts


def test_drain_starts_again_from_zero() -> None:
    tally = Tally()
    tally.connection("opened")
    tally.tls("may", "plaintext")
    tally.connection("opened")
    assert tally.drain() == ((("connection", "opened"), 2), (("tls", "may", "plaintext"), 1))
    assert tally.drain() == ()


async def test_verified_session_dns_and_connection(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.tls.test"))))
    settings = tls_settings(port, smtp_tls_security_level="verify", smtp_tls_CAfile=pki.cafile())
    agent = DeliveryAgent(settings, log=MemoryLog())
    counts = await _counts(agent, f"tls.test:{server.port}")
    assert dict(counts) == {
        ("connection", "opened"): 1,
        ("dns", "A", "ok"): 1,
        ("dns", "MX", "ok"): 1,
        ("dns", "TXT", "nxdomain"): 1,  # _mta-sts.tls.test: no MTA-STS policy
        ("tls", "verify", "verified"): 1,
    }
    # The next result carries only what happened since this one.
    missing = await _counts(agent, "nowhere.tls.test")
    assert dict(missing) == {("dns", "MX", "nxdomain"): 1, ("dns", "A", "nxdomain"): 1}


async def test_tls_failures_are_counted_by_level(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    unknown_ca = pki.server_context(trustme.CA().issue_cert("mx.tls.test"))
    plain = tls_server(TlsServerScript(unknown_ca, offer_starttls=False))
    settings = tls_settings(port, smtp_tls_security_level="encrypt")
    counts = dict(await _counts(DeliveryAgent(settings, log=MemoryLog()), f"tls.test:{plain.port}"))
    assert counts[("tls", "encrypt", "failed")] == 1
    untrusted = tls_server(TlsServerScript(unknown_ca))
    settings = tls_settings(port, smtp_tls_security_level="may")
    counts = dict(
        await _counts(DeliveryAgent(settings, log=MemoryLog()), f"tls.test:{untrusted.port}")
    )
    assert counts[("tls", "may", "untrusted")] == 1


async def test_dane_results(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    port, zone = dns_zone
    results = {}
    for domain, matching in (("d.signed.test", True), ("e.signed.test", False)):
        add_mx(zone, domain, f"mx.{domain}")
        leaf = pki.leaf(f"mx.{domain}")
        server = tls_server(TlsServerScript(pki.server_context(leaf)))
        data = spki_sha256(leaf) if matching else "00" * 32
        zone.records.extend(
            RR.fromZone(f"_{server.port}._tcp.mx.{domain}. 300 IN TLSA 3 1 1 {data}")
        )
        settings = tls_settings(
            port, smtp_tls_security_level="dane", smtp_dns_support_level="dnssec"
        )
        agent = DeliveryAgent(settings, log=MemoryLog())
        request = request_to(
            f"{domain}:{server.port}", b"\n", sender="", recipients=[f"u@{domain}"]
        )
        result = await agent.deliver(request)
        results[domain] = (result.recipients[0].status, dict(result.counts))
    status, counts = results["d.signed.test"]
    assert status is DeliveryStatus.SENT
    assert counts[("dane", "verified")] == 1 and counts[("tls", "dane", "verified")] == 1
    assert counts[("dns", "TLSA", "ok")] == 1
    status, counts = results["e.signed.test"]
    assert status is DeliveryStatus.DEFERRED
    assert counts[("dane", "failed")] == 1 and counts[("tls", "dane", "failed")] == 1


class _StsJob:
    """What count_tls() reads of a TlsJob: the server's policy, and the servers an MTA-STS
    policy in testing mode would have refused."""

    def __init__(self, policy: TlsPolicy, would_fail: set[str]) -> None:
        self._policy = policy
        self.sts_would_fail = would_fail

    def policy(self, peer: Peer) -> TlsPolicy:
        return self._policy


_VERIFIED = TlsOutcome(TlsResult.TLS, SecurityLevel.SECURE, trust=Trust.VERIFIED)
_REFUSED = deferred_outcome(SecurityLevel.SECURE, "4.7.5", "Server certificate not verified")


@pytest.mark.parametrize(
    ("mode", "outcome", "would_fail", "expected"),
    [
        ("enforce", _VERIFIED, False, "pass"),
        ("enforce", _REFUSED, False, "fail"),
        ("testing", _VERIFIED, True, "fail"),  # delivered, but enforce would have refused
        ("testing", _VERIFIED, False, "pass"),
    ],
)
def test_mta_sts_results(mode: str, outcome: TlsOutcome, would_fail: bool, expected: str) -> None:
    peer = Peer("mx.sts.test", "127.0.0.1", 25)
    policy = TlsPolicy(
        SecurityLevel.SECURE, policy_type="sts", policy_domain="sts.test", sts_mode=mode
    )
    job = _StsJob(policy, {peer.relay} if would_fail else set())
    tally = Tally()
    count_tls(tally, cast(TlsJob, job), peer, outcome)
    tls = ("tls", "secure", "verified" if outcome is _VERIFIED else "failed")
    assert dict(tally.drain()) == {("mta_sts", mode, expected): 1, tls: 1}


class _Hosts:
    """A NativeLookup of a fixed host table (what /etc/hosts would say)."""

    def __init__(self, table: dict[str, str]) -> None:
        self.table = table

    async def getaddrinfo(self, host: str, family: int) -> NativeAnswer:
        if host not in self.table:
            return NativeAnswer(host, (), socket.EAI_NONAME, "Name or service not known")
        return NativeAnswer(host, (AddressRecord(self.table[host], socket.AF_INET),))


async def test_native_lookups_are_counted(smtp_server: AiosmtpdServer) -> None:
    settings = make_settings(CLIENT, smtp_host_lookup="native", inet_protocols="ipv4")
    agent = DeliveryAgent(settings, log=MemoryLog(), native=_Hosts({"relay.test": "127.0.0.1"}))
    counts = await _counts(agent, f"[relay.test]:{smtp_server.port}")
    assert dict(counts) == {
        ("connection", "opened"): 1,
        ("dns", "native", "ok"): 1,
        ("tls", "none", "plaintext"): 1,
    }
    counts = await _counts(agent, f"[gone.test]:{smtp_server.port}")
    assert dict(counts) == {("dns", "native", "nxdomain"): 1}

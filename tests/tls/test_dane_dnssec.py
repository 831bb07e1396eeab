"""DANE and the DNSSEC status of the way to the server (RFC 7672 2.2; Postfix dane_init()).

The AD bit of the MX answer and of the host's A/AAAA answer are judged apart: routing
records both on each address (and the agent on each `Peer`), and the TLS step then
applies smtp_tls_dane_insecure_mx_policy to an insecure MX RRset and refuses TLSA records
of a host whose address answer was not validated. Everything runs against the dnslib
loopback zone, with the AD bit set or cleared per question."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from mailcarrier import DeliveryStatus
from mailcarrier.routing.mx import lookup_host_addresses, lookup_mx_hosts
from mailcarrier.routing.options import DnsSupport, RoutingOptions
from mailcarrier.routing.resolver import DnspythonResolver, Nameserver, ResolverConfig
from mailcarrier.routing.result import RouteResult
from mailcarrier.routing.selfaddr import OwnAddresses
from tests.support.dns import TlsZone
from tests.support.settings import make_settings
from tests.support.tls import (
    Pki,
    StartServer,
    Zone,
    add_mx,
    add_tlsa,
    no_plaintext_envelope,
    send,
    spki_sha256,
    tls_field,
    tls_settings,
)
from tests.support.tls_server import ScriptedTlsServer, TlsServerScript

WRONG = "3 1 1 " + "00" * 32
OPTIONS = RoutingOptions(randomize_addresses=False, own=OwnAddresses(frozenset({"127.0.0.1"})))


def _resolver(port: int) -> DnspythonResolver:
    return DnspythonResolver(ResolverConfig((Nameserver("127.0.0.1", port),), 2.0, True))


# --- routing: both AD bits reach each address ------------------------------------------------
async def test_routing_records_mx_and_address_ad_bits_apart(dns_zone: Zone) -> None:
    port, zone = dns_zone
    add_mx(zone, "a.signed.test", "mx.a.signed.test", "192.0.2.1")  # both signed
    add_mx(zone, "b.tls.test", "mx.b.signed.test", "192.0.2.2")  # insecure MX, signed host
    add_mx(zone, "c.signed.test", "mx.c.signed.test", "192.0.2.3")
    zone.insecure = frozenset({("mx.c.signed.test.", "A")})  # signed MX, insecure host
    options = dataclasses.replace(OPTIONS, dns_support=DnsSupport.DNSSEC, smtp_mode=True)
    found = {}
    for domain in ("a.signed.test", "b.tls.test", "c.signed.test"):
        route = await lookup_mx_hosts(domain, 25, resolver=_resolver(port), options=options)
        assert isinstance(route, RouteResult), route
        (address,) = route.addresses
        found[domain] = (address.mx_dnssec_valid, address.address_dnssec_valid)
    assert found == {
        "a.signed.test": (True, True),
        "b.tls.test": (False, True),
        "c.signed.test": (True, False),
    }
    host = await lookup_host_addresses(
        "mx.a.signed.test", 25, resolver=_resolver(port), options=options
    )
    assert isinstance(host, RouteResult)
    assert (host.addresses[0].mx_dnssec_valid, host.addresses[0].address_dnssec_valid) == (
        None,
        True,
    )
    without = dataclasses.replace(options, dns_support=DnsSupport.ENABLED)
    plain = await lookup_mx_hosts("a.signed.test", 25, resolver=_resolver(port), options=without)
    assert isinstance(plain, RouteResult) and not plain.addresses[0].address_dnssec_valid


# --- deliveries -------------------------------------------------------------------------
async def _dane(
    pki: Pki,
    tls_server: StartServer,
    dns_zone: Zone,
    domain: str,
    host: str,
    tlsa: str,
    *,
    script: TlsServerScript | None = None,
    insecure: frozenset[tuple[str, str]] = frozenset(),
    **params: str,
) -> tuple[DeliveryStatus, str, list[str], ScriptedTlsServer, TlsZone]:
    port, zone = dns_zone
    add_mx(zone, domain, host)
    leaf = pki.leaf(host)
    server = tls_server(script or TlsServerScript(pki.server_context(leaf)))
    if tlsa:
        add_tlsa(zone, host, server.port, tlsa.replace("SPKI", spki_sha256(leaf)))
    zone.insecure = insecure
    config = tls_settings(
        port,
        smtp_tls_security_level=params.pop("level", "dane"),
        smtp_dns_support_level="dnssec",
        **params,
    )
    status, lines = await send(f"{domain}:{server.port}", config)
    return status.status, status.diagnostic, lines, server, zone


async def test_secure_mx_and_host_use_tlsa(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    status, diag, lines, server, _ = await _dane(
        pki, tls_server, dns_zone, "g.signed.test", "mx.g.signed.test", "3 1 1 SPKI"
    )
    assert status is DeliveryStatus.SENT, diag
    assert any(line.startswith("Verified TLS connection established") for line in lines)
    assert tls_field(lines) == "dane"
    assert no_plaintext_envelope(server)


async def test_insecure_mx_default_policy_is_half_dane(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    """smtp_tls_dane_insecure_mx_policy = dane: the host's TLSA records are used, but the
    connection is only ever "Trusted", never "Verified"."""
    status, diag, lines, server, _ = await _dane(
        pki, tls_server, dns_zone, "h.tls.test", "mx.h.signed.test", "3 1 1 SPKI"
    )
    assert status is DeliveryStatus.SENT, diag
    assert any(line.startswith("Trusted TLS connection established") for line in lines)
    assert not any(line.startswith("Verified TLS") for line in lines)
    assert tls_field(lines) == "half-dane"
    assert no_plaintext_envelope(server)


async def test_insecure_mx_half_dane_still_enforces_the_match(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    status, diag, lines, server, _ = await _dane(
        pki, tls_server, dns_zone, "i.tls.test", "mx.i.signed.test", WRONG
    )
    assert (status, diag) == (DeliveryStatus.DEFERRED, "Server certificate not verified")
    assert tls_field(lines) == "!half-dane"
    assert not server.capture.messages and no_plaintext_envelope(server)


async def test_insecure_mx_policy_may_ignores_tlsa(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    status, diag, lines, _, zone = await _dane(
        pki,
        tls_server,
        dns_zone,
        "j.tls.test",
        "mx.j.signed.test",
        WRONG,
        smtp_tls_dane_insecure_mx_policy="may",
    )
    assert status is DeliveryStatus.SENT, diag
    assert tls_field(lines) == "may"
    assert zone.tlsa_queries() == []  # "non DNSSEC destination": no TLSA lookup at all


async def test_insecure_mx_policy_encrypt_requires_tls_without_authentication(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    status, diag, lines, server, _ = await _dane(
        pki,
        tls_server,
        dns_zone,
        "k.tls.test",
        "mx.k.signed.test",
        WRONG,
        smtp_tls_dane_insecure_mx_policy="encrypt",
    )
    assert status is DeliveryStatus.SENT, diag  # the mismatching record is not checked
    assert tls_field(lines) == "encrypt"
    assert no_plaintext_envelope(server)
    status, diag, lines, server, _ = await _dane(
        pki,
        tls_server,
        dns_zone,
        "l.tls.test",
        "mx.l.signed.test",
        WRONG,
        script=TlsServerScript(offer_starttls=False),
        smtp_tls_dane_insecure_mx_policy="encrypt",
    )
    assert status is DeliveryStatus.DEFERRED and diag.startswith("TLS is required, but was not")
    assert tls_field(lines) == "!encrypt"
    assert no_plaintext_envelope(server)


async def test_insecure_mx_with_dane_only_defers(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    status, diag, _, server, zone = await _dane(
        pki,
        tls_server,
        dns_zone,
        "m.tls.test",
        "mx.m.signed.test",
        "3 1 1 SPKI",
        level="dane-only",
    )
    assert (status, diag) == (DeliveryStatus.DEFERRED, "non DNSSEC destination")
    assert server.capture.tls_sessions == 0 and no_plaintext_envelope(server)
    assert zone.tlsa_queries() == []


async def test_insecure_host_address_means_no_tlsa(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    """A signed MX RRset, but the host's A answer comes without AD: the TLSA RRset (signed
    or not) cannot be trusted, so it is not looked up and "dane" goes on as "may"."""
    insecure = frozenset({("mx.n.signed.test.", "A")})
    status, diag, lines, _, zone = await _dane(
        pki, tls_server, dns_zone, "n.signed.test", "mx.n.signed.test", WRONG, insecure=insecure
    )
    assert status is DeliveryStatus.SENT, diag
    assert any(line.startswith("Untrusted TLS connection established") for line in lines)
    assert tls_field(lines) == "may"
    assert zone.tlsa_queries() == []


async def test_insecure_host_address_with_dane_only_defers(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    insecure = frozenset({("mx.o.signed.test.", "A")})
    status, diag, _, server, _ = await _dane(
        pki,
        tls_server,
        dns_zone,
        "o.signed.test",
        "mx.o.signed.test",
        "3 1 1 SPKI",
        insecure=insecure,
        level="dane-only",
    )
    assert (status, diag) == (DeliveryStatus.DEFERRED, "no TLSA records found")
    assert not server.capture.messages and no_plaintext_envelope(server)


async def test_force_insecure_host_tlsa_lookup(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    insecure = frozenset({("mx.p.signed.test.", "A")})
    status, diag, lines, _, zone = await _dane(
        pki,
        tls_server,
        dns_zone,
        "p.signed.test",
        "mx.p.signed.test",
        WRONG,
        insecure=insecure,
        smtp_tls_force_insecure_host_tlsa_lookup="yes",
    )
    assert (status, diag) == (DeliveryStatus.DEFERRED, "Server certificate not verified")
    assert zone.tlsa_queries() and tls_field(lines) == "!dane"


async def test_unsigned_tlsa_answer_is_ignored(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    """Secure MX and host, but the TLSA answer itself lacks AD: the records do not count
    ("dane" goes on as "may"; the same records signed make the delivery fail)."""
    port, zone = dns_zone
    add_mx(zone, "q.signed.test", "mx.q.signed.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.q.signed.test"))))
    owner = add_tlsa(zone, "mx.q.signed.test", server.port, WRONG)
    config = tls_settings(port, smtp_tls_security_level="dane", smtp_dns_support_level="dnssec")
    signed, _ = await send(f"q.signed.test:{server.port}", config)
    assert signed.diagnostic == "Server certificate not verified"
    zone.insecure = frozenset({(owner, "TLSA")})
    unsigned, lines = await send(f"q.signed.test:{server.port}", config)
    assert unsigned.status is DeliveryStatus.SENT, unsigned.diagnostic
    assert tls_field(lines) == "may"


async def test_dane_only_with_unusable_records_defers(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    status, diag, _, server, _ = await _dane(
        pki,
        tls_server,
        dns_zone,
        "r.signed.test",
        "mx.r.signed.test",
        "1 1 1 " + "00" * 32,
        level="dane-only",
    )
    assert (status, diag) == (DeliveryStatus.DEFERRED, "TLSA records unusable")
    assert not server.capture.messages and no_plaintext_envelope(server)


async def test_dane_with_unusable_records_is_encrypt(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    status, diag, lines, server, _ = await _dane(
        pki, tls_server, dns_zone, "s.signed.test", "mx.s.signed.test", "0 0 1 " + "00" * 32
    )
    assert status is DeliveryStatus.SENT, diag
    assert tls_field(lines) == "encrypt"
    assert no_plaintext_envelope(server)


async def test_dane_without_dnssec_lookups_warns_and_goes_on_as_may(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "t.signed.test", "mx.t.signed.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.t.signed.test"))))
    config = tls_settings(port, smtp_tls_security_level="dane")
    status, lines = await send(f"t.signed.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    nexthop = f"t.signed.test:{server.port}"
    assert f"warning: {nexthop}: dane configured with dnssec lookups disabled" in lines
    assert tls_field(lines) == "may"
    config = tls_settings(port, smtp_tls_security_level="dane-only")
    status, _ = await send(nexthop, config)
    assert (status.dsn, status.diagnostic) == ("4.7.5", "client TLS configuration problem")


# --- smtp_tls_dane_insecure_mx_policy default -----------------------------------------------
@pytest.mark.parametrize(
    ("params", "smtp", "lmtp"),
    [
        ({}, "may", "may"),
        ({"smtp_tls_security_level": "dane"}, "dane", "may"),
        ({"smtp_tls_security_level": "dane-only"}, "may", "may"),
        ({"smtp_tls_security_level": "encrypt"}, "may", "may"),
        ({"lmtp_tls_security_level": "dane"}, "may", "dane"),
        (
            {"smtp_tls_security_level": "dane", "smtp_tls_dane_insecure_mx_policy": "encrypt"},
            "encrypt",
            "may",
        ),
    ],
)
def test_insecure_mx_policy_default_follows_the_security_level(
    params: dict[str, str], smtp: str, lmtp: str
) -> None:
    """Postfix 3.6 and later: "dane" with smtp_tls_security_level = dane, otherwise "may"
    (postconf -d shows the expression; lmtp_ follows lmtp_tls_security_level)."""
    config = make_settings(params)
    assert config.for_transport("smtp").params.tls_dane_insecure_mx_policy == smtp
    assert config.for_transport("lmtp").params.tls_dane_insecure_mx_policy == lmtp
    assert config.default("smtp_tls_dane_insecure_mx_policy") == (
        "${{$smtp_tls_security_level} == {dane} ? {dane} : {may}}"
    )


async def test_dane_from_the_policy_table_ignores_tlsa_of_an_insecure_mx_by_default(
    pki: Pki, tls_server: StartServer, dns_zone: Zone, tmp_path: Path
) -> None:
    """The main.cf level is "may", a policy table entry says "dane": the default insecure-MX
    policy is then "may", so an insecure MX RRset makes it "non DNSSEC destination" (no TLSA
    lookup, opportunistic TLS), where smtp_tls_security_level = dane would use the records."""
    policy = tmp_path / "tls_policy"
    policy.write_text("u.tls.test dane\n")
    status, diag, lines, _, zone = await _dane(
        pki,
        tls_server,
        dns_zone,
        "u.tls.test",
        "mx.u.signed.test",
        WRONG,  # would fail the delivery if the records were used
        level="may",
        smtp_tls_policy_maps=f"texthash:{policy}",
    )
    assert status is DeliveryStatus.SENT, diag
    assert tls_field(lines) == "may"
    assert zone.tlsa_queries() == []
    # The table entry is in force: with the insecure-MX policy "dane" the records are used.
    status, diag, lines, _, _ = await _dane(
        pki,
        tls_server,
        dns_zone,
        "u.tls.test",
        "mx.u.signed.test",
        WRONG,
        level="may",
        smtp_tls_policy_maps=f"texthash:{policy}",
        smtp_tls_dane_insecure_mx_policy="dane",
    )
    assert (status, diag) == (DeliveryStatus.DEFERRED, "Server certificate not verified")
    assert tls_field(lines) == "!half-dane"

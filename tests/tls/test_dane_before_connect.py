"""The TLS policy of each server, TLSA records included, is resolved before connecting to it,
as Postfix does (smtp_connect.c asks its TLS policy cache for each MX host before the
connection). A server that the policy defers (dane-only with an insecure MX or without
usable TLSA records, a TLSA lookup error at dane) is never contacted: the test servers
count the connections they accept. The decision made before connecting is the one the TLS
step applies: the TLSA RRset is looked up once."""

from __future__ import annotations

import re
from pathlib import Path

from dnslib import RR

from mailcarrier import DeliveryStatus
from tests.support.tls import (
    Pki,
    StartServer,
    Zone,
    add_mx,
    add_tlsa,
    delivery_line,
    no_plaintext_envelope,
    send,
    spki_sha256,
    tls_field,
    tls_settings,
)
from tests.support.tls_server import TlsServerScript


def _deferred_line(lines: list[str], relay: str, diagnostic: str) -> None:
    """The delivery line as when the TLS step deferred on an open connection: the server's
    relay, 4.7.5, the reason, and no tls= field."""
    line = delivery_line(lines)
    pattern = (
        rf"^\S+: to=<u@tls\.test>, relay={re.escape(relay)}, delay=[0-9.]+, "
        rf"delays=[0-9./]+, dsn=4\.7\.5, status=deferred \({re.escape(diagnostic)}\)$"
    )
    assert re.match(pattern, line), line


async def test_dane_only_with_insecure_mx_never_connects(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "a.tls.test", "mx.a.signed.test")  # the MX RRset has no AD bit
    leaf = pki.leaf("mx.a.signed.test")
    server = tls_server(TlsServerScript(pki.server_context(leaf)))
    add_tlsa(zone, "mx.a.signed.test", server.port, "3 1 1 " + spki_sha256(leaf))
    config = tls_settings(
        port, smtp_tls_security_level="dane-only", smtp_dns_support_level="dnssec"
    )
    status, lines = await send(f"a.tls.test:{server.port}", config)
    assert (status.status, status.dsn, status.diagnostic) == (
        DeliveryStatus.DEFERRED,
        "4.7.5",
        "non DNSSEC destination",
    )
    assert status.relay == f"mx.a.signed.test[127.0.0.1]:{server.port}"
    assert server.capture.connections == 0
    assert zone.tlsa_queries() == []
    _deferred_line(lines, status.relay, "non DNSSEC destination")
    assert tls_field(lines) is None


async def test_dane_only_without_tlsa_records_never_connects(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "b.signed.test", "mx.b.signed.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.b.signed.test"))))
    config = tls_settings(
        port, smtp_tls_security_level="dane-only", smtp_dns_support_level="dnssec"
    )
    status, lines = await send(f"b.signed.test:{server.port}", config)
    assert (status.status, status.diagnostic) == (
        DeliveryStatus.DEFERRED,
        "no TLSA records found",
    )
    assert server.capture.connections == 0
    assert zone.tlsa_queries() == [f"_{server.port}._tcp.mx.b.signed.test."]
    _deferred_line(lines, status.relay, "no TLSA records found")


async def test_tlsa_lookup_error_defers_without_connecting(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "c.signed.test", "mx.c.signed.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.c.signed.test"))))
    zone.servfail = (f"_{server.port}._tcp.mx.c.signed.test.",)
    config = tls_settings(port, smtp_tls_security_level="dane", smtp_dns_support_level="dnssec")
    status, lines = await send(f"c.signed.test:{server.port}", config)
    text = f"TLSA lookup error for mx.c.signed.test:{server.port}"
    assert (status.status, status.dsn, status.diagnostic) == (
        DeliveryStatus.DEFERRED,
        "4.7.5",
        text,
    )
    assert server.capture.connections == 0
    _deferred_line(lines, f"mx.c.signed.test[127.0.0.1]:{server.port}", text)


async def test_deferred_server_is_skipped_for_the_next_mx(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    """The first MX host's TLSA lookup fails: it is logged and skipped like a server that
    failed, without a connection, and the second MX host (same server) gets the mail."""
    port, zone = dns_zone
    add_mx(zone, "d.signed.test", "mx1.d.signed.test")
    zone.records.extend(
        RR.fromZone(
            "d.signed.test. 300 IN MX 20 mx2.d.signed.test.\nmx2.d.signed.test. 300 IN A 127.0.0.1"
        )
    )
    leaf = pki.leaf("mx2.d.signed.test")
    server = tls_server(TlsServerScript(pki.server_context(leaf)))
    zone.servfail = (f"_{server.port}._tcp.mx1.d.signed.test.",)
    owner = add_tlsa(zone, "mx2.d.signed.test", server.port, "3 1 1 " + spki_sha256(leaf))
    config = tls_settings(port, smtp_tls_security_level="dane", smtp_dns_support_level="dnssec")
    status, lines = await send(f"d.signed.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert status.relay == f"mx2.d.signed.test[127.0.0.1]:{server.port}"
    skipped = f": TLSA lookup error for mx1.d.signed.test:{server.port}"
    assert sum(line.endswith(skipped) for line in lines) == 1, lines
    assert server.capture.connections == 1 and server.capture.tls_sessions == 1
    assert tls_field(lines) == "dane"
    assert no_plaintext_envelope(server)
    # The decision made before connecting is the one applied: one lookup of mx2's RRset.
    assert zone.tlsa_queries().count(owner) == 1


async def test_secure_dane_delivery_looks_tlsa_up_once(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "e.signed.test", "mx.e.signed.test")
    leaf = pki.leaf("mx.e.signed.test")
    server = tls_server(TlsServerScript(pki.server_context(leaf)))
    owner = add_tlsa(zone, "mx.e.signed.test", server.port, "3 1 1 " + spki_sha256(leaf))
    config = tls_settings(
        port, smtp_tls_security_level="dane-only", smtp_dns_support_level="dnssec"
    )
    status, lines = await send(f"e.signed.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert any(line.startswith("Verified TLS connection established") for line in lines)
    assert zone.tlsa_queries() == [owner]
    assert server.capture.connections == 1


async def test_policy_table_error_defers_without_connecting(
    tls_server: StartServer, dns_zone: Zone, tmp_path: Path
) -> None:
    """A broken smtp_tls_policy_maps entry is part of the policy resolved before
    connecting: "client TLS configuration problem", the server never contacted."""
    port, _ = dns_zone
    server = tls_server(TlsServerScript())
    policy = tmp_path / "policy"
    policy.write_text(f"[127.0.0.1]:{server.port} bogus-level\n")
    config = tls_settings(port, smtp_tls_policy_maps=f"texthash:{policy}")
    status, lines = await send(f"[127.0.0.1]:{server.port}", config)
    assert (status.status, status.dsn, status.diagnostic) == (
        DeliveryStatus.DEFERRED,
        "4.7.5",
        "client TLS configuration problem",
    )
    assert server.capture.connections == 0
    assert any(line.startswith("warning: ") for line in lines), lines

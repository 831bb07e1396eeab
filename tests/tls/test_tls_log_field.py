"""Postfix 3.11's tls= field of the delivery line (smtp_log_tls_feature_status).

Rendering (tls/features.py, log.py) as Postfix's log_adhoc.c and the postfix-users examples
show it ("tls=may", "tls=may:none", "tls=!encrypt", "tls=may?", "tls=encrypt/(requiretls)"),
then real deliveries through the scripted STARTTLS server for each decision."""

from __future__ import annotations

import pytest
import trustme

from mailcarrier import DeliveryStatus
from mailcarrier.log import delivery_line
from mailcarrier.status import Delays, RecipientStatus
from mailcarrier.tls.features import FeatureState, TlsFeature, feature_field
from tests.support.deliver import caching_agent, deliver_via
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
from tests.support.tls_server import TlsServerScript

COMPLIANT, VIOLATION = FeatureState.COMPLIANT, FeatureState.VIOLATION


# --- rendering --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("feature", "text"),
    [
        (TlsFeature("may").decide(COMPLIANT), "may"),
        (TlsFeature("none").decide(COMPLIANT), "none"),
        (TlsFeature("may").decide(COMPLIANT, "none"), "may:none"),
        (TlsFeature("dane").decide(COMPLIANT, "encrypt"), "dane:encrypt"),
        (TlsFeature("encrypt").decide(VIOLATION), "!encrypt"),
        (TlsFeature("fingerprint").decide(VIOLATION), "!fingerprint"),
        (TlsFeature("may"), "may?"),
        (TlsFeature("dane"), "dane?"),
        (TlsFeature("requiretls").decide(COMPLIANT, relaxed=True), "(requiretls)"),
    ],
)
def test_feature_text(feature: TlsFeature, text: str) -> None:
    assert feature.text == text


def test_features_joined_with_slash() -> None:
    features = [
        TlsFeature("encrypt").decide(COMPLIANT),
        TlsFeature("requiretls").decide(COMPLIANT, relaxed=True),
    ]
    assert feature_field(features) == "encrypt/(requiretls)"
    assert feature_field([]) == ""


def test_delivery_line_places_tls_before_dsn() -> None:
    status = RecipientStatus(
        "wietse@porcupine.org",
        DeliveryStatus.SENT,
        "2.0.0",
        "250 2.0.0 Ok: queued as 4cbdb56t4MzPjfw",
        "list.sys4.de[45.90.5.195]:25",
        delays=Delays(0.08, 0.01, 3.5, 1.9),
        tls="dane",
    )
    assert delivery_line("01E12901F9D", status) == (
        "01E12901F9D: to=<wietse@porcupine.org>, relay=list.sys4.de[45.90.5.195]:25, "
        "delay=5.5, delays=0.08/0.01/3.5/1.9, tls=dane, dsn=2.0.0, "
        "status=sent (250 2.0.0 Ok: queued as 4cbdb56t4MzPjfw)"
    )
    plain = RecipientStatus("a@b", DeliveryStatus.SENT, "2.0.0", "250 Ok", "h[1.2.3.4]:25")
    assert "tls=" not in delivery_line("Q", plain)


# --- deliveries -------------------------------------------------------------------------
def _good(pki: Pki) -> TlsServerScript:
    return TlsServerScript(pki.server_context(pki.leaf("mx.tls.test")))


async def _field(
    dns_zone: Zone, tls_server: StartServer, script: TlsServerScript, **params: str
) -> tuple[str | None, DeliveryStatus, str]:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(script)
    status, lines = await send(f"tls.test:{server.port}", tls_settings(port, **params))
    return tls_field(lines), status.status, status.diagnostic


async def test_no_field_without_a_tls_policy(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    # Level none: nothing to report, the line keeps the classic form (DESIGN.md's contract).
    assert (await _field(dns_zone, tls_server, _good(pki)))[:2] == (None, DeliveryStatus.SENT)


async def test_may_with_tls(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    found = await _field(dns_zone, tls_server, _good(pki), smtp_tls_security_level="may")
    assert found[:2] == ("may", DeliveryStatus.SENT)


async def test_may_without_starttls_is_may_none(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    script = TlsServerScript(offer_starttls=False)
    found = await _field(dns_zone, tls_server, script, smtp_tls_security_level="may")
    assert found[:2] == ("may:none", DeliveryStatus.SENT)


async def test_may_refused_is_may_none(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    script = TlsServerScript(starttls_reply=b"454 4.7.0 TLS not available\r\n")
    found = await _field(dns_zone, tls_server, script, smtp_tls_security_level="may")
    assert found[:2] == ("may:none", DeliveryStatus.SENT)


async def test_encrypt_not_offered_is_a_violation(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    script = TlsServerScript(offer_starttls=False)
    field, status, diagnostic = await _field(
        dns_zone, tls_server, script, smtp_tls_security_level="encrypt"
    )
    assert (field, status) == ("!encrypt", DeliveryStatus.DEFERRED)
    assert diagnostic.startswith("TLS is required, but was not offered by host")


async def test_verify_bad_certificate_is_a_violation(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    script = TlsServerScript(pki.server_context(trustme.CA().issue_cert("mx.tls.test")))
    found = await _field(
        dns_zone,
        tls_server,
        script,
        smtp_tls_security_level="verify",
        smtp_tls_CAfile=pki.cafile(),
    )
    assert found == ("!verify", DeliveryStatus.DEFERRED, "Server certificate not verified")


async def test_verify_good_certificate(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    found = await _field(
        dns_zone,
        tls_server,
        _good(pki),
        smtp_tls_security_level="verify",
        smtp_tls_CAfile=pki.cafile(),
    )
    assert found[:2] == ("verify", DeliveryStatus.SENT)


async def test_handshake_failure_is_undecided(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    script = TlsServerScript(pki.server_context(pki.leaf("mx.tls.test")), broken_handshake=True)
    found = await _field(dns_zone, tls_server, script, smtp_tls_security_level="encrypt")
    assert found == ("encrypt?", DeliveryStatus.DEFERRED, "Cannot start TLS: handshake failure")


async def test_dane_is_logged(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    port, zone = dns_zone
    add_mx(zone, "f.signed.test", "mx.f.signed.test")
    leaf = pki.leaf("mx.f.signed.test")
    server = tls_server(TlsServerScript(pki.server_context(leaf)))
    add_tlsa(zone, "mx.f.signed.test", server.port, f"3 1 1 {spki_sha256(leaf)}")
    config = tls_settings(
        port, smtp_tls_security_level="dane-only", smtp_dns_support_level="dnssec"
    )
    status, lines = await send(f"f.signed.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert tls_field(lines) == "dane"  # dane-only becomes dane once TLSA records are found
    assert no_plaintext_envelope(server)


async def test_feature_status_logging_can_be_turned_off(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    found = await _field(
        dns_zone,
        tls_server,
        _good(pki),
        smtp_tls_security_level="may",
        smtp_log_tls_feature_status="no",
    )
    assert found[:2] == (None, DeliveryStatus.SENT)


async def test_connect_failure_has_no_field(dns_zone: Zone) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    from tests.support.peers.aiosmtpd_server import free_port

    status, lines = await send(f"tls.test:{free_port()}", tls_settings(port))
    assert status.status is DeliveryStatus.DEFERRED
    assert tls_field(lines) is None


async def test_reused_session_logs_its_status(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(_good(pki))
    config = tls_settings(
        port,
        smtp_tls_security_level="encrypt",
        smtp_tls_connection_reuse="yes",
        smtp_connection_cache_on_demand="yes",
    )
    agent, cache, log = caching_agent(config)
    for _ in range(2):
        result = await deliver_via(
            agent,
            f"tls.test:{server.port}",
            b"Subject: x\n\nbody\n",
            sender="s@example.org",
            recipients=["u@tls.test"],
        )
        assert result.recipients[0].status is DeliveryStatus.SENT
    await cache.close_all()
    lines = [line for line in log.lines if ": to=<" in line]
    assert len(lines) == 2 and all(", tls=encrypt, dsn=" in line for line in lines)
    assert server.capture.connections == 1  # the second delivery reused the session

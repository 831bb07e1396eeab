"""The TLS session a verdict was given over (status.TlsSession, for the event records):
delivery/setup.py takes it from the session after the TLS step, the tracker puts it on each
status; it names what the "TLS connection established" line names, and a plaintext
delivery has none. Through the scripted STARTTLS server."""

from __future__ import annotations

from mailcarrier import DeliveryStatus
from tests.support.tls import Pki, StartServer, Zone, add_mx, send, tls_settings
from tests.support.tls_server import TlsServerScript


async def test_verified_session_matches_the_established_line(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.tls.test"))))
    config = tls_settings(port, smtp_tls_security_level="verify", smtp_tls_CAfile=pki.cafile())
    status, lines = await send(f"tls.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    session = status.tls_session
    assert session is not None and session.trust == "Verified"
    assert session.protocol.startswith("TLSv1.") and session.bits >= 128
    relay = f"mx.tls.test[127.0.0.1]:{server.port}"
    established = (
        f"Verified TLS connection established to {relay}: {session.protocol} with cipher "
        f"{session.cipher} ({session.bits}/{session.bits} bits)"
    )
    assert established in lines


async def test_plaintext_delivery_has_no_session(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(offer_starttls=False))
    config = tls_settings(port, smtp_tls_security_level="may")
    status, _ = await send(f"tls.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT and status.tls_session is None

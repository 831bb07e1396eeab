"""smtp_tls_wrappermode (implicit TLS, "port 465"): the server certificate is judged right
after the handshake, before the greeting is used and before any SMTP byte is sent, as
Postfix does (smtp_helo() starts TLS first in wrapper mode)."""

from __future__ import annotations

import pytest
import trustme

from mailcarrier import DeliveryStatus
from tests.support.tls import Pki, StartServer, Zone, add_mx, send, tls_field, tls_settings
from tests.support.tls_server import TlsServerScript


@pytest.mark.parametrize("level", ["verify", "secure", "fingerprint"])
async def test_bad_certificate_sends_no_smtp_byte(
    level: str, pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    bad = pki.server_context(trustme.CA().issue_cert("mx.tls.test"))  # unknown CA
    server = tls_server(TlsServerScript(bad, implicit=True))
    config = tls_settings(
        port,
        smtp_tls_wrappermode="yes",
        smtp_tls_security_level=level,
        smtp_tls_CAfile=pki.cafile(),
        smtp_tls_secure_cert_match="nexthop",
        smtp_tls_fingerprint_cert_match="00:11:22",
    )
    status, lines = await send(f"tls.test:{server.port}", config)
    assert (status.status, status.dsn) == (DeliveryStatus.DEFERRED, "4.7.5")
    assert status.diagnostic == "Server certificate not verified"
    assert server.capture.connections == 1
    # Not a byte of SMTP: no EHLO, not even QUIT (the greeting was never read).
    assert bytes(server.capture.secure) == b""
    assert bytes(server.capture.plain) == b""
    assert tls_field(lines) == f"!{level}"
    assert any("certificate verification failed for mx.tls.test" in line for line in lines)


async def test_good_certificate_delivers(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.tls.test")), implicit=True))
    config = tls_settings(
        port,
        smtp_tls_wrappermode="yes",
        smtp_tls_security_level="verify",
        smtp_tls_CAfile=pki.cafile(),
    )
    status, lines = await send(f"tls.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert bytes(server.capture.secure).startswith(b"EHLO ")
    assert bytes(server.capture.plain) == b""
    assert tls_field(lines) == "verify"


@pytest.mark.parametrize("level", ["none", "may"])
async def test_optional_level_is_raised_to_encrypt(
    level: str, pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    """Wrapper mode cannot fall back to plaintext: Postfix warns and uses "encrypt"."""
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    untrusted = pki.server_context(trustme.CA().issue_cert("mx.tls.test"))
    server = tls_server(TlsServerScript(untrusted, implicit=True))
    config = tls_settings(port, smtp_tls_wrappermode="yes", smtp_tls_security_level=level)
    status, lines = await send(f"tls.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert (
        'warning: smtp_tls_wrappermode requires "smtp_tls_security_level = encrypt" (or stronger)'
    ) in lines
    assert tls_field(lines) == "encrypt"
    assert bytes(server.capture.plain) == b""

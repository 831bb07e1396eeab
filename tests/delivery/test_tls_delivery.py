"""TLS end to end: every security level against every server behaviour, with the bytes that
crossed the wire in plaintext checked, plus injection, DANE, policy tables, wrapper mode,
session resumption and logging. Servers: the scripted STARTTLS server of tests/tls and
aiosmtpd with a trustme certificate; names come from a loopback DNS zone."""

from __future__ import annotations

import dataclasses
import hashlib
import ssl
from pathlib import Path

import pytest
import trustme
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives.serialization import Encoding
from dnslib import RR

from mailcarrier import DeliveryStatus
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.log import MemoryLog
from mailcarrier.status import RecipientStatus
from tests.support.deliver import deliver_request, deliver_via, request_to
from tests.support.peers.aiosmtpd_server import RecordingHandler, free_port
from tests.support.tls import (
    Pki,
    StartServer,
    Zone,
    add_mx,
    context_from_pem,
    mint_expired_leaf,
    mint_self_signed,
    send,
    spki_sha256,
    tls_settings,
)
from tests.support.tls_server import ScriptedTlsServer, TlsServerScript


def _assert_no_plaintext_envelope(server: ScriptedTlsServer) -> None:
    plain = bytes(server.capture.plain)
    assert b"MAIL FROM" not in plain
    assert b"RCPT TO" not in plain
    assert b"TOP-SECRET-BODY" not in plain


# --- the level x behaviour table ----------------------------------------------------------
BEHAVIOURS = ("no-starttls", "refused", "handshake", "bad-cert", "good-cert")
# (status, dsn, diagnostic fragment) per level and behaviour; None = sent.
TABLE: dict[str, dict[str, tuple[str, str] | None]] = {
    "none": dict.fromkeys(BEHAVIOURS),
    "may": {
        "no-starttls": None,
        "refused": None,
        "handshake": ("4.7.5", "Cannot start TLS: handshake failure"),
        "bad-cert": None,
        "good-cert": None,
    },
    "encrypt": {
        "no-starttls": ("4.7.4", "TLS is required, but was not offered by host"),
        "refused": ("4.7.0", "TLS is required, but host mx.tls.test[127.0.0.1] refused"),
        "handshake": ("4.7.5", "Cannot start TLS: handshake failure"),
        "bad-cert": None,
        "good-cert": None,
    },
}
for _level in ("verify", "secure", "fingerprint"):
    TABLE[_level] = dict(TABLE["encrypt"])
    # Postfix (smtp_proto.c) defers every authentication shortfall with one reason.
    TABLE[_level]["bad-cert"] = ("4.7.5", "Server certificate not verified")


def _script(behaviour: str, pki: Pki) -> TlsServerScript:
    good = pki.server_context(pki.leaf("mx.tls.test"))
    bad = pki.server_context(trustme.CA().issue_cert("mx.tls.test"))  # unknown CA
    return {
        "no-starttls": TlsServerScript(good, offer_starttls=False),
        "refused": TlsServerScript(good, starttls_reply=b"454 4.7.0 TLS not available\r\n"),
        "handshake": TlsServerScript(good, broken_handshake=True),
        "bad-cert": TlsServerScript(bad),
        "good-cert": TlsServerScript(good),
    }[behaviour]


@pytest.mark.parametrize("behaviour", BEHAVIOURS)
@pytest.mark.parametrize("level", list(TABLE))
async def test_level_behaviour_table(
    level: str, behaviour: str, pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    script = _script(behaviour, pki)
    extra: dict[str, str] = {"smtp_tls_security_level": level, "smtp_tls_CAfile": pki.cafile()}
    leaf = pki.leaf("mx.tls.test")
    if level == "fingerprint":
        # Listed: the good certificate's public-key fingerprint (pki leaves share no key, so
        # serve the very leaf whose fingerprint is listed when the behaviour is "good").
        extra["smtp_tls_fingerprint_cert_match"] = spki_sha256(leaf)
        if behaviour == "good-cert":
            script = TlsServerScript(pki.server_context(leaf))
    server = tls_server(script)
    status, _lines = await send(f"tls.test:{server.port}", tls_settings(port, **extra))
    expected = TABLE[level][behaviour]
    if expected is None:
        assert status.status is DeliveryStatus.SENT, status.diagnostic
        assert server.capture.messages
        encrypted = level != "none" and behaviour in ("bad-cert", "good-cert")
        if encrypted:
            _assert_no_plaintext_envelope(server)
            assert bytes(server.capture.secure).startswith(b"EHLO")  # EHLO again over TLS
        else:
            assert b"MAIL FROM" in bytes(server.capture.plain)
        if level == "none":
            assert b"STARTTLS" not in bytes(server.capture.plain)
        return
    dsn, text = expected
    assert status.status is DeliveryStatus.DEFERRED, status.diagnostic
    assert status.dsn == dsn, status.diagnostic
    assert text in status.diagnostic
    _assert_no_plaintext_envelope(server)
    assert not server.capture.messages


# --- certificates -------------------------------------------------------------------------
async def _verify_with(
    pki: Pki, tls_server: StartServer, dns_zone: Zone, ctx: ssl.SSLContext, **extra: str
) -> tuple[RecipientStatus, list[str], ScriptedTlsServer]:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(ctx))
    params = {"smtp_tls_security_level": "verify", "smtp_tls_CAfile": pki.cafile(), **extra}
    status, lines = await send(f"tls.test:{server.port}", tls_settings(port, **params))
    return status, lines, server


async def test_verified_log_line(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    ctx = pki.server_context(pki.leaf("mx.tls.test"))
    status, lines, server = await _verify_with(pki, tls_server, dns_zone, ctx)
    assert status.status is DeliveryStatus.SENT
    established = [line for line in lines if "TLS connection established" in line]
    assert len(established) == 1
    assert established[0].startswith(
        f"Verified TLS connection established to mx.tls.test[127.0.0.1]:{server.port}: TLSv1."
    )
    assert " with cipher " in established[0] and established[0].endswith(" bits)")


async def test_wrong_name_is_not_verified(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    ctx = pki.server_context(pki.leaf("other.example"))
    status, lines, server = await _verify_with(pki, tls_server, dns_zone, ctx)
    assert (status.status, status.dsn) == (DeliveryStatus.DEFERRED, "4.7.5")
    assert status.diagnostic == "Server certificate not verified"
    assert any("Trusted TLS connection established" in line for line in lines)
    assert (
        "server certificate verification failed for "
        f"mx.tls.test[127.0.0.1]:{server.port}: num=62:hostname mismatch"
    ) in lines
    _assert_no_plaintext_envelope(server)
    assert bytes(server.capture.secure) == b"QUIT\r\n"  # no command after a failed check


async def test_wildcard_certificate(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    ctx = pki.server_context(pki.leaf("*.tls.test"))
    status, _, _ = await _verify_with(pki, tls_server, dns_zone, ctx)
    assert status.status is DeliveryStatus.SENT


async def test_expired_certificate_is_not_trusted(
    pki: Pki, tls_server: StartServer, dns_zone: Zone, tmp_path: Path
) -> None:
    ctx = context_from_pem(tmp_path, *mint_expired_leaf(pki.ca, "mx.tls.test"))
    status, lines, server = await _verify_with(pki, tls_server, dns_zone, ctx)
    assert status.diagnostic == "Server certificate not verified"
    assert (
        "server certificate verification failed for "
        f"mx.tls.test[127.0.0.1]:{server.port}: certificate has expired"
    ) in lines


async def test_self_signed_untrusted_but_fingerprint_matches(
    pki: Pki, tls_server: StartServer, dns_zone: Zone, tmp_path: Path
) -> None:
    cert, cert_pem, key_pem = mint_self_signed("mx.tls.test")
    ctx = context_from_pem(tmp_path, cert_pem, key_pem)
    status, lines, server = await _verify_with(pki, tls_server, dns_zone, ctx)
    assert status.diagnostic == "Server certificate not verified"
    assert (
        f"certificate verification failed for mx.tls.test[127.0.0.1]:{server.port}: "
        "self-signed certificate"
    ) in lines
    digest = hashlib.sha256(cert.public_bytes(Encoding.DER)).hexdigest().upper()
    colons = ":".join(digest[i : i + 2] for i in range(0, len(digest), 2))
    status, lines, _ = await _verify_with(
        pki,
        tls_server,
        dns_zone,
        ctx,
        smtp_tls_security_level="fingerprint",
        smtp_tls_fingerprint_cert_match=colons,
    )
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert any(line.startswith("Verified TLS connection") for line in lines)


# --- attacks ------------------------------------------------------------------------------
@pytest.mark.parametrize("level", ["may", "encrypt", "verify"])
async def test_starttls_response_injection_aborts(
    level: str, pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    injected = b"220 2.0.0 Ready\r\n250-mx.tls.test\r\n250 AUTH PLAIN\r\n"
    ctx = pki.server_context(pki.leaf("mx.tls.test"))
    server = tls_server(TlsServerScript(ctx, starttls_reply=injected))
    params = {"smtp_tls_security_level": level, "smtp_tls_CAfile": pki.cafile()}
    status, _ = await send(f"tls.test:{server.port}", tls_settings(port, **params))
    assert status.status is DeliveryStatus.DEFERRED
    assert "unexpected plaintext data received after STARTTLS reply" in status.diagnostic
    assert server.capture.tls_sessions == 0
    _assert_no_plaintext_envelope(server)


async def test_may_retries_plaintext_after_backoff(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    """Postfix falls back to plaintext at "may" only for a message that already waited
    minimal_backoff_time, so the first attempt is never a silent downgrade."""
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    ctx = pki.server_context(pki.leaf("mx.tls.test"))
    server = tls_server(TlsServerScript(ctx, broken_handshake=True))
    settings = tls_settings(port, smtp_tls_security_level="may")
    status, _ = await send(f"tls.test:{server.port}", settings, waited=3600)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert server.capture.connections == 2
    assert b"TOP-SECRET-BODY" in bytes(server.capture.plain)


async def test_may_probe_retries_plaintext_at_once(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    """An address probe carries no content: Postfix lets it fall back to plaintext at
    "may" without the wait a message needs (TRACE_REQ_ONLY in smtp.h's
    PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE). A message queued just now does not."""
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    ctx = pki.server_context(pki.leaf("mx.tls.test"))
    settings = tls_settings(port, smtp_tls_security_level="may")
    server = tls_server(TlsServerScript(ctx, broken_handshake=True))
    status, _ = await send(f"tls.test:{server.port}", settings)
    assert (status.status, status.diagnostic) == (
        DeliveryStatus.DEFERRED,
        "Cannot start TLS: handshake failure",
    )
    assert server.capture.connections == 1
    server = tls_server(TlsServerScript(ctx, broken_handshake=True))
    probe = dataclasses.replace(
        request_to(
            f"tls.test:{server.port}", b"", sender="s@example.org", recipients=["u@tls.test"]
        ),
        probe=True,
    )
    result, _ = await deliver_request(probe, config=settings)
    assert result.recipients[0].status is DeliveryStatus.SENT, result.recipients[0].diagnostic
    assert server.capture.connections == 2
    plain = bytes(server.capture.plain)
    assert b"RCPT TO:<u@tls.test>" in plain and b"DATA" not in plain


async def test_note_starttls_offer(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.tls.test"))))
    settings = tls_settings(port, smtp_tls_note_starttls_offer="yes")
    status, lines = await send(f"tls.test:{server.port}", settings)
    assert status.status is DeliveryStatus.SENT
    assert "Host offered STARTTLS: [mx.tls.test]" in lines


# --- policy sources -----------------------------------------------------------------------
async def test_policy_table_parent_domain_and_match(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "sub.tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("relay.example"))))
    policy = "inline:{ {.tls.test = secure match=relay.example protocols=>=TLSv1.2} }"
    settings = tls_settings(port, smtp_tls_policy_maps=policy, smtp_tls_CAfile=pki.cafile())
    status, lines = await send(f"sub.tls.test:{server.port}", settings)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert any(line.startswith("Verified TLS") for line in lines)


async def test_obsolete_enforce_tls(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(offer_starttls=False))
    status, _ = await send(f"tls.test:{server.port}", tls_settings(port, smtp_enforce_tls="yes"))
    assert status.dsn == "4.7.4"
    _assert_no_plaintext_envelope(server)


async def test_bad_policy_entry_defers(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(offer_starttls=False))
    settings = tls_settings(port, smtp_tls_policy_maps="inline:{ tls.test=sometimes }")
    status, _ = await send(f"tls.test:{server.port}", settings)
    assert (status.dsn, status.diagnostic) == ("4.7.5", "client TLS configuration problem")
    _assert_no_plaintext_envelope(server)


# --- wrapper mode and session resumption --------------------------------------------------
async def test_wrapper_mode(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    ctx = pki.server_context(pki.leaf("mx.tls.test"))
    server = tls_server(TlsServerScript(ctx, implicit=True))
    settings = tls_settings(
        port,
        smtp_tls_wrappermode="yes",
        smtp_tls_security_level="verify",
        smtp_tls_CAfile=pki.cafile(),
    )
    status, _ = await send(f"tls.test:{server.port}", settings)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert server.capture.plain == bytearray()


async def test_session_resumption(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.tls.test"))))
    settings = tls_settings(
        port,
        smtp_tls_security_level="encrypt",
        smtp_tls_session_cache_database="memory:",
    )
    agent = DeliveryAgent(settings, log=MemoryLog())
    for _ in range(2):
        result = await deliver_via(
            agent,
            f"tls.test:{server.port}",
            b"Subject: x\n\nbody\n",
            sender="s@example.org",
            recipients=["u@tls.test"],
        )
        assert result.recipients[0].status is DeliveryStatus.SENT
    assert server.capture.tls_sessions == 2
    assert server.capture.resumed == 1


# --- a real server: aiosmtpd with STARTTLS ---------------------------------------------------
async def test_aiosmtpd_starttls_verify(pki: Pki, dns_zone: Zone) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    handler = RecordingHandler()
    smtp_port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=smtp_port,
        tls_context=pki.server_context(pki.leaf("mx.tls.test")),
        require_starttls=True,
    )
    controller.start()
    try:
        settings = tls_settings(
            port, smtp_tls_security_level="verify", smtp_tls_CAfile=pki.cafile()
        )
        status, _lines = await send(f"tls.test:{smtp_port}", settings)
    finally:
        controller.stop()
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert handler.messages and b"TOP-SECRET-BODY" in handler.messages[0].content


# --- DANE (RFC 7672) against the loopback DNS server -----------------------------------------
async def _dane(
    pki: Pki,
    tls_server: StartServer,
    dns_zone: Zone,
    domain: str,
    tlsa: str,
    level: str = "dane",
    servfail: bool = False,
) -> tuple[RecipientStatus, list[str], ScriptedTlsServer]:
    port, zone = dns_zone
    add_mx(zone, domain, f"mx.{domain}")
    leaf = pki.leaf(f"mx.{domain}")
    server = tls_server(TlsServerScript(pki.server_context(leaf)))
    owner = f"_{server.port}._tcp.mx.{domain}."
    if servfail:
        zone.servfail = (owner,)
    elif tlsa:
        data = tlsa.replace("SPKI", spki_sha256(leaf))
        zone.records.extend(RR.fromZone(f"{owner} 300 IN TLSA {data}"))
    settings = tls_settings(port, smtp_tls_security_level=level, smtp_dns_support_level="dnssec")
    status, lines = await send(f"{domain}:{server.port}", settings)
    return status, lines, server


async def test_dane_ee_validated(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    status, lines, server = await _dane(pki, tls_server, dns_zone, "d.signed.test", "3 1 1 SPKI")
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert any(line.startswith("Verified TLS connection established") for line in lines)
    _assert_no_plaintext_envelope(server)


async def test_dane_ee_mismatch_defers(pki: Pki, tls_server: StartServer, dns_zone: Zone) -> None:
    status, _, server = await _dane(
        pki, tls_server, dns_zone, "d.signed.test", "3 1 1 " + "00" * 32
    )
    assert (status.dsn, status.diagnostic) == ("4.7.5", "Server certificate not verified")
    _assert_no_plaintext_envelope(server)


async def test_dane_without_ad_bit_is_opportunistic(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    # Same records, but the zone is unsigned: no AD bit, so TLSA records do not count.
    status, lines, _ = await _dane(pki, tls_server, dns_zone, "d.tls.test", "3 1 1 " + "00" * 32)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert any(line.startswith("Untrusted TLS connection established") for line in lines)


async def test_dane_only_without_ad_bit_defers(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    status, _, server = await _dane(
        pki, tls_server, dns_zone, "d.tls.test", "3 1 1 SPKI", level="dane-only"
    )
    assert (status.status, status.dsn) == (DeliveryStatus.DEFERRED, "4.7.5")
    assert not server.capture.messages


async def test_dane_lookup_failure_defers(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    status, _, server = await _dane(pki, tls_server, dns_zone, "d.signed.test", "", servfail=True)
    assert status.dsn == "4.7.5"
    assert status.diagnostic.startswith("TLSA lookup error for mx.d.signed.test:")
    assert server.capture.connections == 0 or b"MAIL" not in bytes(server.capture.plain)


async def test_dane_unusable_records_make_tls_mandatory(
    pki: Pki, tls_server: StartServer, dns_zone: Zone
) -> None:
    port, zone = dns_zone
    add_mx(zone, "u.signed.test", "mx.u.signed.test")
    server = tls_server(TlsServerScript(offer_starttls=False))
    owner = f"_{server.port}._tcp.mx.u.signed.test."
    zone.records.extend(RR.fromZone(f"{owner} 300 IN TLSA 1 1 1 {'00' * 32}"))
    settings = tls_settings(port, smtp_tls_security_level="dane", smtp_dns_support_level="dnssec")
    status, _ = await send(f"u.signed.test:{server.port}", settings)
    assert status.dsn == "4.7.4"
    _assert_no_plaintext_envelope(server)

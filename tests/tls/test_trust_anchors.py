"""Trust-anchor files (smtp_tls_trust_anchor_file, policy tafile=) with certificates and
bare public keys ("-----BEGIN PUBLIC KEY-----"), as Postfix allows: loading, chain
validation below the anchor (tls/verify.py) and deliveries at the verify level."""

from __future__ import annotations

import datetime
from pathlib import Path

import pytest
import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mailcarrier import DeliveryStatus
from mailcarrier.tls.context import load_trust_anchors
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.verify import Expectations, Trust, TrustAnchors, check_peer, signed_by
from tests.support.tls import (
    Pki,
    StartServer,
    Zone,
    add_mx,
    mint_expired_leaf,
    mint_self_signed,
    send,
    tls_field,
    tls_settings,
)
from tests.support.tls_server import TlsServerScript

NOW = datetime.datetime.now(datetime.UTC)


def _load(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def _pubkey_pem(cert: x509.Certificate) -> bytes:
    return cert.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def _three_level() -> tuple[trustme.CA, tuple[x509.Certificate, ...], x509.Certificate]:
    """root -> intermediate -> leaf; the chain as a server sends it (no root)."""
    root = trustme.CA()
    inter = root.create_child_ca()
    leaf = inter.issue_cert("mx.example.com")
    chain = tuple(_load(p.bytes()) for p in leaf.cert_chain_pems)
    return root, chain[:2], _load(root.cert_pem.bytes())


def _wanted(anchors: TrustAnchors, depth: int = 9) -> Expectations:
    return Expectations(
        SecurityLevel.VERIFY, names=("mx.example.com",), trust_anchors=anchors, depth=depth
    )


# --- loading ----------------------------------------------------------------------------
def test_load_certificates_and_bare_keys(tmp_path: Path) -> None:
    _, chain, root = _three_level()
    mixed = tmp_path / "anchors.pem"
    mixed.write_bytes(root.public_bytes(Encoding.PEM) + b"some comment\n" + _pubkey_pem(chain[1]))
    keys_only = tmp_path / "keys.pem"
    keys_only.write_bytes(_pubkey_pem(root))
    anchors = load_trust_anchors((str(mixed), str(keys_only)))
    assert len(anchors.certs) == 1 and len(anchors.keys) == 2
    assert anchors.certs[0] == root


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="cannot read"):
        load_trust_anchors((str(tmp_path / "missing.pem"),))
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"nothing here\n")
    with pytest.raises(ValueError, match="no trust-anchor"):
        load_trust_anchors((str(empty),))
    broken = tmp_path / "broken.pem"
    broken.write_bytes(b"-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n")
    with pytest.raises(ValueError, match="bad PEM PUBLIC KEY"):
        load_trust_anchors((str(broken),))


# --- validation -------------------------------------------------------------------------
def test_bare_root_key_anchors_the_chain() -> None:
    _, chain, root = _three_level()
    check = check_peer(chain, _wanted(TrustAnchors(keys=(root.public_key(),))), NOW)
    assert (check.trust, check.trusted, check.matched) == (Trust.VERIFIED, True, True)
    assert signed_by(chain[1], root.public_key())
    assert not signed_by(chain[0], root.public_key())


def test_bare_intermediate_key_or_certificate_in_the_chain() -> None:
    _, chain, _ = _three_level()
    by_key = TrustAnchors(keys=(chain[1].public_key(),))
    assert check_peer(chain, _wanted(by_key), NOW).trust is Trust.VERIFIED
    by_cert = TrustAnchors(certs=(chain[1],))
    assert check_peer(chain, _wanted(by_cert), NOW).trust is Trust.VERIFIED


def test_leaf_key_as_anchor_skips_even_expiry() -> None:
    """Postfix: a TA at depth 0 is a validated chain, even when the certificate expired."""
    ca = trustme.CA()
    cert_pem, _ = mint_expired_leaf(ca, "mx.example.com")
    leaf = _load(cert_pem)
    check = check_peer((leaf,), _wanted(TrustAnchors(keys=(leaf.public_key(),))), NOW)
    assert check.trust is Trust.VERIFIED


def test_unrelated_key_is_untrusted_issuer() -> None:
    _, chain, _ = _three_level()
    other = mint_self_signed("other.example")[0]
    check = check_peer(chain, _wanted(TrustAnchors(keys=(other.public_key(),))), NOW)
    assert (check.trust, check.trusted) == (Trust.UNTRUSTED, False)
    assert check.problem.startswith("untrusted issuer /") and check.purpose == ""


def test_expired_leaf_below_anchor() -> None:
    ca = trustme.CA()
    cert_pem, _ = mint_expired_leaf(ca, "mx.example.com")
    root = _load(ca.cert_pem.bytes())
    check = check_peer((_load(cert_pem),), _wanted(TrustAnchors(keys=(root.public_key(),))), NOW)
    assert (check.purpose, check.problem) == ("server", "certificate has expired")


def test_depth_limit_below_anchor() -> None:
    _, chain, root = _three_level()
    check = check_peer(chain, _wanted(TrustAnchors(keys=(root.public_key(),)), depth=1), NOW)
    assert check.problem == "certificate chain longer than limit(1)"


def test_name_still_checked_with_anchor() -> None:
    _, chain, root = _three_level()
    wanted = Expectations(
        SecurityLevel.SECURE,
        names=("other.example",),
        trust_anchors=TrustAnchors(keys=(root.public_key(),)),
    )
    check = check_peer(chain, wanted, NOW)
    assert (check.trusted, check.matched) == (True, False)
    assert (check.purpose, check.problem) == ("server", "num=62:hostname mismatch")


# --- deliveries -------------------------------------------------------------------------
async def test_verify_with_bare_key_trust_anchor_file(
    pki: Pki, tls_server: StartServer, dns_zone: Zone, tmp_path: Path
) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.tls.test"))))
    tafile = tmp_path / "ta.pem"
    tafile.write_bytes(_pubkey_pem(_load(pki.ca.cert_pem.bytes())))
    config = tls_settings(
        port, smtp_tls_security_level="verify", smtp_tls_trust_anchor_file=str(tafile)
    )
    status, lines = await send(f"tls.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert any(line.startswith("Verified TLS connection established") for line in lines)
    assert tls_field(lines) == "verify"


async def test_policy_tafile_replaces_cafile(
    pki: Pki, tls_server: StartServer, dns_zone: Zone, tmp_path: Path
) -> None:
    """With a trust-anchor file the CAfile is no longer trusted (Postfix)."""
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.tls.test"))))
    wrong = tmp_path / "wrong.pem"
    wrong.write_bytes(_pubkey_pem(_load(trustme.CA().cert_pem.bytes())))
    policy = f"inline:{{ {{tls.test = verify tafile={wrong}}} }}"
    config = tls_settings(port, smtp_tls_policy_maps=policy, smtp_tls_CAfile=pki.cafile())
    status, lines = await send(f"tls.test:{server.port}", config)
    assert (status.dsn, status.diagnostic) == ("4.7.5", "Server certificate not verified")
    assert any(
        line.startswith(f"certificate verification failed for mx.tls.test[127.0.0.1]:{server.port}")
        and ": untrusted issuer /" in line
        for line in lines
    )
    right = tmp_path / "right.pem"
    right.write_bytes(_pubkey_pem(_load(pki.ca.cert_pem.bytes())))
    policy = f"inline:{{ {{tls.test = verify tafile={right}}} }}"
    config = tls_settings(port, smtp_tls_policy_maps=policy)
    status, _ = await send(f"tls.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic


async def test_unusable_trust_anchor_file_defers(
    pki: Pki, tls_server: StartServer, dns_zone: Zone, tmp_path: Path
) -> None:
    port, zone = dns_zone
    add_mx(zone, "tls.test", "mx.tls.test")
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("mx.tls.test"))))
    empty = tmp_path / "empty.pem"
    empty.write_bytes(b"\n")
    config = tls_settings(
        port, smtp_tls_security_level="verify", smtp_tls_trust_anchor_file=str(empty)
    )
    status, lines = await send(f"tls.test:{server.port}", config)
    assert (status.dsn, status.diagnostic) == ("4.7.5", "client TLS configuration problem")
    assert any(line.startswith("warning: cannot load trust anchors:") for line in lines)
    assert not server.capture.messages

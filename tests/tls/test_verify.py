"""Chain trust, fingerprints and DANE matching (tls/verify.py, tls/dane.py)."""

from __future__ import annotations

import datetime
import hashlib
from collections.abc import Callable

import trustme
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from mailcarrier.tls.dane import TlsaRecord, match_chain, usable
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.verify import (
    Expectations,
    Trust,
    check_peer,
    fingerprint,
    oneline,
    pkey_fingerprint,
)
from tests.support.tls import mint_expired_leaf, mint_self_signed

NOW = datetime.datetime.now(datetime.UTC)


def _chain(ca: trustme.CA, *names: str) -> tuple[x509.Certificate, ...]:
    leaf = ca.issue_cert(*names)
    return tuple(x509.load_pem_x509_certificate(p.bytes()) for p in leaf.cert_chain_pems)


def _ca(ca: trustme.CA) -> x509.Certificate:
    return x509.load_pem_x509_certificate(ca.cert_pem.bytes())


def test_verified_trusted_untrusted() -> None:
    ca = trustme.CA()
    chain = _chain(ca, "mx.example.com")
    wanted = Expectations(SecurityLevel.VERIFY, names=("mx.example.com",), anchors=(_ca(ca),))
    assert check_peer(chain, wanted, NOW).trust is Trust.VERIFIED
    wrong = Expectations(SecurityLevel.VERIFY, names=("other.example",), anchors=(_ca(ca),))
    check = check_peer(chain, wrong, NOW)
    assert (check.trust, check.trusted, check.matched) == (Trust.TRUSTED, True, False)
    unknown = Expectations(
        SecurityLevel.VERIFY, names=("mx.example.com",), anchors=(_ca(trustme.CA()),)
    )
    check = check_peer(chain, unknown, NOW)
    assert check.trust is Trust.UNTRUSTED and check.problem.startswith("untrusted issuer /")
    assert check_peer((), wanted, NOW).trust is Trust.ANONYMOUS


def test_expired_and_self_signed() -> None:
    ca = trustme.CA()
    cert_pem, _ = mint_expired_leaf(ca, "mx.example.com")
    expired = (x509.load_pem_x509_certificate(cert_pem),)
    wanted = Expectations(SecurityLevel.SECURE, names=("mx.example.com",), anchors=(_ca(ca),))
    assert check_peer(expired, wanted, NOW).problem == "certificate has expired"
    self_signed = (mint_self_signed("mx.example.com")[0],)
    assert check_peer(self_signed, wanted, NOW).problem == "self-signed certificate"


def test_verify_depth() -> None:
    ca = trustme.CA()
    inter = ca.create_child_ca()
    leaf = inter.issue_cert("mx.example.com")
    chain = tuple(x509.load_pem_x509_certificate(p.bytes()) for p in leaf.cert_chain_pems)
    ok = Expectations(SecurityLevel.VERIFY, names=("mx.example.com",), anchors=(_ca(ca),), depth=2)
    assert check_peer(chain, ok, NOW).trust is Trust.VERIFIED
    shallow = Expectations(
        SecurityLevel.VERIFY, names=("mx.example.com",), anchors=(_ca(ca),), depth=0
    )
    assert not check_peer(chain, shallow, NOW).trusted


def test_fingerprints_cert_and_pkey_all_digests() -> None:
    leaf = mint_self_signed("fp.example")[0]
    for digest in ("md5", "sha1", "sha256", "sha512"):
        for fp in (fingerprint(leaf, digest), pkey_fingerprint(leaf, digest)):
            wanted = Expectations(
                SecurityLevel.FINGERPRINT, fingerprints=(fp.lower(),), digest=digest
            )
            assert check_peer((leaf,), wanted, NOW).trust is Trust.VERIFIED
    wrong = Expectations(SecurityLevel.FINGERPRINT, fingerprints=("00:11",))
    assert not check_peer((leaf,), wrong, NOW).matched
    der = leaf.public_bytes(Encoding.DER)
    assert fingerprint(leaf, "sha256").replace(":", "") == hashlib.sha256(der).hexdigest().upper()


def _tlsa(usage: int, selector: int, mtype: int, cert: x509.Certificate) -> TlsaRecord:
    data = (
        cert.public_bytes(Encoding.DER)
        if selector == 0
        else cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    digest: dict[int, Callable[[bytes], bytes]] = {
        0: lambda d: d,
        1: lambda d: hashlib.sha256(d).digest(),
        2: lambda d: hashlib.sha512(d).digest(),
    }
    return TlsaRecord(usage, selector, mtype, digest[mtype](data))


def test_dane_ee_and_ta_all_selectors_and_types() -> None:
    ca = trustme.CA()
    inter = ca.create_child_ca()
    leaf = inter.issue_cert("mx.example.com")
    chain = tuple(x509.load_pem_x509_certificate(p.bytes()) for p in leaf.cert_chain_pems)
    for selector in (0, 1):
        for mtype in (0, 1, 2):
            assert match_chain(chain, (_tlsa(3, selector, mtype, chain[0]),)) is not None
            found = match_chain(chain, (_tlsa(2, selector, mtype, chain[1]),))
            assert found is not None and found.needs_name_check
    assert match_chain(chain, (_tlsa(1, 1, 1, chain[0]),)) is None  # PKIX-EE: unusable
    assert usable((_tlsa(0, 0, 1, chain[1]), TlsaRecord(3, 2, 1, b""))) == ()


def test_dane_checks() -> None:
    ca = trustme.CA()
    inter = ca.create_child_ca()
    chain = tuple(
        x509.load_pem_x509_certificate(p.bytes())
        for p in inter.issue_cert("mx.example.com").cert_chain_pems
    )
    ee = Expectations(SecurityLevel.DANE, names=("other",), tlsa=(_tlsa(3, 1, 1, chain[0]),))
    assert check_peer(chain, ee, NOW).trust is Trust.VERIFIED  # DANE-EE: no name check
    ta = Expectations(
        SecurityLevel.DANE, names=("mx.example.com",), tlsa=(_tlsa(2, 0, 1, chain[1]),)
    )
    assert check_peer(chain, ta, NOW).trust is Trust.VERIFIED
    ta_wrong = Expectations(SecurityLevel.DANE, names=("other.example",), tlsa=ta.tlsa)
    assert not check_peer(chain, ta_wrong, NOW).matched


# --- Postfix's wording (src/tls/tls_verify.c tls_log_verify_error(), smtp_proto.c) -------
def test_failure_wording_and_purpose() -> None:
    from mailcarrier.tls.tlslog import verification_failed_line

    ca = trustme.CA()
    chain = _chain(ca, "mx.example.com")
    relay = "mx.example.com[192.0.2.1]:25"
    wrong = Expectations(SecurityLevel.SECURE, names=("other.example",), anchors=(_ca(ca),))
    check = check_peer(chain, wrong, NOW)
    assert verification_failed_line(relay, check.problem, check.purpose) == (
        "server certificate verification failed for mx.example.com[192.0.2.1]:25: "
        "num=62:hostname mismatch"
    )
    fp = Expectations(SecurityLevel.FINGERPRINT, fingerprints=("00:11",))
    check = check_peer(chain, fp, NOW)
    assert verification_failed_line(relay, check.problem, check.purpose) == (
        "server certificate verification failed for mx.example.com[192.0.2.1]:25: "
        "num=65:No matching DANE TLSA records"
    )
    dane = Expectations(SecurityLevel.DANE, tlsa=(TlsaRecord(3, 1, 1, b"\0" * 32),))
    assert check_peer(chain, dane, NOW).problem == "num=65:No matching DANE TLSA records"
    unknown = Expectations(SecurityLevel.VERIFY, names=("mx.example.com",))
    check = check_peer(chain, unknown, NOW)
    assert verification_failed_line(relay, check.problem, check.purpose) == (
        "certificate verification failed for mx.example.com[192.0.2.1]:25: "
        f"untrusted issuer {oneline(_ca(ca).subject)}"
    )


def test_not_yet_valid_and_expired() -> None:
    ca = trustme.CA()
    chain = _chain(ca, "mx.example.com")
    wanted = Expectations(SecurityLevel.VERIFY, names=("mx.example.com",), anchors=(_ca(ca),))
    early = check_peer(chain, wanted, datetime.datetime(1990, 1, 1, tzinfo=datetime.UTC))
    assert (early.purpose, early.problem) == ("server", "certificate not yet valid")
    inter = ca.create_child_ca()
    deep = tuple(
        x509.load_pem_x509_certificate(p.bytes())
        for p in inter.issue_cert("mx.example.com").cert_chain_pems
    )
    # Far in the future every certificate has expired; the leaf is reported first.
    late = check_peer(deep, wanted, datetime.datetime(3100, 1, 1, tzinfo=datetime.UTC))
    assert (late.purpose, late.problem) == ("server", "certificate has expired")


def test_dane_ta_bare_key_record() -> None:
    """A "2 1 0" record carries the anchor's key itself; the server need not send the
    anchor certificate."""
    ca = trustme.CA()
    inter = ca.create_child_ca()
    full = tuple(
        x509.load_pem_x509_certificate(p.bytes())
        for p in inter.issue_cert("mx.example.com").cert_chain_pems
    )
    chain = full[:1]  # the server sends only its leaf
    spki = full[1].public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    wanted = Expectations(
        SecurityLevel.DANE, names=("mx.example.com",), tlsa=(TlsaRecord(2, 1, 0, spki),)
    )
    assert check_peer(chain, wanted, NOW).trust is Trust.VERIFIED
    other = Expectations(
        SecurityLevel.DANE, names=("other.example",), tlsa=(TlsaRecord(2, 1, 0, spki),)
    )
    assert check_peer(chain, other, NOW).problem == "num=62:hostname mismatch"

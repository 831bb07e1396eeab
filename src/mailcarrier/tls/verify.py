"""Judge a server's certificate chain after the handshake: trusted? matched? (pure, no I/O).

Postfix lets OpenSSL finish the handshake and decides afterwards, so that it can log
"Untrusted TLS connection established" before refusing to use it; mailcarrier does the same:
the handshake verifies nothing, and `check_peer()` then validates the chain against the CA
certificates of ``smtp_tls_CAfile``/``smtp_tls_CApath`` or, replacing them, the trust
anchors of ``smtp_tls_trust_anchor_file``/``tafile=`` (certificates or bare public keys,
`TrustAnchors`), with ``smtp_tls_scert_verifydepth``, and matches names (names.py),
fingerprints (``smtp_tls_fingerprint_digest``: certificate or public-key digest) or TLSA
records (dane.py), as the security level asks. `Trust` is the first word of Postfix's
"... TLS connection established" line.

A failed check carries Postfix's wording for its "certificate verification failed" log
line (src/tls/tls_verify.c tls_log_verify_error()): `problem` is the text after the colon
and `purpose` the word in front ("server" or "CA" for OpenSSL errors reported against a
certificate, else empty):

* ``untrusted issuer /CN=...``, ``self-signed certificate``,
  ``certificate chain longer than limit(N)``, ``not trusted by local or TLSA policy``;
* ``server``/``CA``: ``certificate has expired``, ``certificate not yet valid``;
* ``server``: ``num=62:hostname mismatch`` (verify, secure and DANE-TA names: OpenSSL's
  host check) and ``num=65:No matching DANE TLSA records`` (fingerprint and DANE: Postfix
  matches fingerprints as DANE-EE records through OpenSSL).

The delivery itself is deferred with Postfix's one reason for all of these, "Server
certificate not verified" (smtp_proto.c), decided in delivery/tls_step.py.

cryptography is imported by the functions that use it, not with this module: it is slow to
import, and most runs of the program never judge a certificate.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import hmac
from dataclasses import dataclass
from typing import TYPE_CHECKING

from mailcarrier.tls.dane import TlsaRecord, match_chain
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.names import first_match

if TYPE_CHECKING:
    from cryptography import x509
    from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

__all__ = [
    "HOSTNAME_MISMATCH",
    "NO_TLSA_MATCH",
    "Expectations",
    "PeerCheck",
    "Trust",
    "TrustAnchors",
    "chain_problem",
    "check_peer",
    "fingerprint",
    "oneline",
    "pkey_fingerprint",
    "signed_by",
]

# OpenSSL's X509_V_ERR_HOSTNAME_MISMATCH and X509_V_ERR_DANE_NO_MATCH as Postfix logs them
# ("num=%d:%s" with X509_verify_cert_error_string()).
HOSTNAME_MISMATCH = "num=62:hostname mismatch"
NO_TLSA_MATCH = "num=65:No matching DANE TLSA records"


class Trust(enum.Enum):
    VERIFIED = "Verified"
    TRUSTED = "Trusted"
    UNTRUSTED = "Untrusted"
    ANONYMOUS = "Anonymous"


@dataclass(frozen=True, slots=True)
class PeerCheck:
    """`trusted`: the chain leads to a trust anchor; `matched`: names, fingerprint or TLSA
    matched as the level requires. `problem` is the reason for the log when either fails."""

    trust: Trust
    trusted: bool
    matched: bool
    problem: str = ""
    detail: str = ""  # what matched: a name, a fingerprint, a TLSA record
    purpose: str = ""  # "server" or "CA" in front of "certificate verification failed"


@dataclass(frozen=True, slots=True)
class TrustAnchors:
    """``smtp_tls_trust_anchor_file``/``tafile=`` content: certificates and bare public keys
    ("-----BEGIN PUBLIC KEY-----"), as Postfix accepts both. A chain is trusted when one of
    its certificates carries an anchor's key, or its top certificate is signed by an
    anchor; only the certificates below the anchor are checked (dates, signatures): per
    RFC 5280 a trust anchor is just a key, and Postfix does not enforce its expiry."""

    certs: tuple[x509.Certificate, ...] = ()
    keys: tuple[PublicKeyTypes, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.certs or self.keys)

    def spkis(self) -> frozenset[bytes]:
        found = {_spki(c.public_key()) for c in self.certs}
        found.update(_spki(k) for k in self.keys)
        return frozenset(found)


@dataclass(frozen=True, slots=True)
class Expectations:
    """What the level asks of the peer: names (verify, secure, DANE-TA), fingerprints,
    TLSA records; CA certificates (`anchors`) or trust anchors (`trust_anchors`, which
    replace the CAs when present) and depth for chain validation."""

    level: SecurityLevel
    names: tuple[str, ...] = ()
    fingerprints: tuple[str, ...] = ()
    digest: str = "sha256"
    anchors: tuple[x509.Certificate, ...] = ()
    depth: int = 9
    tlsa: tuple[TlsaRecord, ...] = ()
    trust_anchors: TrustAnchors = TrustAnchors()


def oneline(name: x509.Name) -> str:
    """OpenSSL's one-line form, ``/C=US/O=Example/CN=Example CA``."""
    parts = []
    for rdn in name.rdns:
        for attr in rdn:
            value = attr.value if isinstance(attr.value, str) else attr.value.decode("latin-1")
            parts.append(f"{attr.rfc4514_attribute_name}={value}")
    return "/" + "/".join(parts)


def _hex(data: bytes) -> str:
    return ":".join(f"{b:02X}" for b in data)


def fingerprint(cert: x509.Certificate, digest: str) -> str:
    from cryptography.hazmat.primitives.serialization import Encoding

    return _hex(hashlib.new(digest, cert.public_bytes(Encoding.DER)).digest())


def _spki(key: PublicKeyTypes) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def pkey_fingerprint(cert: x509.Certificate, digest: str) -> str:
    return _hex(hashlib.new(digest, _spki(cert.public_key())).digest())


def _normal(fp: str) -> str:
    return fp.replace(":", "").strip().lower()


def signed_by(cert: x509.Certificate, key: PublicKeyTypes) -> bool:
    """Is `cert`'s signature made with `key`? (A bare public key has no name to compare.)"""
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives.asymmetric import dsa, ec, ed448, ed25519, rsa
    from cryptography.hazmat.primitives.asymmetric.padding import AsymmetricPadding

    sig, tbs = cert.signature, cert.tbs_certificate_bytes
    algorithm = cert.signature_hash_algorithm
    params = cert.signature_algorithm_parameters
    try:
        if isinstance(key, rsa.RSAPublicKey):
            if algorithm is None or not isinstance(params, AsymmetricPadding):
                return False
            key.verify(sig, tbs, params, algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if not isinstance(params, ec.ECDSA):
                return False
            key.verify(sig, tbs, params)
        elif isinstance(key, (ed25519.Ed25519PublicKey, ed448.Ed448PublicKey)):
            key.verify(sig, tbs)
        elif isinstance(key, dsa.DSAPublicKey):
            if algorithm is None:
                return False
            key.verify(sig, tbs, algorithm)
        else:
            return False
    except (InvalidSignature, UnsupportedAlgorithm, TypeError, ValueError):
        return False
    return True


def _dates(cert: x509.Certificate, purpose: str, now: datetime.datetime) -> tuple[str, str]:
    if cert.not_valid_after_utc < now:
        return purpose, "certificate has expired"
    if cert.not_valid_before_utc > now:
        return purpose, "certificate not yet valid"
    return "", ""


def _purpose(index: int) -> str:
    return "server" if index == 0 else "CA"


def _below_anchor_at(
    chain: tuple[x509.Certificate, ...],
    issuer: x509.Certificate | PublicKeyTypes | None,
    now: datetime.datetime,
) -> tuple[str, str]:
    from cryptography import x509

    checked = chain if issuer is not None else chain[:-1]
    for i, cert in enumerate(checked):
        problem = _dates(cert, _purpose(i), now)
        if problem[1]:
            return problem
        above = chain[i + 1] if i + 1 < len(chain) else issuer
        if above is None:
            break
        if isinstance(above, x509.Certificate):
            good = cert.issuer == above.subject and signed_by(cert, above.public_key())
        else:
            good = signed_by(cert, above)
        if not good:
            return "", f"untrusted issuer {oneline(cert.issuer)}"
    return "", ""


def _anchored_problem(
    chain: tuple[x509.Certificate, ...],
    anchors: TrustAnchors,
    depth: int,
    now: datetime.datetime,
) -> tuple[str, str]:
    """Trust-anchor validation (Postfix tls_verify.c ta_match())."""
    wanted = anchors.spkis()
    for i, cert in enumerate(chain):
        if _spki(cert.public_key()) in wanted:
            if i > depth:
                return "", f"certificate chain longer than limit({depth})"
            return _below_anchor_at(chain[: i + 1], None, now)
    top = chain[-1]
    issuers: list[x509.Certificate | PublicKeyTypes] = [
        c for c in anchors.certs if c.subject == top.issuer and signed_by(top, c.public_key())
    ]
    issuers += [k for k in anchors.keys if signed_by(top, k)]
    if issuers:
        if len(chain) > depth:
            return "", f"certificate chain longer than limit({depth})"
        return _below_anchor_at(chain, issuers[0], now)
    if top.issuer == top.subject and len(chain) == 1:
        return "", "self-signed certificate"
    return "", f"untrusted issuer {oneline(top.issuer)}"


def _chain_problem(
    chain: tuple[x509.Certificate, ...],
    anchors: tuple[x509.Certificate, ...],
    depth: int,
    now: datetime.datetime,
    trust_anchors: TrustAnchors = TrustAnchors(),
) -> tuple[str, str]:
    """("", "") when `chain` is trusted, else (purpose, problem) as Postfix logs them."""
    if trust_anchors:
        return _anchored_problem(chain, trust_anchors, depth, now)
    for i, cert in enumerate(chain):
        if i > 0 and cert.issuer == cert.subject:
            break  # a root sent along: its own dates are the store's business
        problem = _dates(cert, _purpose(i), now)
        if problem[1]:
            return problem
    if anchors:
        from cryptography.x509 import verification

        try:
            builder = (
                verification.PolicyBuilder()
                .store(verification.Store(list(anchors)))
                .time(now)
                .max_chain_depth(depth)
                .extension_policies(
                    ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(),
                    ee_policy=verification.ExtensionPolicy.permit_all(),
                )
            )
            builder.build_client_verifier().verify(chain[0], list(chain[1:]))
            return "", ""
        except (verification.VerificationError, ValueError):
            pass
    leaf = chain[0]
    if leaf.issuer == leaf.subject and len(chain) == 1:
        return "", "self-signed certificate"
    return "", f"untrusted issuer {oneline(chain[-1].issuer)}"


def chain_problem(
    chain: tuple[x509.Certificate, ...],
    anchors: tuple[x509.Certificate, ...],
    depth: int,
    now: datetime.datetime,
) -> str:
    """ "" when `chain` validates to one of `anchors`; else Postfix-style words for the log."""
    return _chain_problem(chain, anchors, depth, now)[1]


def _fingerprint_match(leaf: x509.Certificate, wanted: Expectations) -> str:
    mine = (fingerprint(leaf, wanted.digest), pkey_fingerprint(leaf, wanted.digest))
    for fp in wanted.fingerprints:
        for candidate in mine:
            if hmac.compare_digest(_normal(fp), _normal(candidate)):
                return candidate
    return ""


def _bare_key_anchors(records: tuple[TlsaRecord, ...]) -> TrustAnchors:
    """DANE-TA(2) SPKI(1) Full(0) records: the anchor's public key itself, which a server
    may publish without sending the anchor certificate (Postfix handles "2 1 0" so)."""
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives.serialization import load_der_public_key

    keys: list[PublicKeyTypes] = []
    for record in records:
        if (record.usage, record.selector, record.mtype) == (2, 1, 0):
            try:
                keys.append(load_der_public_key(record.data))
            except (ValueError, UnsupportedAlgorithm):
                continue
    return TrustAnchors(keys=tuple(keys))


def _check_dane(
    chain: tuple[x509.Certificate, ...], wanted: Expectations, now: datetime.datetime
) -> PeerCheck:
    found = match_chain(chain, wanted.tlsa)
    if found is None:
        keys = _bare_key_anchors(wanted.tlsa)
        if keys and not _chain_problem(chain, (), wanted.depth, now, keys)[1]:
            return _dane_names(chain, wanted, "TLSA 2 1 0")
        return PeerCheck(Trust.UNTRUSTED, False, False, NO_TLSA_MATCH, purpose="server")
    record = found.record
    detail = f"TLSA {record.usage} {record.selector} {record.mtype}"
    if not found.needs_name_check:
        return PeerCheck(Trust.VERIFIED, True, True, detail=detail)
    assert found.anchor is not None
    purpose, problem = _chain_problem(
        chain, (), wanted.depth, now, TrustAnchors(certs=(found.anchor,))
    )
    if problem:
        return PeerCheck(Trust.UNTRUSTED, False, False, problem, purpose=purpose)
    return _dane_names(chain, wanted, detail)


def _dane_names(
    chain: tuple[x509.Certificate, ...], wanted: Expectations, detail: str
) -> PeerCheck:
    name = first_match(chain[0], wanted.names)
    if name is None:
        return PeerCheck(Trust.TRUSTED, True, False, HOSTNAME_MISMATCH, purpose="server")
    return PeerCheck(Trust.VERIFIED, True, True, detail=f"{detail}, name {name}")


def check_peer(
    chain: tuple[x509.Certificate, ...], wanted: Expectations, now: datetime.datetime
) -> PeerCheck:
    """Judge `chain` (leaf first, as the server sent it) for `wanted.level`."""
    if not chain:
        return PeerCheck(Trust.ANONYMOUS, False, False, "no server certificate")
    level = wanted.level
    if level.is_dane and wanted.tlsa:
        return _check_dane(chain, wanted, now)
    if level is SecurityLevel.FINGERPRINT:
        # Fingerprints authenticate the key itself: no CA and no expiry check (Postfix).
        matched = _fingerprint_match(chain[0], wanted)
        if matched:
            return PeerCheck(Trust.VERIFIED, True, True, detail=matched)
        return PeerCheck(Trust.UNTRUSTED, False, False, NO_TLSA_MATCH, purpose="server")
    purpose, problem = _chain_problem(
        chain, wanted.anchors, wanted.depth, now, wanted.trust_anchors
    )
    if problem:
        return PeerCheck(Trust.UNTRUSTED, False, False, problem, purpose=purpose)
    if not level.must_match:
        return PeerCheck(Trust.TRUSTED, True, False)
    name = first_match(chain[0], wanted.names)
    if name is None:
        return PeerCheck(Trust.TRUSTED, True, False, HOSTNAME_MISMATCH, purpose="server")
    return PeerCheck(Trust.VERIFIED, True, True, detail=name)

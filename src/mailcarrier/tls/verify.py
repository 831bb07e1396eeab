"""Judge a server's certificate chain after the handshake: trusted? matched? (pure, no I/O).

Postfix lets OpenSSL finish the handshake and decides afterwards, so that it can log
"Untrusted TLS connection established" before refusing to use it; mailcarrier does the same:
the handshake verifies nothing, and `check_peer()` then validates the chain against the CA
certificates of ``smtp_tls_CAfile``/``smtp_tls_CApath`` (or the trust anchors of
``smtp_tls_trust_anchor_file``) with ``smtp_tls_scert_verifydepth``, and matches names
(names.py), fingerprints (``smtp_tls_fingerprint_digest``: certificate or public-key
digest) or TLSA records (dane.py), as the security level asks. `Trust` is the first word of
Postfix's "... TLS connection established" line.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import hmac
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from cryptography.x509 import verification

from mailcarrier.tls.dane import TlsaRecord, match_chain
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.names import first_match

__all__ = [
    "Expectations",
    "PeerCheck",
    "Trust",
    "chain_problem",
    "check_peer",
    "fingerprint",
    "oneline",
    "pkey_fingerprint",
]


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


@dataclass(frozen=True, slots=True)
class Expectations:
    """What the level asks of the peer: names (verify, secure, DANE-TA), fingerprints,
    TLSA records; anchors and depth for chain validation."""

    level: SecurityLevel
    names: tuple[str, ...] = ()
    fingerprints: tuple[str, ...] = ()
    digest: str = "sha256"
    anchors: tuple[x509.Certificate, ...] = ()
    depth: int = 9
    tlsa: tuple[TlsaRecord, ...] = ()


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
    return _hex(hashlib.new(digest, cert.public_bytes(Encoding.DER)).digest())


def pkey_fingerprint(cert: x509.Certificate, digest: str) -> str:
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return _hex(hashlib.new(digest, spki).digest())


def _normal(fp: str) -> str:
    return fp.replace(":", "").strip().lower()


def chain_problem(
    chain: tuple[x509.Certificate, ...],
    anchors: tuple[x509.Certificate, ...],
    depth: int,
    now: datetime.datetime,
) -> str:
    """ "" when `chain` validates to one of `anchors`; else Postfix-style words for the log."""
    leaf = chain[0]
    if leaf.not_valid_after_utc < now:
        return "certificate has expired"
    if leaf.not_valid_before_utc > now:
        return "certificate is not yet valid"
    if anchors:
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
            builder.build_client_verifier().verify(leaf, list(chain[1:]))
            return ""
        except (verification.VerificationError, ValueError):
            pass
    if leaf.issuer == leaf.subject and len(chain) == 1:
        return "self-signed certificate"
    return f"untrusted issuer {oneline(chain[-1].issuer)}"


def _fingerprint_match(leaf: x509.Certificate, wanted: Expectations) -> str:
    mine = (fingerprint(leaf, wanted.digest), pkey_fingerprint(leaf, wanted.digest))
    for fp in wanted.fingerprints:
        for candidate in mine:
            if hmac.compare_digest(_normal(fp), _normal(candidate)):
                return candidate
    return ""


def _check_dane(
    chain: tuple[x509.Certificate, ...], wanted: Expectations, now: datetime.datetime
) -> PeerCheck:
    found = match_chain(chain, wanted.tlsa)
    if found is None:
        return PeerCheck(Trust.UNTRUSTED, False, False, "not trusted by local or TLSA policy")
    record = found.record
    detail = f"TLSA {record.usage} {record.selector} {record.mtype}"
    if not found.needs_name_check:
        return PeerCheck(Trust.VERIFIED, True, True, detail=detail)
    assert found.anchor is not None
    problem = chain_problem(chain, (found.anchor,), wanted.depth, now)
    if problem:
        return PeerCheck(Trust.UNTRUSTED, False, False, problem)
    name = first_match(chain[0], wanted.names)
    if name is None:
        return PeerCheck(Trust.TRUSTED, True, False, "certificate name mismatch")
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
        return PeerCheck(Trust.UNTRUSTED, False, False, "fingerprint mismatch")
    problem = chain_problem(chain, wanted.anchors, wanted.depth, now)
    if problem:
        return PeerCheck(Trust.UNTRUSTED, False, False, problem)
    if not level.must_match:
        return PeerCheck(Trust.TRUSTED, True, False)
    name = first_match(chain[0], wanted.names)
    if name is None:
        return PeerCheck(Trust.TRUSTED, True, False, "certificate name mismatch")
    return PeerCheck(Trust.VERIFIED, True, True, detail=name)

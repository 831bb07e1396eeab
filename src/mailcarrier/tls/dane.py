"""DANE TLSA matching for SMTP (RFC 7672, with the usage rules of RFC 7671).

`TlsaRecord` mirrors a TLSA RR; routing/ fetches them (tls/ does no I/O) and the delivery
step converts. `usable()` keeps what SMTP can use: DANE-TA(2) and DANE-EE(3) with selector 0
(full certificate) or 1 (SubjectPublicKeyInfo) and matching type 0 (exact), 1 (SHA2-256) or
2 (SHA2-512); PKIX-TA(0) and PKIX-EE(1) are unusable for SMTP (RFC 7672 3.1.3), but a secure
RRset holding only those still makes TLS mandatory. `match_chain()` authenticates a peer's
certificate chain: DANE-EE matches the leaf alone, with no name or expiry check (RFC 7672
3.1.1); DANE-TA finds the anchor in the chain, and the caller then validates the chain to it
and checks the names (RFC 7672 3.1.2, 3.2.2). cryptography is imported when a record is first
matched, not with this module (it is slow to import).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cryptography import x509

__all__ = ["DaneMatch", "TlsaRecord", "match_chain", "usable"]

DANE_TA = 2
DANE_EE = 3


@dataclass(frozen=True, slots=True)
class TlsaRecord:
    usage: int
    selector: int
    mtype: int
    data: bytes


@dataclass(frozen=True, slots=True)
class DaneMatch:
    """What matched: the record, and for DANE-TA the anchor certificate found in the chain."""

    record: TlsaRecord
    anchor: x509.Certificate | None = None

    @property
    def needs_name_check(self) -> bool:
        return self.record.usage == DANE_TA


def usable(records: tuple[TlsaRecord, ...]) -> tuple[TlsaRecord, ...]:
    return tuple(
        r
        for r in records
        if r.usage in (DANE_TA, DANE_EE) and r.selector in (0, 1) and r.mtype in (0, 1, 2)
    )


def _selected(cert: x509.Certificate, selector: int) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    if selector == 0:
        return cert.public_bytes(Encoding.DER)
    return cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)


def _digest(data: bytes, mtype: int) -> bytes:
    if mtype == 1:
        return hashlib.sha256(data).digest()
    if mtype == 2:
        return hashlib.sha512(data).digest()
    return data


def record_matches(record: TlsaRecord, cert: x509.Certificate) -> bool:
    return _digest(_selected(cert, record.selector), record.mtype) == record.data


def match_chain(
    chain: tuple[x509.Certificate, ...], records: tuple[TlsaRecord, ...]
) -> DaneMatch | None:
    """The first usable record that the chain satisfies (EE records first: cheaper, no checks)."""
    if not chain:
        return None
    candidates = usable(records)
    for record in candidates:
        if record.usage == DANE_EE and record_matches(record, chain[0]):
            return DaneMatch(record)
    for record in candidates:
        if record.usage != DANE_TA:
            continue
        for cert in chain[1:] or chain[:1]:
            if record_matches(record, cert):
                return DaneMatch(record, cert)
    return None

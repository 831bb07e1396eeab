"""Postfix's dns_lookup() semantics on top of a `Resolver`: statuses, texts, CNAMEs, null MX.

`dns_lookup(resolver, name, rdtype)` turns one `DnsAnswer` into a `DnsStatus` (Postfix's
DNS_OK, DNS_NOTFOUND, DNS_RETRY, DNS_FAIL, DNS_INVAL, DNS_NULLMX, DNS_NULLSRV) and the exact
reason text Postfix puts in the delivery status ("Host or domain name not found. Name service
error for name=example.com type=MX: Host not found, try again"). It validates the names in
replies, chases a CNAME whose target the reply did not resolve (at most 10 deep) and records
each record's query and reply names, as Postfix's DNS_RR does; localhost names (RFC 6761 6.3)
are answered by localhost.py, never by the resolver. `dns_lookup_types` asks for several
types (A then AAAA) and keeps the most useful status. Which status means defer or bounce is
decided by the callers in `addrlookup.py`, `mx.py` and `srv.py`.
"""

from __future__ import annotations

import enum
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from mailcarrier.idn import domain_to_ascii, valid_hostname
from mailcarrier.routing.localhost import is_localhost, localhost_answer
from mailcarrier.routing.resolver import (
    DnsAnswer,
    DnsOutcome,
    DnsRecord,
    MXRecord,
    Resolver,
    SRVRecord,
)

__all__ = [
    "DnsStatus",
    "LookupResult",
    "ResourceRecord",
    "dns_lookup",
    "dns_lookup_types",
    "is_numeric_address",
    "to_ascii",
    "valid_hostname",
]

# dns_lookup() follows at most this many CNAME indirections.
CNAME_LIMIT: Final = 10

# h_errno texts (Postfix dns_strerror()).
HOST_NOT_FOUND: Final = "Host not found"
TRY_AGAIN: Final = "Host not found, try again"
NO_RECOVERY: Final = "Non-recoverable error"
NO_DATA: Final = "Host found but no data record of requested type"


class DnsStatus(enum.IntEnum):
    """Postfix's DNS_* status codes. The numeric order is Postfix's precedence when several
    record types are looked up for one name: the highest status wins."""

    NOTFOUND = -7
    NULLSRV = -6
    NULLMX = -5
    FAIL = -4
    INVAL = -3
    RETRY = -2
    OK = 0


@dataclass(frozen=True, slots=True)
class ResourceRecord:
    """A record with Postfix's DNS_RR bookkeeping: `qname` is the name we asked for, `rname`
    the owner name in the reply (different after a CNAME), `dnssec_valid` the AD bit."""

    qname: str
    rname: str
    record: DnsRecord
    dnssec_valid: bool = False


@dataclass(frozen=True, slots=True)
class LookupResult:
    status: DnsStatus
    records: tuple[ResourceRecord, ...] = ()
    reason: str = ""
    truncated: bool = False  # records beyond the list limit were dropped (Postfix warns)


def to_ascii(name: str) -> str:
    """The A-label form of a name for DNS (idn.py: UTS #46 non-transitional, as
    Postfix's midna_domain_to_ascii); the name unchanged when it is ASCII or cannot be
    converted (the lookup then refuses it as an invalid name, as Postfix's does)."""
    ascii_name = domain_to_ascii(name)
    return name if ascii_name is None else ascii_name


def is_numeric_address(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return False
    return True


def _error_reason(name: str, rdtype: str, herror: str) -> str:
    return (
        f"Host or domain name not found. Name service error for name={name} type={rdtype}: {herror}"
    )


def _malformed(name: str, rdtype: str) -> LookupResult:
    return LookupResult(
        DnsStatus.INVAL,
        reason=f"Name service error for name={name} type={rdtype}: "
        "Malformed or unexpected name server reply",
    )


def _name_ok(name: str) -> bool:
    # RFC 1034 4.3.3 allows a leading "*" label; numeric "names" pass with a warning in
    # Postfix ("numeric domain name"), because some sites list addresses as MX hosts.
    return is_numeric_address(name) or valid_hostname(name, wildcard=True)


def _check_records(answer: DnsAnswer, name: str, rdtype: str) -> LookupResult | None:
    """Null MX / null SRV and malformed names in the answer, as Postfix's dns_get_rr()."""
    if not _name_ok(answer.owner):
        return _malformed(name, rdtype)
    for record in answer.records:
        if isinstance(record, MXRecord):
            if not record.exchange:
                # RFC 7505: a "." exchange says the domain accepts no mail. Postfix treats any
                # such record as null MX, whatever else the RRset holds.
                return LookupResult(
                    DnsStatus.NULLMX, reason=f"Domain {name} does not accept mail (nullMX)"
                )
            if not _name_ok(record.exchange):
                return _malformed(name, rdtype)
        elif isinstance(record, SRVRecord):
            if not record.target:
                # RFC 2782: target "." means "service decidedly not available".
                return LookupResult(
                    DnsStatus.NULLSRV, reason=f"Domain {name} does not support SRV requests"
                )
            if not _name_ok(record.target):
                return _malformed(name, rdtype)
    return None


async def dns_lookup(resolver: Resolver, name: str, rdtype: str) -> LookupResult:
    """Look up one record type for `name`, following CNAMEs, with Postfix's status and text."""
    if is_numeric_address(name) or not valid_hostname(name, wildcard=True):
        # Postfix refuses these before asking (DJBDNS invents A records for numeric names,
        # and the Linux resolver misbehaves on invalid names).
        return LookupResult(
            DnsStatus.NOTFOUND, reason=f"Name service error for {name}: invalid host or domain name"
        )
    orig_name = name
    maybe_secure = True
    for _ in range(CNAME_LIMIT):
        if is_localhost(name):  # RFC 6761 6.3: never asked of a name server
            answer = localhost_answer(name, rdtype)
        else:
            answer = await resolver.resolve(name, rdtype)
        outcome = answer.outcome
        if outcome is DnsOutcome.NXDOMAIN:
            return LookupResult(
                DnsStatus.NOTFOUND, reason=_error_reason(name, rdtype, HOST_NOT_FOUND)
            )
        if outcome.temporary:
            return LookupResult(DnsStatus.RETRY, reason=_error_reason(name, rdtype, TRY_AGAIN))
        if outcome is DnsOutcome.NO_RECOVERY:
            return LookupResult(DnsStatus.FAIL, reason=_error_reason(name, rdtype, NO_RECOVERY))
        problem = _check_records(answer, name, rdtype)
        if problem is not None:
            return problem
        if outcome is DnsOutcome.NODATA:
            if answer.canonical_name and answer.canonical_name != name:
                # The reply ended in a CNAME whose target it did not resolve: ask for the
                # target. Once a link is not validated, nothing after it is.
                maybe_secure = maybe_secure and answer.ad
                name = answer.canonical_name
                continue
            return LookupResult(DnsStatus.NOTFOUND, reason=_error_reason(name, rdtype, NO_DATA))
        secure = maybe_secure and answer.ad
        records = tuple(
            ResourceRecord(orig_name, answer.owner, record, secure) for record in answer.records
        )
        return LookupResult(DnsStatus.OK, records, truncated=answer.truncated)
    return LookupResult(DnsStatus.NOTFOUND, reason=f"Name server loop for {name}")


async def dns_lookup_types(resolver: Resolver, name: str, rdtypes: Sequence[str]) -> LookupResult:
    """Postfix dns_lookup_v(): look up each type in order and merge the records. The result
    status is OK when any type was found; otherwise the most hopeful failure (RETRY over
    NOTFOUND), with the text of the last lookup of that status."""
    records: list[ResourceRecord] = []
    best: LookupResult | None = None
    truncated = False
    for rdtype in rdtypes:
        result = await dns_lookup(resolver, name, rdtype)
        records.extend(result.records)
        truncated = truncated or result.truncated
        if best is None or result.status >= best.status:
            best = result
    if best is None:
        raise ValueError("no record types to look up")
    if best.status is DnsStatus.OK:
        return LookupResult(DnsStatus.OK, tuple(records), truncated=truncated)
    return best

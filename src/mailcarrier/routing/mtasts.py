"""MTA-STS discovery (RFC 8461 3.1): the ``_mta-sts.<domain>`` TXT record, through the resolver.

`discover(resolver, domain)` asks for the TXT records of ``_mta-sts.<domain>`` (CNAMEs are
followed: those the resolver chased in its reply, and up to `CNAME_LIMIT` more asked here when
a reply ends at an alias; never the parent domains: RFC 8461 3.1 has no such walk) and returns a
`Discovery`: the valid record, none at all, or a problem (a malformed record set, a
temporary DNS failure) in one line. What the record means for delivery (fetch the policy or
use the cached one) is delivery/sts_cache.py's; the record grammar is tls/sts.py's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mailcarrier.routing.resolver import DnsOutcome, Resolver, TXTRecord
from mailcarrier.tls.sts import StsRecord, StsRecordError, select_record

__all__ = ["CNAME_LIMIT", "Discovery", "discover"]

CNAME_LIMIT: Final = 8


@dataclass(frozen=True, slots=True)
class Discovery:
    """`record` when one valid STSv1 record was found; else `problem` ("" when the domain
    simply publishes none) and whether it is `temporary` (a DNS failure)."""

    record: StsRecord | None = None
    problem: str = ""
    temporary: bool = False


async def discover(resolver: Resolver, domain: str) -> Discovery:
    qname = f"_mta-sts.{domain}"
    for _ in range(CNAME_LIMIT + 1):
        answer = await resolver.resolve(qname, "TXT")
        if answer.outcome.temporary or answer.outcome is DnsOutcome.NO_RECOVERY:
            return Discovery(
                problem=f"TXT lookup for {qname}: {answer.outcome.value}", temporary=True
            )
        if answer.outcome is DnsOutcome.OK:
            texts = [r.text for r in answer.records if isinstance(r, TXTRecord)]
            try:
                return Discovery(record=select_record(texts))
            except StsRecordError as exc:
                return Discovery(problem=f"{answer.owner}: {exc}")
        if answer.outcome is DnsOutcome.NODATA and answer.owner.lower() != qname.lower():
            qname = answer.owner  # the reply ended at an alias: ask for its target
            continue
        return Discovery()
    return Discovery(problem=f"_mta-sts.{domain}: CNAME chain longer than {CNAME_LIMIT}")

"""TLSRPT discovery (RFC 8460 3): where a domain wants its reports, from ``_smtp._tls`` TXT.

`discover_rua(resolver, domain)` asks for the TXT records of ``_smtp._tls.<domain>``, joins the
strings of each record, discards those that do not begin with ``v=TLSRPTv1`` and, when exactly
one remains (RFC 8460 3: otherwise the domain "does not implement TLSRPT"), returns its
``mailto:`` and ``https:`` URIs (tls/tlsrpt.py's grammar). A DNS failure is a `problem` in
one line, never an exception. No parent-domain walk: the RFC has none.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailcarrier.routing.resolver import DnsOutcome, Resolver, TXTRecord
from mailcarrier.tls.tlsrpt import parse_record

__all__ = ["RuaDiscovery", "discover_rua"]


@dataclass(frozen=True, slots=True)
class RuaDiscovery:
    """`uris` of the one valid record (empty: none); `problem` says why when it matters."""

    uris: tuple[str, ...] = ()
    problem: str = ""
    temporary: bool = False


async def discover_rua(resolver: Resolver, domain: str) -> RuaDiscovery:
    qname = f"_smtp._tls.{domain}"
    answer = await resolver.resolve(qname, "TXT")
    if answer.outcome.temporary or answer.outcome is DnsOutcome.NO_RECOVERY:
        return RuaDiscovery(
            problem=f"TXT lookup for {qname}: {answer.outcome.value}", temporary=True
        )
    texts = [
        b"".join(r.strings).decode("utf-8", "replace")
        for r in answer.records
        if isinstance(r, TXTRecord)
    ]
    versioned = [t for t in texts if t.replace(" ", "").startswith("v=TLSRPTv1")]
    if not versioned:
        return RuaDiscovery()
    if len(versioned) > 1:
        return RuaDiscovery(problem=f"{qname}: {len(versioned)} TLSRPT records, none used")
    uris = parse_record(versioned[0])
    if uris is None:
        return RuaDiscovery(problem=f"{qname}: malformed TLSRPT record: {versioned[0]!r}")
    return RuaDiscovery(uris)

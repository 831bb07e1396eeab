"""In-memory fakes of the routing resolvers, for decision-logic tests with no network.

`FakeResolver` answers from a table of (name, type) -> records or outcome; unknown names
are NXDOMAIN, known names without the asked type are NODATA. `FakeNative` does the same
for getaddrinfo(). Both record every question asked. The routing tests' own helpers; the
loopback DNS server that answers real queries is tests/support/dns.py.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field

from mailcarrier.routing.resolver import (
    AddressRecord,
    DnsAnswer,
    DnsOutcome,
    DnsRecord,
    MXRecord,
    NativeAnswer,
    SRVRecord,
)


def a(address: str) -> AddressRecord:
    return AddressRecord(address, socket.AF_INET)


def aaaa(address: str) -> AddressRecord:
    return AddressRecord(address, socket.AF_INET6)


def mx(preference: int, exchange: str) -> MXRecord:
    return MXRecord(preference, exchange)


def srv(priority: int, weight: int, port: int, target: str) -> SRVRecord:
    return SRVRecord(priority, weight, port, target)


_TYPE_OF = {MXRecord: "MX", SRVRecord: "SRV"}


def _rdtype(record: DnsRecord) -> str:
    if isinstance(record, AddressRecord):
        return "A" if record.family == socket.AF_INET else "AAAA"
    return _TYPE_OF[type(record)]


@dataclass
class FakeResolver:
    records: dict[str, list[DnsRecord]] = field(default_factory=dict)
    outcomes: dict[tuple[str, str], DnsOutcome] = field(default_factory=dict)
    cnames: dict[str, str] = field(default_factory=dict)  # name -> canonical name
    ad: set[str] = field(default_factory=set)
    queries: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, *records: DnsRecord) -> FakeResolver:
        self.records.setdefault(name, []).extend(records)
        return self

    def fail(self, name: str, rdtype: str, outcome: DnsOutcome) -> FakeResolver:
        self.outcomes[(name, rdtype)] = outcome
        return self

    async def resolve(self, qname: str, rdtype: str) -> DnsAnswer:
        self.queries.append((qname, rdtype))
        if (qname, rdtype) in self.outcomes:
            return DnsAnswer(qname, rdtype, self.outcomes[(qname, rdtype)])
        owner = self.cnames.get(qname, qname)
        if owner not in self.records and qname not in self.cnames:
            return DnsAnswer(qname, rdtype, DnsOutcome.NXDOMAIN)
        found = tuple(r for r in self.records.get(owner, []) if _rdtype(r) == rdtype)
        canonical = owner if owner != qname else ""
        outcome = DnsOutcome.OK if found else DnsOutcome.NODATA
        return DnsAnswer(qname, rdtype, outcome, found, canonical, owner in self.ad)


@dataclass
class FakeNative:
    hosts: dict[str, list[AddressRecord]] = field(default_factory=dict)
    errors: dict[str, tuple[int, str]] = field(default_factory=dict)
    queries: list[tuple[str, int]] = field(default_factory=list)

    async def getaddrinfo(self, host: str, family: int) -> NativeAnswer:
        self.queries.append((host, family))
        if host in self.errors:
            code, text = self.errors[host]
            return NativeAnswer(host, (), code, text)
        if host not in self.hosts:
            return NativeAnswer(host, (), socket.EAI_NONAME, "Name or service not known")
        found = [r for r in self.hosts[host] if family in (socket.AF_UNSPEC, r.family)]
        return NativeAnswer(host, tuple(found))

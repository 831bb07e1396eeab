"""A loopback DNS server for tests: dnslib in a thread on 127.0.0.1, with test zones.

`serve_zone(zone)` runs a server for a `ZoneResolver` on an ephemeral port and yields the
port; `LoopbackDns` is a running server with a resolver pointed at it (the routing tests'
fixture, tests/routing/conftest.py). `ZoneResolver` behaves like a recursive resolver for its
own zones: it follows CNAMEs inside the zone (except for names in `NO_CHASE`, to exercise
client-side CNAME chasing), answers NXDOMAIN for unknown names and NOERROR/NODATA for known
names without the asked type, SERVFAIL or REFUSED for chosen names, never answers names under
timeout.test, and sets the AD bit for names under signed.test. `TlsZone` adds per-question
SERVFAIL and AD control for the DANE tests. Every resolver built here points at this server
only: no test query ever leaves loopback.

It holds no pytest fixture: the fixtures that start these servers are in the conftest.py
files; the settings that point the client at one are tests/support/settings.py's
`loopback_dns`.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from dnslib import QTYPE, RCODE, RR, DNSError, DNSRecord
from dnslib.server import BaseResolver, DNSLogger, DNSServer

from mailcarrier.routing.resolver import DnspythonResolver, Nameserver, ResolverConfig

ZONE = """
mx-order.test.          300 IN MX 20 mx20.mx-order.test.
mx-order.test.          300 IN MX 10 mx10a.mx-order.test.
mx-order.test.          300 IN MX 10 mx10b.mx-order.test.
mx10a.mx-order.test.    300 IN A 192.0.2.11
mx10b.mx-order.test.    300 IN A 192.0.2.12
mx20.mx-order.test.     300 IN A 192.0.2.20

implicit.test.          300 IN A 192.0.2.30
implicit.test.          300 IN AAAA 2001:db8::30
nodata.test.            300 IN TXT "exists but has no MX and no address"

nullmx.test.            300 IN MX 0 .

cname.test.             300 IN MX 10 alias.cname.test.
alias.cname.test.       300 IN CNAME real.cname.test.
real.cname.test.        300 IN A 192.0.2.40
dangling.test.          300 IN MX 10 mx.dangling.test.
mx.dangling.test.       300 IN CNAME target.elsewhere.test.
target.elsewhere.test.  300 IN A 192.0.2.41

dual.test.              300 IN MX 10 mx.dual.test.
mx.dual.test.           300 IN A 192.0.2.50
mx.dual.test.           300 IN AAAA 2001:db8::50

many.test.              300 IN MX 10 mx.many.test.
mx.many.test.           300 IN A 192.0.2.61
mx.many.test.           300 IN A 192.0.2.62
mx.many.test.           300 IN A 192.0.2.63
mx.many.test.           300 IN A 192.0.2.64
mx.many.test.           300 IN A 192.0.2.65
mx.many.test.           300 IN A 192.0.2.66
mx.many.test.           300 IN A 192.0.2.67
mx.many.test.           300 IN A 192.0.2.68

mixed.test.             300 IN MX 10 v6.mixed.test.
mixed.test.             300 IN MX 20 v4.mixed.test.
v6.mixed.test.          300 IN AAAA 2001:db8::61
v6.mixed.test.          300 IN AAAA 2001:db8::62
v6.mixed.test.          300 IN AAAA 2001:db8::63
v6.mixed.test.          300 IN AAAA 2001:db8::64
v6.mixed.test.          300 IN AAAA 2001:db8::65
v6.mixed.test.          300 IN AAAA 2001:db8::66
v4.mixed.test.          300 IN A 192.0.2.71
v4.mixed.test.          300 IN A 192.0.2.72
v4.mixed.test.          300 IN A 192.0.2.73

noaddr.test.            300 IN MX 10 missing.noaddr.test.
partial.test.           300 IN MX 10 missing.partial.test.
partial.test.           300 IN MX 20 mx.partial.test.
mx.partial.test.        300 IN A 192.0.2.80
softmx.test.            300 IN MX 10 mx.servfail.test.

self-primary.test.      300 IN MX 10 me.self.test.
self-primary.test.      300 IN MX 20 other.self.test.
self-backup.test.       300 IN MX 10 other.self.test.
self-backup.test.       300 IN MX 20 me.self.test.
self-noprimary.test.    300 IN MX 5 missing.self.test.
self-noprimary.test.    300 IN MX 10 me.self.test.
me.self.test.           300 IN A 127.0.0.1
other.self.test.        300 IN A 192.0.2.81

_submission._tcp.srv.test. 300 IN SRV 0 60 587 a.srv.test.
_submission._tcp.srv.test. 300 IN SRV 0 40 587 b.srv.test.
_submission._tcp.srv.test. 300 IN SRV 10 0 2525 c.srv.test.
a.srv.test.             300 IN A 192.0.2.91
b.srv.test.             300 IN A 192.0.2.92
c.srv.test.             300 IN A 192.0.2.93
_submission._tcp.nullsrv.test. 300 IN SRV 0 0 0 .
nosrv.test.             300 IN MX 10 mx.nosrv.test.
mx.nosrv.test.          300 IN A 192.0.2.95

signed.test.            300 IN MX 10 mx.signed.test.
mx.signed.test.         300 IN A 192.0.2.100
"""

SERVFAIL = frozenset({"servfail.test.", "mx.servfail.test."})
REFUSED = frozenset({"refused.test."})
NO_CHASE = frozenset({"mx.dangling.test."})
TIMEOUT_SUFFIX = "timeout.test."
SIGNED_SUFFIX = "signed.test."


@dataclass
class ZoneResolver(BaseResolver):  # type: ignore[misc]
    records: list[RR] = field(default_factory=lambda: RR.fromZone(ZONE))
    queries: list[tuple[str, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def _find(self, name: str, qtype: str) -> list[RR]:
        return [
            rr for rr in self.records if str(rr.rname).lower() == name and QTYPE[rr.rtype] == qtype
        ]

    def _exists(self, name: str) -> bool:
        return any(str(rr.rname).lower() == name for rr in self.records)

    def resolve(self, request: DNSRecord, handler: object) -> DNSRecord:
        qname = str(request.q.qname).lower()
        qtype = QTYPE[request.q.qtype]
        with self.lock:
            self.queries.append((qname, qtype))
        if qname.endswith(TIMEOUT_SUFFIX):
            raise DNSError("black hole: never answer")  # dnslib drops the request
        reply = request.reply()
        reply.header.ra = 1
        if qname in SERVFAIL:
            reply.header.rcode = RCODE.SERVFAIL
            return reply
        if qname in REFUSED:
            reply.header.rcode = RCODE.REFUSED
            return reply
        # request.reply() copies the query's flag bits; only signed names get AD.
        reply.header.ad = 1 if qname.endswith(SIGNED_SUFFIX) else 0
        name = qname
        for _ in range(8):
            found = self._find(name, qtype)
            if found:
                for rr in found:
                    reply.add_answer(rr)
                return reply
            cnames = self._find(name, "CNAME")
            if not cnames:
                break
            reply.add_answer(cnames[0])
            if name in NO_CHASE:
                return reply
            name = str(cnames[0].rdata.label).lower()
        if not self._exists(name) and not reply.rr:
            reply.header.rcode = RCODE.NXDOMAIN
        return reply


@dataclass
class LoopbackDns:
    port: int
    zone: ZoneResolver

    def resolver(self, *, timeout: float = 2.0, dnssec: bool = False) -> DnspythonResolver:
        nameserver = Nameserver("127.0.0.1", self.port)
        return DnspythonResolver(ResolverConfig((nameserver,), timeout, dnssec))

    @property
    def queries(self) -> list[tuple[str, str]]:
        with self.zone.lock:
            return list(self.zone.queries)


class TlsZone(ZoneResolver):
    """The routing test zone plus names that answer SERVFAIL for TLSA questions, and
    per-question control of the AD bit: names under signed.test get it unless the
    (qname, qtype) pair is in `insecure`; pairs in `secure` get it wherever they are."""

    servfail: tuple[str, ...] = ()
    insecure: frozenset[tuple[str, str]] = frozenset()
    secure: frozenset[tuple[str, str]] = frozenset()

    def resolve(self, request, handler):  # type: ignore[no-untyped-def]
        qname = str(request.q.qname).lower()
        if qname in self.servfail:
            reply = request.reply()
            reply.header.rcode = 2
            return reply
        reply = super().resolve(request, handler)
        question = (qname, QTYPE[request.q.qtype])
        if question in self.insecure:
            reply.header.ad = 0
        elif question in self.secure:
            reply.header.ad = 1
        return reply

    def tlsa_queries(self) -> list[str]:
        with self.lock:
            return [name for name, qtype in self.queries if qtype == "TLSA"]


@contextmanager
def serve_zone(zone: ZoneResolver) -> Iterator[int]:
    """Serve `zone` on 127.0.0.1 at an ephemeral port (yielded) until the block ends."""
    logger = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
    server = DNSServer(zone, port=0, address="127.0.0.1", logger=logger)
    server.start_thread()
    try:
        yield int(server.server.server_address[1])
    finally:
        server.stop()
        server.server.server_close()

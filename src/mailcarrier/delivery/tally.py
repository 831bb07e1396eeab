"""What the delivery agent counts for the metrics: connections, TLS, DANE, MTA-STS, DNS, fleet.

`Tally` is a counter of events (a name and its labels, status.py's `Counts`) that one agent
keeps for all its deliveries; `DeliveryAgent.deliver()` hands what was counted since its
previous result over with each `DeliveryResult` (`drain()`), so the queue manager, which
sums them (observe/ turns them into Prometheus metrics), counts in one place whether the
agent runs in its process or in agent processes (queue/workers.py). `CountingResolver`
counts every DNS question of the agent's resolvers, `CountingNativeLookup` every
getaddrinfo() of ``smtp_host_lookup = native`` (type ``native``). The event names and labels are the
functions below; nothing here decides anything about a delivery, and nothing does I/O.
"""

from __future__ import annotations

import socket
from collections import Counter
from typing import Final

from mailcarrier.routing.resolver import DnsAnswer, NativeAnswer, NativeLookup, Resolver
from mailcarrier.status import Counts

__all__ = ["CountingNativeLookup", "CountingResolver", "Tally"]

# getaddrinfo() errors in the outcomes of DNS answers (routing/resolver.py's DnsOutcome).
_NATIVE_OUTCOMES: Final = {
    socket.EAI_NONAME: "nxdomain",
    getattr(socket, "EAI_NODATA", socket.EAI_NONAME): "nxdomain",
    socket.EAI_AGAIN: "servfail",
}


class Tally:
    """Counts of one agent, drained into each result."""

    __slots__ = ("_counts",)

    def __init__(self) -> None:
        self._counts: Counter[tuple[str, ...]] = Counter()

    def add(self, *key: str, count: int = 1) -> None:
        self._counts[key] += count

    def connection(self, kind: str) -> None:
        """``opened`` (a new connection) or ``reused`` (a cached session took a message)."""
        self._counts["connection", kind] += 1  # add(), without its call: once a message

    def tls(self, level: str, result: str) -> None:
        """A TLS policy applied to a session: its level, and ``verified``, ``trusted``,
        ``untrusted``, ``anonymous`` (a session), ``plaintext``, ``failed`` or
        ``retry_plaintext``."""
        self.add("tls", level, result)

    def dane(self, result: str) -> None:
        """A server under a DANE level: ``verified``, ``no_usable_tlsa`` (went on without
        matching, as RFC 7672 allows), ``failed``."""
        self.add("dane", result)

    def mta_sts(self, mode: str, result: str) -> None:
        """A server under an MTA-STS policy (``enforce`` or ``testing``): ``pass`` or
        ``fail``."""
        self.add("mta_sts", mode, result)

    def fleet(self, kind: str, result: str) -> None:
        """Fleet mode: a ``lease`` or ``rate`` request ``denied`` (at the fleet limit), a
        ``lease`` refused as ``dead`` (another node found the destination down), or
        ``server`` ``error`` (a request the shared state server did not answer)."""
        self.add("fleet", kind, result)

    def drain(self) -> Counts:
        """What was counted since the previous drain, and start again from zero."""
        if not self._counts:
            return ()
        counts = tuple(sorted(self._counts.items()))
        self._counts.clear()
        return counts


class CountingResolver:
    """A `Resolver` that counts each question in a `Tally`: ``("dns", type, outcome)``."""

    __slots__ = ("inner", "tally")

    def __init__(self, inner: Resolver, tally: Tally) -> None:
        self.inner = inner
        self.tally = tally

    async def resolve(self, qname: str, rdtype: str) -> DnsAnswer:
        answer = await self.inner.resolve(qname, rdtype)
        self.tally.add("dns", rdtype, answer.outcome.value)
        return answer


class CountingNativeLookup:
    """A `NativeLookup` that counts each getaddrinfo() in a `Tally`: ``("dns", "native",
    outcome)``, its error as a DNS outcome (EAI_NONAME: nxdomain, EAI_AGAIN: servfail, any
    other: no_recovery)."""

    __slots__ = ("inner", "tally")

    def __init__(self, inner: NativeLookup, tally: Tally) -> None:
        self.inner = inner
        self.tally = tally

    async def getaddrinfo(self, host: str, family: int) -> NativeAnswer:
        answer = await self.inner.getaddrinfo(host, family)
        outcome = "ok" if not answer.error else _NATIVE_OUTCOMES.get(answer.error, "no_recovery")
        self.tally.add("dns", "native", outcome)
        return answer

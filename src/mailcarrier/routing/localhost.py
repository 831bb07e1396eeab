"""RFC 6761 6.3: ``localhost`` and the names under ``.localhost`` are this machine's loopback,
answered here and never asked of a name server.

"Name resolution APIs and libraries SHOULD recognize localhost names as special and SHOULD
always return the IP loopback address for address queries and negative responses for all
other query types. Name resolution APIs SHOULD NOT send queries for localhost names to their
configured caching DNS server(s)." `localhost_answer()` is that answer for one question
(dnslookup.py asks it before the resolver: MX, SRV, A and AAAA alike), and
`loopback_records()` the addresses for the families inet_protocols allows (addrlookup.py
uses it before DNS and before the native lookup, which would otherwise see the names under
.localhost that /etc/hosts does not list). An MX lookup thus finds no MX and falls back to
the implicit MX: the loopback addresses.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable
from typing import Final

from mailcarrier.routing.resolver import AddressRecord, DnsAnswer, DnsOutcome

__all__ = ["is_localhost", "localhost_answer", "loopback_records"]

_LOOPBACK: Final[dict[int, AddressRecord]] = {
    socket.AF_INET: AddressRecord("127.0.0.1", socket.AF_INET),
    socket.AF_INET6: AddressRecord("::1", socket.AF_INET6),
}
_FAMILY_OF_TYPE: Final[dict[str, int]] = {"A": socket.AF_INET, "AAAA": socket.AF_INET6}


def is_localhost(name: str) -> bool:
    """``localhost`` or a name under it, in any case, with or without the final dot."""
    name = name.rstrip(".").lower()
    return name == "localhost" or name.endswith(".localhost")


def loopback_records(families: Iterable[int]) -> tuple[AddressRecord, ...]:
    """127.0.0.1 and ::1, for the address families given (in their order)."""
    return tuple(_LOOPBACK[f] for f in families if f in _LOOPBACK)


def localhost_answer(qname: str, rdtype: str) -> DnsAnswer:
    """The answer to a question about a localhost name: the loopback address of the family
    for A and AAAA, no data for any other type."""
    family = _FAMILY_OF_TYPE.get(rdtype)
    if family is None:
        return DnsAnswer(qname, rdtype, DnsOutcome.NODATA)
    return DnsAnswer(qname, rdtype, DnsOutcome.OK, loopback_records((family,)))

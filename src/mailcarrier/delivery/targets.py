"""From a parsed next hop to the ordered list of servers to try.

Unix sockets and address literals need no lookup; ``[host]`` and LMTP ``inet:host`` are
looked up with the system resolver (getaddrinfo), filtered by `inet_protocols`. The
``domain`` form (MX lookup) is resolved by routing/; this module hands it over. A lookup
that fails is a `Verdict` (NXDOMAIN bounces, temporary failure defers), not an exception.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from dataclasses import dataclass

from mailcarrier.delivery.trouble import Verdict
from mailcarrier.routing.nexthop import NextHop, NextHopKind
from mailcarrier.status import DeliveryStatus
from mailcarrier.transport.connection import Peer

__all__ = ["HostLookup", "families_for", "lookup_host"]


@dataclass(frozen=True, slots=True)
class HostLookup:
    peers: tuple[Peer, ...] = ()
    failure: Verdict | None = None


def families_for(inet_protocols: Sequence[str]) -> tuple[int, ...]:
    """Address families from inet_protocols (ipv4, ipv6, all)."""
    words = {w.lower() for w in inet_protocols}
    if "all" in words or not words:
        return (socket.AF_INET, socket.AF_INET6)
    fams = []
    if "ipv4" in words:
        fams.append(socket.AF_INET)
    if "ipv6" in words:
        fams.append(socket.AF_INET6)
    return tuple(fams)


def _addr_family(address: str) -> int:
    return socket.AF_INET6 if ":" in address else socket.AF_INET


async def lookup_host(
    nexthop: NextHop, *, myhostname: str, families: tuple[int, ...]
) -> HostLookup:
    """Servers for a literal, ``[host]`` or unix next hop (not for the MX form)."""
    if nexthop.kind is NextHopKind.UNIX:
        return HostLookup((Peer(myhostname, nexthop.host, 0, socket.AF_UNIX),))
    if nexthop.kind is NextHopKind.ADDRESS:
        family = _addr_family(nexthop.host)
        return HostLookup((Peer(nexthop.host, nexthop.host, nexthop.port, family),))
    if nexthop.kind is not NextHopKind.HOST:
        raise ValueError("lookup_host() handles literal next hops only")
    loop = asyncio.get_running_loop()
    try:
        infos = await loop.getaddrinfo(
            nexthop.host, nexthop.port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP
        )
    except socket.gaierror as exc:
        return HostLookup(failure=_lookup_failure(nexthop.host, exc))
    peers: list[Peer] = []
    seen: set[str] = set()
    for family, _, _, _, sockaddr in infos:
        address = str(sockaddr[0])
        if family not in families or address in seen:
            continue
        seen.add(address)
        peers.append(Peer(nexthop.host, address, nexthop.port, family))
    if not peers:
        return HostLookup(
            failure=Verdict(
                DeliveryStatus.DEFERRED,
                "4.4.4",
                f"Host or domain name not found. Name service error for name={nexthop.host} "
                "type=A: No address associated with hostname for the enabled inet_protocols",
            )
        )
    return HostLookup(tuple(peers))


def _lookup_failure(host: str, exc: socket.gaierror) -> Verdict:
    permanent = exc.errno in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", -5))
    if permanent:
        return Verdict(
            DeliveryStatus.BOUNCED,
            "5.4.4",
            f"Host or domain name not found. Name service error for name={host} type=A: "
            "Host not found",
        )
    return Verdict(
        DeliveryStatus.DEFERRED,
        "4.4.3",
        f"Host or domain name not found. Name service error for name={host} type=A: "
        "Host not found, try again",
    )

"""From a request's next hop to the servers to try, as Postfix's smtp_connect_inet() does.

The next hop may be a list (relayhost style, separated by commas or white space); for SMTP
the `smtp_fallback_relay` destinations follow it. Each destination is looked up by routing/
(MX for ``domain``, addresses for ``[host]`` and LMTP ``inet:``; none for literals and unix
sockets) and becomes a `ServerList`: peers in order, or a failure `Verdict`. Postfix's rules
for lookup failures live here: a hard failure of a relay (a destination that is not the
recipients' domain) or of a fallback relay is a configuration problem (4.3.5), never a
bounce; a mail loop or "I am an MX host" ends the list (no fallback relays after it).
"""

from __future__ import annotations

import random
import socket
from dataclasses import dataclass

from mailcarrier.config.settings import AgentSettings, Settings
from mailcarrier.delivery.tally import CountingNativeLookup, CountingResolver, Tally
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.errors import UsageError
from mailcarrier.routing.mx import lookup_host_addresses, lookup_mx_hosts
from mailcarrier.routing.nexthop import NextHop, NextHopKind, parse_nexthop, split_destinations
from mailcarrier.routing.options import RoutingOptions
from mailcarrier.routing.resolver import (
    DnspythonResolver,
    NativeLookup,
    Resolver,
    SystemNativeLookup,
)
from mailcarrier.routing.result import LogNote, RouteFailure, RouteResult
from mailcarrier.routing.srv import lookup_srv_hosts, srv_lookup_enabled
from mailcarrier.status import DeliveryStatus
from mailcarrier.transport.connection import Peer

__all__ = ["Destination", "ServerFinder", "ServerList", "destinations"]


@dataclass(frozen=True, slots=True)
class Destination:
    text: str
    fallback: bool  # from smtp_fallback_relay


@dataclass(frozen=True, slots=True)
class ServerList:
    peers: tuple[Peer, ...] = ()
    preferences: tuple[int, ...] = ()  # MX preference of each peer (racing stays within one)
    failure: Verdict | None = None
    # No further destination after this one: a mail loop, or this host is an MX host.
    final: bool = False
    loop: bool = False
    notes: tuple[LogNote, ...] = ()


def destinations(nexthop_text: str, agent: AgentSettings) -> list[Destination]:
    """The request's destinations, then (SMTP only) the fallback relays."""
    out = [Destination(d, False) for d in split_destinations(nexthop_text)]
    if not agent.is_lmtp:
        seen = {d.text.lower() for d in out}
        for relay in agent.settings.params.smtp_fallback_relay:
            if relay.lower() not in seen:
                out.append(Destination(relay, True))
    return out


class ServerFinder:
    """Looks destinations up. Resolver, native lookup and randomness are injectable."""

    def __init__(
        self,
        settings: Settings,
        agent: AgentSettings,
        *,
        resolver: Resolver | None = None,
        native: NativeLookup | None = None,
        rng: random.Random | None = None,
        tally: Tally | None = None,
    ) -> None:
        self.settings = settings
        self.agent = agent
        self.options = RoutingOptions.from_settings(agent)
        self._tally = tally  # every DNS question counted (tally.py), when given
        self._resolver = resolver if resolver is None else self._counted(resolver)
        native = native if native is not None else SystemNativeLookup()
        self.native = native if tally is None else CountingNativeLookup(native, tally)
        self.rng = rng if rng is not None else random.Random()

    @property
    def resolver(self) -> Resolver | None:
        """The DNS resolver, made on first use: literal next hops never need one."""
        if self._resolver is None and self.options.dns_enabled:
            self._resolver = self._counted(DnspythonResolver(self.options.resolver_config()))
        return self._resolver

    def _counted(self, resolver: Resolver) -> Resolver:
        return resolver if self._tally is None else CountingResolver(resolver, self._tally)

    def parse(self, destination: Destination) -> NextHop:
        return parse_nexthop(
            destination.text,
            transport=self.agent.transport,
            lmtp_tcp_port=self.settings.params.lmtp_tcp_port,
        )

    async def find(self, destination: Destination, recipient_domains: frozenset[str]) -> ServerList:
        try:
            nexthop = self.parse(destination)
        except UsageError as exc:
            name = "smtp_fallback_relay" if destination.fallback else "next-hop destination"
            return ServerList(failure=Verdict(DeliveryStatus.DEFERRED, "4.3.5", f"{name}: {exc}"))
        if nexthop.kind is NextHopKind.UNIX:
            myhostname = self.settings.params.myhostname
            return ServerList((Peer(myhostname, nexthop.host, 0, socket.AF_UNIX),))
        route = await self._route(nexthop)
        if isinstance(route, RouteFailure):
            relay_like = destination.fallback or nexthop.host not in recipient_domains
            return self._failure(route, relay_like, destination)
        peers = tuple(
            Peer(
                a.hostname,
                a.address,
                a.port,
                a.family,
                dnssec_valid=a.address_dnssec_valid,
                mx_dnssec_valid=a.mx_dnssec_valid,
            )
            for a in route.addresses
        )
        prefs = tuple(a.preference for a in route.addresses)
        return ServerList(peers, prefs, final=route.i_am_mx, notes=route.notes)

    async def _route(self, nexthop: NextHop) -> RouteResult | RouteFailure:
        srv = nexthop.service and srv_lookup_enabled(
            nexthop.service, self.options, literal=nexthop.bracketed
        )
        resolver = self.resolver if srv else None
        if resolver is not None:
            # Postfix 3.8 use_srv_lookup: _service._tcp.domain (RFC 2782), for LMTP too.
            return await lookup_srv_hosts(
                nexthop.host,
                nexthop.service,
                nexthop.port,
                resolver=resolver,
                options=self.options,
                native=self.native,
                rng=self.rng,
            )
        if nexthop.kind is NextHopKind.DOMAIN and not self.agent.is_lmtp:
            return await lookup_mx_hosts(
                nexthop.host,
                nexthop.port,
                resolver=self.resolver,
                options=self.options,
                native=self.native,
                rng=self.rng,
            )
        if nexthop.kind is NextHopKind.ADDRESS or not self.options.uses_dns_for_hosts:
            # A literal needs no DNS (loop detection still runs); smtp_host_lookup = native
            # resolves hosts with getaddrinfo only.
            resolver = None
        else:
            resolver = self.resolver
        return await lookup_host_addresses(
            nexthop.host,
            nexthop.port,
            resolver=resolver,
            options=self.options,
            native=self.native,
            rng=self.rng,
        )

    def _failure(
        self, route: RouteFailure, relay_like: bool, destination: Destination
    ) -> ServerList:
        status = DeliveryStatus.BOUNCED if route.status == "bounced" else DeliveryStatus.DEFERRED
        verdict = Verdict(status, route.dsn, route.diagnostic)
        notes = route.notes
        if route.is_loop or route.i_am_mx:
            return ServerList(failure=verdict, final=True, loop=route.is_loop, notes=notes)
        if status is DeliveryStatus.BOUNCED and relay_like:
            # Postfix never bounces mail because a relay host cannot be found: that is a
            # configuration problem, to be fixed while the mail waits.
            which = "smtp_fallback_relay" if destination.fallback else "relayhost"
            notes = (*notes, LogNote("warning", f"{which} configuration problem"))
            verdict = Verdict(DeliveryStatus.DEFERRED, "4.3.5", route.diagnostic)
        return ServerList(failure=verdict, notes=notes)

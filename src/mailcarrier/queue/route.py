"""Recipient -> (transport, next hop), as Postfix's trivial-rewrite resolves it for qmgr.

Precedence (Postfix's resolve.c): first the address class gives a transport: a domain in
`relay_domains` (and not in `mydestination`, which mailcarrier delivers like any other
domain) takes `relay_transport`; any other domain takes the
`sender_dependent_default_transport_maps` entry for the envelope sender (``user@domain``,
then ``@domain``; the null sender as `empty_address_default_transport_maps_lookup_key`;
``DUNNO`` means none), else `default_transport`. The next hop is the
`sender_dependent_relayhost_maps` entry for the sender (same keys, with
`empty_address_relayhost_maps_lookup_key`), else `relayhost`, else the recipient's domain; a
``transport:nexthop`` value of the class's transport overrides it. Last, a `transport_maps`
entry for the recipient (``user@domain``, then ``domain``, then parent domains ``.domain``,
then ``*``) overrides transport and next hop; an empty next hop in a table entry keeps the one
found before, an empty transport keeps the transport.

Transport names: ``smtp`` and ``relay`` run the SMTP client and ``lmtp`` the LMTP client;
a name master.cf defines as an smtp or lmtp service (config/mastercf.py) runs that client
with the service's settings (`Route.service`); ``error:text`` bounces and ``retry:text``
defers, as Postfix's error(8) does. `default_transport` or `relay_transport` naming any
other transport stops the program at start (one line, with a "did you mean"); a table entry
naming one defers its recipients with "mail transport unavailable", as Postfix's qmgr does
when a transport has no service. A table that cannot answer now defers the recipient with
``4.3.0 address resolver failure`` (Postfix's qmgr, on trivial-rewrite's RESOLVE_FLAG_FAIL).
With network tables (pgsql:, ...) the scheduler asks `prefetch()` first, on the event loop
without blocking it, and hands its answers to `route()`; the lookup is injectable. A Router
with no table to ask routes by domain alone and keeps each domain's route.
"""

from __future__ import annotations

import difflib
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import partial
from typing import Final

from mailcarrier.config.mastercf import MasterService
from mailcarrier.config.settings import Settings
from mailcarrier.config.views import MapsName
from mailcarrier.errors import ConfigError
from mailcarrier.queue.params import QueueParams
from mailcarrier.status import fast_init
from mailcarrier.tables import TableError
from mailcarrier.tables.domainlist import DomainList
from mailcarrier.tables.maps import Maps
from mailcarrier.tables.registry import open_table

__all__ = ["RESOLVER_FAILURE", "Route", "RouteAnswers", "Router", "TransportLookup"]

TransportLookup = Callable[[str], "str | None"]
AsyncLookup = Callable[[str], Awaitable["str | None"]]
# What `prefetch` found per recipient address (and per sender table, under the keys below):
# the table entry (None: none), or the error.
RouteAnswers = dict[str, "str | TableError | None"]
RESOLVER_FAILURE: Final = "4.3.0 address resolver failure"
# The transports every configuration has, and the client each runs.
BUILTIN_AGENTS: Final = {"smtp": "smtp", "relay": "smtp", "lmtp": "lmtp"}
_LOCAL: Final = ("error", "retry")
# `prefetch` answers of the sender tables (no address contains a NUL).
_SENDER_TRANSPORT: Final = "\0sender_dependent_default_transport_maps"
_SENDER_RELAY: Final = "\0sender_dependent_relayhost_maps"
_ROUTES_KEPT: Final = 4096  # domains whose route a Router without tables keeps


@fast_init
@dataclass(frozen=True, slots=True)
class Route:
    transport: str  # smtp | lmtp | error | retry | unavailable
    nexthop: str
    # The master.cf service whose settings deliver it ("": main.cf's).
    service: str = ""

    @property
    def deliverable(self) -> bool:
        return self.transport in ("smtp", "lmtp")

    @property
    def name(self) -> str:
        """The transport name the queue groups and limits by (Postfix's qmgr transport)."""
        return self.service or self.transport


def _split(value: str) -> tuple[str, str]:
    transport, sep, nexthop = value.strip().partition(":")
    if not sep:
        return transport, ""
    return transport, nexthop


def did_you_mean(name: str, known: Iterable[str]) -> str:
    """`` (did you mean "mysmtp"?)`` for a close known transport name, else ""."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return f' (did you mean "{close[0]}"?)' if close else ""


class Router:
    def __init__(self, settings: Settings, lookup: TransportLookup | None = None) -> None:
        params = QueueParams(settings)
        main = params.main
        self._services: Mapping[str, MasterService] = settings.services
        self._async: AsyncLookup | None = None
        self._lookup = lookup if lookup is not None else self._maps_lookup(settings)
        # The agent takes a list as the next hop and tries each destination in order
        # (Postfix 3.5+ relayhost lists), so the whole list goes into the request.
        self._relayhost = ", ".join(main.relayhost)
        self._default = _split(self._checked(settings, "default_transport", "smtp"))
        self._relay = _split(self._checked(settings, "relay_transport", "relay"))
        self._parent_matches = "transport_maps" in main.parent_domain_matches_subdomains
        opener = partial(open_table, base_dir=settings.config_dir)
        parents = main.parent_domain_matches_subdomains
        self._relay_domains = DomainList.parse(
            ", ".join(main.relay_domains), parent_style="relay_domains" in parents, opener=opener
        )
        self._local_domains = DomainList.parse(
            ", ".join(main.mydestination), parent_style="mydestination" in parents, opener=opener
        )
        self._delimiter = main.recipient_delimiter
        self._sender_transport = self._sender_maps(
            settings, "sender_dependent_default_transport_maps"
        )
        self._sender_relay = self._sender_maps(settings, "sender_dependent_relayhost_maps")
        self._empty_keys = (
            main.empty_address_default_transport_maps_lookup_key,
            main.empty_address_relayhost_maps_lookup_key,
        )
        # Without a table to ask (transport maps, sender-dependent maps, tables in the
        # domain lists), the route of an address depends on its domain alone: each domain's
        # is kept (`route`), at most _ROUTES_KEPT of them.
        static = (
            self._lookup is None
            and self._sender_transport is None
            and self._sender_relay is None
            and all(e.table is None for e in self._relay_domains.entries)
            and all(e.table is None for e in self._local_domains.entries)
        )
        self._by_domain: dict[str, Route] | None = {} if static else None
        # Whether a lookup waits on a server: then ask `prefetch` before `route` (the
        # scheduler asks for every message: decided once).
        self.network: bool = self._async is not None or any(
            m is not None and m.network for m in (self._sender_transport, self._sender_relay)
        )

    # --- set-up -----------------------------------------------------------------------
    def known(self) -> list[str]:
        return [*BUILTIN_AGENTS, *_LOCAL, *self._services]

    def hint(self, name: str) -> str:
        """A "did you mean" for a transport name nothing defines, or ""."""
        return did_you_mean(name, self.known())

    def _checked(self, settings: Settings, parameter: str, fallback: str) -> str:
        """A main.cf transport setting; a transport nothing defines is a configuration error."""
        value = settings.expanded(parameter).strip() or fallback
        name = _split(value)[0]
        if name in BUILTIN_AGENTS or name in _LOCAL or name in self._services:
            return value
        source = settings.source(parameter)
        where = settings.master.filename if settings.master is not None else "master.cf"
        raise ConfigError(
            f'parameter {parameter}: unknown mail transport "{name}": not a built-in '
            f"transport (smtp, relay, lmtp, error, retry) nor an smtp or lmtp service of "
            f"{where}{self.hint(name)}",
            parameter=parameter,
            value=value,
            filename=source.filename if source else "",
            lineno=source.lineno if source else 0,
        )

    def _maps_lookup(self, settings: Settings) -> TransportLookup | None:
        if not settings.params.transport_maps:
            return None
        maps = settings.open_maps("transport_maps")

        def lookup(key: str) -> str | None:
            found = maps.find(key)
            return None if found is None else found.value

        async def lookup_async(key: str) -> str | None:
            found = await maps.find_async(key)
            return None if found is None else found.value

        if maps.network:
            self._async = lookup_async
        return lookup

    @staticmethod
    def _sender_maps(settings: Settings, name: MapsName) -> Maps | None:
        return settings.open_maps(name) if settings.get_list(name) else None

    # --- lookups ----------------------------------------------------------------------
    def _keys(self, address: str) -> list[str]:
        domain = address.rpartition("@")[2].lower()
        keys = [address.lower()]
        if domain:
            keys.append(domain)
            labels = domain.split(".")
            for i in range(1, len(labels)):
                parent = ".".join(labels[i:])
                keys.append(parent if self._parent_matches else "." + parent)
        keys.append("*")
        return keys

    def _table(self, address: str) -> str | None:
        if self._lookup is None:
            return None
        for key in self._keys(address):
            value = self._lookup(key)
            if value is not None:
                return value
        return None

    def _sender_key(self, sender: str, which: int) -> str:
        return sender or self._empty_keys[which]

    def _sender_entry(self, maps: Maps | None, sender: str, which: int) -> str | None:
        if maps is None:
            return None
        key = self._sender_key(sender, which)
        found = maps.find_address(key, recipient_delimiter=self._delimiter)
        return None if found is None else found.value

    async def prefetch(self, addresses: Iterable[str], sender: str = "") -> RouteAnswers:
        """The table entries for `addresses` (and for `sender`), asked on the event loop
        (network tables)."""
        answers: RouteAnswers = {}
        for maps, which, slot in (
            (self._sender_transport, 0, _SENDER_TRANSPORT),
            (self._sender_relay, 1, _SENDER_RELAY),
        ):
            if maps is not None and maps.network:
                key = self._sender_key(sender, which)
                try:
                    found = await maps.find_address_async(key, recipient_delimiter=self._delimiter)
                    answers[slot] = None if found is None else found.value
                except TableError as exc:
                    answers[slot] = exc
        lookup = self._async
        if lookup is None:
            return answers
        for address in addresses:
            if address in answers:
                continue
            try:
                for key in self._keys(address):
                    value = await lookup(key)
                    if value is not None:
                        break
                answers[address] = value
            except TableError as exc:
                answers[address] = exc
        return answers

    @staticmethod
    def _known(answers: RouteAnswers | None, key: str) -> tuple[bool, str | None]:
        """(True, entry) when `prefetch` answered `key`; a lookup error is raised again."""
        if answers is None or key not in answers:
            return False, None
        known = answers[key]
        if isinstance(known, TableError):
            raise known
        return True, known

    # --- the route --------------------------------------------------------------------
    def _class_transport(self, domain: str, sender: str, answers: RouteAnswers | None) -> str:
        """relay_transport, the sender's default transport, or default_transport."""
        if self._relay_domains.match(domain) and not self._local_domains.match(domain):
            return ":".join(self._relay) if self._relay[1] else self._relay[0]
        asked, entry = self._known(answers, _SENDER_TRANSPORT)
        if not asked:
            entry = self._sender_entry(self._sender_transport, sender, 0)
        if entry is not None and entry.strip() and entry.strip().upper() != "DUNNO":
            return entry.strip()
        return ":".join(self._default) if self._default[1] else self._default[0]

    def _relay_nexthop(self, domain: str, sender: str, answers: RouteAnswers | None) -> str:
        asked, entry = self._known(answers, _SENDER_RELAY)
        if not asked:
            entry = self._sender_entry(self._sender_relay, sender, 1)
        if entry is not None and entry.strip() and entry.strip().upper() != "DUNNO":
            return entry.strip()
        return self._relayhost or domain

    def route(self, address: str, answers: RouteAnswers | None = None, sender: str = "") -> Route:
        domain = address.rpartition("@")[2]
        by_domain = self._by_domain
        if by_domain is None:
            return self._route(address, domain, answers, sender)
        route = by_domain.get(domain)
        if route is None:
            route = self._route(address, domain, answers, sender)
            if len(by_domain) >= _ROUTES_KEPT:
                by_domain.clear()
            by_domain[domain] = route
        return route

    def _route(self, address: str, domain: str, answers: RouteAnswers | None, sender: str) -> Route:
        """`route`, asking every list and table."""
        try:
            transport, class_nexthop = _split(self._class_transport(domain, sender, answers))
            nexthop = class_nexthop or self._relay_nexthop(domain, sender, answers)
            asked, entry = self._known(answers, address)
            if not asked:
                entry = self._table(address)
        except TableError:
            return Route("retry", RESOLVER_FAILURE)
        if entry is not None:
            table_transport, table_nexthop = _split(entry)
            transport = table_transport or transport
            nexthop = table_nexthop or nexthop
        if transport in _LOCAL:
            return Route(transport, nexthop if entry is not None else "")
        service = self._services.get(transport)
        if service is not None:
            return Route(service.kind, nexthop, transport)
        agent = BUILTIN_AGENTS.get(transport)
        if agent is None:
            return Route("unavailable", transport)
        return Route(agent, nexthop)

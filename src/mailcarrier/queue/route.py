"""Recipient -> (transport, next hop), as Postfix's trivial-rewrite resolves it for qmgr.

Precedence (Postfix's): a `transport_maps` entry for the recipient (``user@domain``, then
``domain``, then parent domains ``.domain``, then ``*``); else `default_transport`, whose
optional ``:nexthop`` overrides `relayhost`; else the recipient's domain. An empty next hop
in a table entry keeps the default next hop; an empty transport keeps the default transport.
Transports ``smtp`` and ``relay`` run the SMTP client and ``lmtp`` the LMTP client;
``error:text`` bounces and ``retry:text`` defers, as Postfix's error(8) does; any other
transport name defers with "mail transport unavailable". A table that cannot answer now
defers the recipient with ``4.3.0 address resolver failure`` (Postfix's qmgr, on
trivial-rewrite's RESOLVE_FLAG_FAIL). With network tables (pgsql:, ...) the scheduler asks
`prefetch()` first, on the event loop without blocking it, and hands its answers to
`route()`; the lookup is injectable.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final

from mailcarrier.config.settings import Settings
from mailcarrier.queue.params import QueueParams
from mailcarrier.tables import TableError

__all__ = ["RESOLVER_FAILURE", "Route", "RouteAnswers", "Router", "TransportLookup"]

TransportLookup = Callable[[str], "str | None"]
AsyncLookup = Callable[[str], Awaitable["str | None"]]
# What `prefetch` found per recipient address: the table entry (None: none), or the error.
RouteAnswers = dict[str, "str | TableError | None"]
RESOLVER_FAILURE: Final = "4.3.0 address resolver failure"
_AGENTS: Final = {"smtp": "smtp", "relay": "smtp", "lmtp": "lmtp"}


@dataclass(frozen=True, slots=True)
class Route:
    transport: str  # smtp | lmtp | error | retry | unavailable
    nexthop: str

    @property
    def deliverable(self) -> bool:
        return self.transport in ("smtp", "lmtp")


def _split(value: str) -> tuple[str, str]:
    transport, sep, nexthop = value.strip().partition(":")
    if not sep:
        return transport, ""
    return transport, nexthop


class Router:
    def __init__(self, settings: Settings, lookup: TransportLookup | None = None) -> None:
        params = QueueParams(settings)
        self._async: AsyncLookup | None = None
        self._lookup = lookup if lookup is not None else self._maps_lookup(settings)
        relayhost = params.main.relayhost
        # The agent takes a list as the next hop and tries each destination in order
        # (Postfix 3.5+ relayhost lists), so the whole list goes into the request.
        self._relayhost = ", ".join(relayhost)
        self._default = _split(params.main.default_transport or "smtp")
        parents = params.main.parent_domain_matches_subdomains
        self._parent_matches = "transport_maps" in parents

    @property
    def network(self) -> bool:
        """Whether a lookup waits on a server: then ask `prefetch` before `route`."""
        return self._async is not None

    def _maps_lookup(self, settings: Settings) -> TransportLookup | None:
        try:
            if not settings.params.transport_maps:
                return None
        except KeyError:
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

    async def prefetch(self, addresses: Iterable[str]) -> RouteAnswers:
        """The table entries for `addresses`, asked on the event loop (network tables)."""
        answers: RouteAnswers = {}
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

    def route(self, address: str, answers: RouteAnswers | None = None) -> Route:
        default_transport, default_nexthop = self._default
        domain = address.rpartition("@")[2]
        nexthop = default_nexthop or self._relayhost or domain
        transport = default_transport
        try:
            if answers is not None and address in answers:
                known = answers[address]
                if isinstance(known, TableError):
                    raise known
                entry = known
            else:
                entry = self._table(address)
        except TableError:
            return Route("retry", RESOLVER_FAILURE)
        if entry is not None:
            table_transport, table_nexthop = _split(entry)
            transport = table_transport or transport
            nexthop = table_nexthop or nexthop
        if transport in ("error", "retry"):
            return Route(transport, nexthop if entry is not None else "")
        agent = _AGENTS.get(transport)
        if agent is None:
            return Route("unavailable", transport)
        return Route(agent, nexthop)

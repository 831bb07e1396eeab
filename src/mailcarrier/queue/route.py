"""Recipient -> (transport, next hop), as Postfix's trivial-rewrite resolves it for qmgr.

Precedence (Postfix's): a `transport_maps` entry for the recipient (``user@domain``, then
``domain``, then parent domains ``.domain``, then ``*``); else `default_transport`, whose
optional ``:nexthop`` overrides `relayhost`; else the recipient's domain. An empty next hop
in a table entry keeps the default next hop; an empty transport keeps the default transport.
Transports ``smtp`` and ``relay`` run the SMTP client and ``lmtp`` the LMTP client;
``error:text`` bounces and ``retry:text`` defers, as Postfix's error(8) does; any other
transport name defers with "mail transport unavailable". The lookup is injectable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from mailcarrier.config.settings import Settings
from mailcarrier.queue.params import QueueParams

__all__ = ["Route", "Router", "TransportLookup"]

TransportLookup = Callable[[str], "str | None"]
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
        self._lookup = lookup if lookup is not None else self._maps_lookup(settings)
        relayhost = params.main.relayhost
        # The agent takes a list as the next hop and tries each destination in order
        # (Postfix 3.5+ relayhost lists), so the whole list goes into the request.
        self._relayhost = ", ".join(relayhost)
        self._default = _split(params.main.default_transport or "smtp")
        parents = params.main.parent_domain_matches_subdomains
        self._parent_matches = "transport_maps" in parents

    @staticmethod
    def _maps_lookup(settings: Settings) -> TransportLookup | None:
        try:
            if not settings.params.transport_maps:
                return None
        except KeyError:
            return None
        maps = settings.open_maps("transport_maps")

        def lookup(key: str) -> str | None:
            found = maps.find(key)
            return None if found is None else found.value

        return lookup

    def _table(self, address: str) -> str | None:
        if self._lookup is None:
            return None
        domain = address.rpartition("@")[2].lower()
        keys = [address.lower()]
        if domain:
            keys.append(domain)
            labels = domain.split(".")
            for i in range(1, len(labels)):
                parent = ".".join(labels[i:])
                keys.append(parent if self._parent_matches else "." + parent)
        keys.append("*")
        for key in keys:
            value = self._lookup(key)
            if value is not None:
                return value
        return None

    def route(self, address: str) -> Route:
        default_transport, default_nexthop = self._default
        domain = address.rpartition("@")[2]
        nexthop = default_nexthop or self._relayhost or domain
        transport = default_transport
        entry = self._table(address)
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

"""The routing settings, parsed once: `RoutingOptions` and how to read them from main.cf.

`RoutingOptions` holds every parameter the DNS half of routing reads, already converted
(address families, lookup methods, DNS support level, this host's own addresses).
`RoutingOptions.from_settings(agent)` reads them from a `config.AgentSettings`, with the
smtp_/lmtp_ mirrors resolved by the agent view; tests construct the dataclass directly.
`resolver_config()` gives the `ResolverConfig` for `resolver.DnspythonResolver`. The
own-address discovery behind ``inet_interfaces = all`` is in `selfaddr.py`.
"""

from __future__ import annotations

import enum
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from mailcarrier.errors import ConfigError
from mailcarrier.routing.resolver import ResolverConfig, parse_nameserver
from mailcarrier.routing.selfaddr import OwnAddresses, own_addresses

if TYPE_CHECKING:
    from mailcarrier.config.settings import AgentSettings

__all__ = ["AddressPreference", "DnsSupport", "RoutingOptions", "parse_inet_protocols"]


class DnsSupport(enum.Enum):
    """smtp_dns_support_level (with the pre-2.11 disable_dns_lookups as its fallback)."""

    DISABLED = "disabled"
    ENABLED = "enabled"
    DNSSEC = "dnssec"


class AddressPreference(enum.Enum):
    """smtp_address_preference: which family goes first among equal-preference addresses."""

    ANY = "any"
    IPV4 = "ipv4"
    IPV6 = "ipv6"


_FAMILY_NAMES: Final = {"ipv4": socket.AF_INET, "ipv6": socket.AF_INET6}


def parse_inet_protocols(items: Iterable[str]) -> tuple[int, ...]:
    """inet_protocols as address families in Postfix's order (IPv4 first, as its
    inet_proto_init() lists them): ``all`` is both."""
    wanted: set[int] = set()
    for item in items:
        low = item.lower()
        if low == "all":
            wanted.update(_FAMILY_NAMES.values())
        elif low in _FAMILY_NAMES:
            wanted.add(_FAMILY_NAMES[low])
        else:
            raise ConfigError(
                f'inet_protocols: unknown protocol "{item}" (want ipv4, ipv6 or all)',
                parameter="inet_protocols",
                value=item,
            )
    return tuple(f for f in (socket.AF_INET, socket.AF_INET6) if f in wanted)


@dataclass(frozen=True, slots=True)
class RoutingOptions:
    """Everything the lookups need; the defaults are Postfix 3.x's."""

    smtp_mode: bool = True  # False for LMTP: no MX lookup, no loop detection
    randomize_addresses: bool = True  # smtp_randomize_addresses
    mx_address_limit: int = 5  # smtp_mx_address_limit (0: no limit)
    ignore_mx_lookup_error: bool = False
    defer_if_no_mx_address_found: bool = False  # smtp_defer_if_no_mx_address_found
    cname_overrides_servername: bool = False  # smtp_cname_overrides_servername
    host_lookup_dns: bool = True  # smtp_host_lookup contains "dns"
    host_lookup_native: bool = False  # smtp_host_lookup contains "native"
    dns_support: DnsSupport = DnsSupport.ENABLED
    inet_protocols: tuple[int, ...] = (socket.AF_INET, socket.AF_INET6)
    address_preference: AddressPreference = AddressPreference.ANY
    balance_inet_protocols: bool = True  # smtp_balance_inet_protocols
    own: OwnAddresses = field(default_factory=OwnAddresses)  # inet_interfaces + proxy_interfaces
    best_mx_transport: str = ""
    use_srv_lookup: tuple[str, ...] = ()  # service names, e.g. ("submission", "lmtp")
    allow_srv_lookup_fallback: bool = False
    ignore_srv_lookup_error: bool = False
    dns_nameservers: tuple[str, ...] = ()  # empty: /etc/resolv.conf
    dns_timeout: float = 10.0

    @property
    def dns_enabled(self) -> bool:
        return self.dns_support is not DnsSupport.DISABLED

    @property
    def uses_dns_for_hosts(self) -> bool:
        """Postfix: with DNS disabled, host lookups are native whatever smtp_host_lookup says."""
        return self.dns_enabled and self.host_lookup_dns

    @property
    def uses_native_for_hosts(self) -> bool:
        return not self.dns_enabled or self.host_lookup_native

    def resolver_config(self) -> ResolverConfig:
        nameservers = tuple(parse_nameserver(spec) for spec in self.dns_nameservers)
        return ResolverConfig(
            nameservers, self.dns_timeout, dnssec=self.dns_support is DnsSupport.DNSSEC
        )

    @classmethod
    def from_settings(
        cls,
        agent: AgentSettings,
        *,
        interface_addresses: Callable[[], Iterable[str]] | None = None,
        resolve_host: Callable[[str], Iterable[str]] | None = None,
    ) -> RoutingOptions:
        """Read the routing parameters. `interface_addresses` and `resolve_host` replace the
        system calls used to expand ``inet_interfaces = all`` and host names in
        inet_interfaces/proxy_interfaces (tests inject them)."""
        settings = agent.settings
        support = _dns_support(agent)
        methods = _host_lookup(agent)
        preference = _address_preference(agent)
        families = parse_inet_protocols(settings.params.inet_protocols)
        own = own_addresses(
            settings.params.inet_interfaces,
            settings.params.proxy_interfaces,
            families,
            interface_addresses=interface_addresses,
            resolve_host=resolve_host,
        )
        options = cls(
            smtp_mode=not agent.is_lmtp,
            randomize_addresses=agent.params.randomize_addresses,
            mx_address_limit=agent.params.mx_address_limit,
            ignore_mx_lookup_error=settings.params.ignore_mx_lookup_error,
            defer_if_no_mx_address_found=agent.params.defer_if_no_mx_address_found,
            cname_overrides_servername=agent.params.cname_overrides_servername,
            host_lookup_dns="dns" in methods,
            host_lookup_native="native" in methods,
            dns_support=support,
            inet_protocols=families,
            address_preference=preference,
            balance_inet_protocols=agent.params.balance_inet_protocols,
            own=own,
            best_mx_transport=settings.params.best_mx_transport.strip(),
            use_srv_lookup=tuple(s.lower() for s in settings.params.use_srv_lookup),
            allow_srv_lookup_fallback=settings.params.allow_srv_lookup_fallback,
            ignore_srv_lookup_error=settings.params.ignore_srv_lookup_error,
            dns_nameservers=settings.params.dns_nameservers,
            dns_timeout=settings.params.dns_timeout,
        )
        options.resolver_config()  # validate dns_nameservers now, naming the parameter
        return options


def _dns_support(agent: AgentSettings) -> DnsSupport:
    """smtp_dns_support_level; empty (the compatible default): disable_dns_lookups decides."""
    level = agent.params.dns_support_level.strip().lower()
    if not level:
        disabled = agent.settings.params.disable_dns_lookups
        return DnsSupport.DISABLED if disabled else DnsSupport.ENABLED
    try:
        return DnsSupport(level)
    except ValueError:
        name = agent.name("dns_support_level")
        raise ConfigError(f'invalid {name}: "{level}"', parameter=name) from None


def _host_lookup(agent: AgentSettings) -> set[str]:
    """smtp_host_lookup: dns, native or both."""
    methods = {m.lower() for m in agent.params.host_lookup}
    if methods - {"dns", "native"} or not methods:
        name = agent.name("host_lookup")
        raise ConfigError(
            f'{name}: bad value "{", ".join(agent.params.host_lookup)}" (want dns, native or both)',
            parameter=name,
        )
    return methods


def _address_preference(agent: AgentSettings) -> AddressPreference:
    text = agent.params.address_preference.strip().lower() or "any"
    try:
        return AddressPreference(text)
    except ValueError:
        name = agent.name("address_preference")
        raise ConfigError(f"bad {name} value: {text}", parameter=name) from None

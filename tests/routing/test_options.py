"""RoutingOptions.from_settings over a stand-in for config.AgentSettings.

The parameters are not all in config.PARAMS yet, so this stand-in provides them with
Postfix's defaults (the same names and defaults the config table should declare).
"""

from __future__ import annotations

import socket
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from mailcarrier.errors import ConfigError
from mailcarrier.routing.options import (
    AddressPreference,
    DnsSupport,
    RoutingOptions,
    parse_inet_protocols,
)
from mailcarrier.routing.resolver import Nameserver

DEFAULTS: dict[str, object] = {
    "smtp_randomize_addresses": True,
    "smtp_mx_address_limit": 5,
    "ignore_mx_lookup_error": False,
    "smtp_defer_if_no_mx_address_found": False,
    "smtp_cname_overrides_servername": False,
    "smtp_host_lookup": ("dns",),
    "smtp_dns_support_level": "",
    "disable_dns_lookups": False,
    "inet_protocols": ("all",),
    "smtp_address_preference": "any",
    "smtp_balance_inet_protocols": True,
    "inet_interfaces": ("all",),
    "proxy_interfaces": (),
    "best_mx_transport": "",
    "use_srv_lookup": (),
    "allow_srv_lookup_fallback": False,
    "ignore_srv_lookup_error": False,
    "dns_nameservers": (),
    "dns_timeout": 10.0,
}


class _Params:
    """`settings.params.NAME` / `agent.params.SUFFIX` of the stand-ins: `lookup(NAME)`."""

    def __init__(self, lookup: Callable[[str], object]) -> None:
        self._lookup = lookup

    def __getattr__(self, name: str) -> object:
        return self._lookup(name)


@dataclass
class StubSettings:
    values: dict[str, object] = field(default_factory=dict)

    def value(self, name: str) -> object:
        return self.values.get(name, DEFAULTS[name.replace("lmtp_", "smtp_", 1)])

    get_bool = get_int = get_str = get_list = get_time = value

    @property
    def params(self) -> _Params:
        return _Params(self.value)


@dataclass
class StubAgent:
    settings: StubSettings
    transport: str = "smtp"

    @property
    def is_lmtp(self) -> bool:
        return self.transport == "lmtp"

    def name(self, suffix: str) -> str:
        return f"{self.transport}_{suffix}"

    def bool(self, suffix: str) -> object:
        return self.settings.value(self.name(suffix))

    int = bool

    @property
    def params(self) -> _Params:
        return _Params(self.bool)


def load(transport: str = "smtp", **values: object) -> RoutingOptions:
    agent = StubAgent(StubSettings(dict(values)), transport)
    return RoutingOptions.from_settings(
        agent,  # type: ignore[arg-type]
        interface_addresses=lambda: ["127.0.0.1", "192.0.2.7"],
        resolve_host=lambda host: [],
    )


def test_defaults() -> None:
    options = load()
    assert options == RoutingOptions(own=options.own)
    assert "192.0.2.7" in options.own
    assert options.resolver_config().nameservers == ()


def test_dns_support_level_and_disable_dns_lookups() -> None:
    assert load(disable_dns_lookups=True).dns_support is DnsSupport.DISABLED
    dnssec = load(smtp_dns_support_level="dnssec", disable_dns_lookups=True)
    assert dnssec.dns_support is DnsSupport.DNSSEC and dnssec.resolver_config().dnssec
    with pytest.raises(ConfigError, match="invalid smtp_dns_support_level"):
        load(smtp_dns_support_level="paranoid")


def test_lmtp_reads_lmtp_names() -> None:
    options = load("lmtp", lmtp_mx_address_limit=2, lmtp_host_lookup=("dns", "native"))
    assert not options.smtp_mode and options.mx_address_limit == 2
    assert options.host_lookup_native and options.host_lookup_dns


def test_bad_values_name_the_parameter() -> None:
    with pytest.raises(ConfigError, match="smtp_host_lookup"):
        load(smtp_host_lookup=("nis",))
    with pytest.raises(ConfigError, match="smtp_address_preference"):
        load(smtp_address_preference="ipv5")
    with pytest.raises(ConfigError, match="dns_nameservers"):
        load(dns_nameservers=("resolver.example",))


def test_nameservers_and_preference() -> None:
    options = load(dns_nameservers=("[127.0.0.1]:5353",), smtp_address_preference="ipv6")
    assert options.resolver_config().nameservers == (Nameserver("127.0.0.1", 5353),)
    assert options.address_preference is AddressPreference.IPV6


def test_inet_protocols() -> None:
    assert parse_inet_protocols(["ipv6", "ipv4"]) == (socket.AF_INET, socket.AF_INET6)
    assert parse_inet_protocols(["ipv6"]) == (socket.AF_INET6,)
    with pytest.raises(ConfigError, match="inet_protocols"):
        parse_inet_protocols(["ipx"])

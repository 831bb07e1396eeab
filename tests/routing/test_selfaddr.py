"""This host's addresses (inet_interfaces, proxy_interfaces) and spotting them among MX hosts."""

from __future__ import annotations

import socket

import pytest

from mailcarrier.errors import ConfigError
from mailcarrier.routing.result import ServerAddress
from mailcarrier.routing.selfaddr import (
    OwnAddresses,
    find_self,
    own_addresses,
    system_interface_addresses,
    truncate_self,
)

BOTH = (socket.AF_INET, socket.AF_INET6)


def interfaces() -> list[str]:
    return ["127.0.0.1", "::1", "192.0.2.7", "fe80::1%eth0"]


def resolve(host: str) -> list[str]:
    return {"mail.example": ["192.0.2.8", "2001:db8::8"]}.get(host, [])


def test_all_uses_interface_addresses() -> None:
    own = own_addresses(["all"], [], BOTH, interface_addresses=interfaces, resolve_host=resolve)
    assert own.local == frozenset({"127.0.0.1", "::1", "192.0.2.7", "fe80::1"})
    assert "192.0.2.7" in own and "[::1]" in own and "192.0.2.9" not in own


def test_explicit_and_proxy_interfaces() -> None:
    own = own_addresses(
        ["mail.example", "[::1]"], ["198.51.100.1"], (socket.AF_INET,), resolve_host=resolve
    )
    assert own.local == frozenset({"192.0.2.8"})
    assert own.proxy == frozenset({"198.51.100.1"})


def test_loopback_only() -> None:
    own = own_addresses(["loopback-only"], [], BOTH)
    assert own.local == frozenset({"127.0.0.1", "::1"})


def test_unknown_interface_name_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="inet_interfaces"):
        own_addresses(["nosuch.example"], [], BOTH, resolve_host=resolve)


def test_system_interfaces_include_loopback() -> None:
    # No name service is asked: the host name lookup is replaced.
    assert "127.0.0.1" in system_interface_addresses(resolve_host=lambda host: [])


def server(address: str, pref: int) -> ServerAddress:
    return ServerAddress("h", address, 25, socket.AF_INET, pref)


def test_find_and_truncate_self() -> None:
    own = OwnAddresses(frozenset({"192.0.2.7"}))
    servers = [
        server("192.0.2.1", 10),
        server("192.0.2.2", 20),
        server("192.0.2.7", 20),
        server("192.0.2.3", 30),
    ]
    me = find_self(servers, own)
    assert me is not None and me.preference == 20
    # Everything of our preference or worse goes, including other hosts at our preference.
    assert truncate_self(servers, me.preference) == (servers[0],)
    assert find_self(servers[:2], own) is None

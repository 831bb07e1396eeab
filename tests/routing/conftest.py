"""Fixtures of the routing tests: a real DNS server on 127.0.0.1 (dnslib, in-process, ephemeral
port) serving the test zones of tests/support/dns.py. Every resolver built from these fixtures
points at this server only: no test query ever leaves loopback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.dns import LoopbackDns, ZoneResolver, serve_zone


@pytest.fixture(scope="module")
def dns_server() -> Iterator[LoopbackDns]:
    zone = ZoneResolver()
    with serve_zone(zone) as port:
        yield LoopbackDns(port, zone)


@pytest.fixture
def loopback_dns(dns_server: LoopbackDns) -> LoopbackDns:
    with dns_server.zone.lock:
        dns_server.zone.queries.clear()
    return dns_server

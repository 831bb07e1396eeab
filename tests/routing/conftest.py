"""Fixtures: a real DNS server on 127.0.0.1 (dnslib, in-process, ephemeral port).

The zones and the server's behaviour are in routing_dnsserver.py. Every resolver built from
these fixtures points at this server only: no test query ever leaves loopback.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dnslib.server import DNSLogger, DNSServer

from tests.routing.routing_dnsserver import LoopbackDns, ZoneResolver


@pytest.fixture(scope="module")
def dns_server() -> Iterator[LoopbackDns]:
    zone = ZoneResolver()
    logger = DNSLogger(log="-request,-reply,-truncated,-error", prefix=False)
    server = DNSServer(zone, port=0, address="127.0.0.1", logger=logger)
    server.start_thread()
    port = server.server.server_address[1]
    try:
        yield LoopbackDns(port, zone)
    finally:
        server.stop()
        server.server.server_close()


@pytest.fixture
def loopback_dns(dns_server: LoopbackDns) -> LoopbackDns:
    with dns_server.zone.lock:
        dns_server.zone.queries.clear()
    return dns_server

"""Fixtures of the delivery tests: the aiosmtpd AUTH server of the SASL tests
(tests/support/peers/aiosmtpd_auth.py), and `shared_dns`: a DNS server in which two domains
have one MX host on 127.0.0.1 (the connection cache and fleet lease tests)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from dnslib import RR

from tests.support.dns import ZoneResolver, serve_zone
from tests.support.peers.aiosmtpd_auth import AuthHandler, start_server
from tests.support.peers.aiosmtpd_requiretls import RequireTlsServers
from tests.support.peers.aiosmtpd_server import AiosmtpdServer


@pytest.fixture
def auth_handler() -> AuthHandler:
    return AuthHandler()


@pytest.fixture
def auth_server(auth_handler: AuthHandler) -> Iterator[AiosmtpdServer]:
    server = start_server(auth_handler)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def servers() -> Iterator[RequireTlsServers]:
    """aiosmtpd servers with STARTTLS and REQUIRETLS, stopped after the test."""
    started = RequireTlsServers()
    yield started
    started.stop_all()


SHARED_ZONE = """
one.test.        300 IN MX 10 mx.shared.test.
two.test.        300 IN MX 10 mx.shared.test.
mx.shared.test.  300 IN A 127.0.0.1
"""


@pytest.fixture(scope="module")
def shared_dns() -> Iterator[int]:
    with serve_zone(ZoneResolver(records=RR.fromZone(SHARED_ZONE))) as port:
        yield port

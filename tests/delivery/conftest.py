"""Fixtures of the delivery tests: the aiosmtpd AUTH server of the SASL tests
(tests/support/peers/aiosmtpd_auth.py)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

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

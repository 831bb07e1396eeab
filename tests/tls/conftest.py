"""Fixtures of the TLS tests (defined in tls_fixtures.py, shared with tests/delivery)."""

from __future__ import annotations

from tests.tls.tls_fixtures import dns_zone, pki, tls_server

__all__ = ["dns_zone", "pki", "tls_server"]

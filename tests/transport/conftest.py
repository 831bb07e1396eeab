"""Fixtures for transport tests: `scripted` (a factory of scripted servers, stopped after each
test) now lives in tests/conftest.py for every test package; `StartScripted` stays importable
from here."""

from __future__ import annotations

from tests.transport.scripted import StartScripted

__all__ = ["StartScripted"]

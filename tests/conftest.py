"""Shared fixtures: real receiving servers on loopback (aiosmtpd, Postfix smtp-sink)."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.peers import postfix_sink
from tests.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler


@pytest.fixture
def smtp_handler() -> RecordingHandler:
    return RecordingHandler()


@pytest.fixture
def smtp_server(smtp_handler: RecordingHandler) -> Iterator[AiosmtpdServer]:
    server = AiosmtpdServer(smtp_handler).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A short directory path (unix socket paths are limited to ~100 bytes)."""
    with tempfile.TemporaryDirectory(prefix="mc-", dir="/tmp") as d:
        os.chmod(d, 0o777)
        yield Path(d)


@pytest.fixture
def smtp_sink() -> Iterator[postfix_sink.SmtpSink]:
    if not postfix_sink.available():
        pytest.skip("Postfix smtp-sink not installed or not root")
    sink = postfix_sink.SmtpSink("-c", "-p", "-8", "-e").start()
    try:
        yield sink
    finally:
        sink.stop()


@pytest.fixture
def lmtp_sink(short_tmp: Path) -> Iterator[postfix_sink.SmtpSink]:
    if not postfix_sink.available():
        pytest.skip("Postfix smtp-sink not installed or not root")
    sink = postfix_sink.SmtpSink("-c", "-p", lmtp=True, unix_path=str(short_tmp / "lmtp")).start()
    try:
        yield sink
    finally:
        sink.stop()

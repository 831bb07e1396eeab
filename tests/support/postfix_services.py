"""Stand-ins for Postfix's status services (bounce(8), defer(8), trace(8), verify(8)) on
``private/<name>`` under a test's queue directory: each speaks the protocol's hello, answers
every request list with ``status``, and keeps the raw bytes of each request for the test to
check. The real services run in the end-to-end tests (tests/postfix/test_native_e2e.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from mailcarrier.postfix.attr import AttrParser, encode

BOUNCE_PROTOCOL = "delivery_status_protocol"


class FakeService:
    """A Postfix status service on `<folder>/<name>` (private/ unless said): hello, one or
    more requests, each answered with `status`; `requests` keeps each request's raw bytes."""

    def __init__(self, name: str, protocol: str, status: int = 0, folder: str = "private") -> None:
        self.name, self.protocol, self.status, self.folder = name, protocol, status, folder
        self.requests: list[bytes] = []

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(encode([("protocol", self.protocol)]))
        parser = AttrParser()
        raw = b""
        while data := await reader.read(4096):
            parser.feed(data)
            raw += data
            while parser.next_list() is not None:
                self.requests.append(raw)
                raw = b""
                writer.write(encode([("status", self.status)]))
        writer.close()


async def start_services(root: Path, *services: FakeService) -> list[asyncio.Server]:
    """Listen for each service on `root`/<folder>/<name> (the directory is made if needed)."""
    for s in services:
        (root / s.folder).mkdir(exist_ok=True)
    return [
        await asyncio.start_unix_server(s.serve, str(root / s.folder / s.name)) for s in services
    ]

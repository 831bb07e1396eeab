"""An aiosmtpd server that counts its sessions: how many are open at once (`peak`), and when
each message arrived (`arrivals`, monotonic seconds) with its Message-ID. The fleet tests use
it as the one receiving server of several nodes: the fleet's connection limit must hold for
the sessions it sees, and its rate limit for the arrival times."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.peers.aiosmtpd_server import RecordingHandler, free_port

_MESSAGE_ID = re.compile(rb"^Message-ID:\s*(\S+)", re.IGNORECASE | re.MULTILINE)


@dataclass
class SessionCounter:
    open: int = 0
    peak: int = 0
    sessions: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def opened(self) -> None:
        with self.lock:
            self.open += 1
            self.sessions += 1
            self.peak = max(self.peak, self.open)

    def closed(self) -> None:
        with self.lock:
            self.open -= 1


@dataclass
class ArrivalHandler(RecordingHandler):
    extra_keywords: tuple[str, ...] = ("PIPELINING", "ENHANCEDSTATUSCODES")
    arrivals: list[tuple[float, str]] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        found = _MESSAGE_ID.search(bytes(envelope.original_content or b""))
        self.arrivals.append((time.monotonic(), found.group(1).decode() if found else ""))
        return await super().handle_DATA(server, session, envelope)


class _CountingSMTP(SMTP):
    counter: SessionCounter

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.counter.opened()
        super().connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        self.counter.closed()
        super().connection_lost(exc)


class _Controller(Controller):
    def __init__(self, counter: SessionCounter, *args: Any, **kw: Any) -> None:
        self.counter = counter
        super().__init__(*args, **kw)

    def factory(self) -> SMTP:
        smtp = _CountingSMTP(self.handler, **self.SMTP_kwargs)
        smtp.counter = self.counter
        return smtp


class SessionCountingServer:
    def __init__(self) -> None:
        self.handler = ArrivalHandler()
        self.counter = SessionCounter()
        self.port = free_port()
        self.controller = _Controller(
            self.counter, self.handler, hostname="127.0.0.1", port=self.port
        )

    @property
    def nexthop(self) -> str:
        return f"[127.0.0.1]:{self.port}"

    def start(self) -> SessionCountingServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

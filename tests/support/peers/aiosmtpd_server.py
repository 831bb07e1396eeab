"""An aiosmtpd receiving server on loopback that records what it received.

aiosmtpd does not announce PIPELINING or DSN by itself; `extra_keywords` adds EHLO keywords
(via the handle_EHLO hook) so the client's pipelined path is exercised against a real server.
`reject` maps recipient prefixes to replies, to produce mixed per-recipient results.
`HoldingHandler` also holds its reply to the final dot until released: a delivery caught in
flight, for tests that act on the client meanwhile (kill it, remove its queue file).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any, cast

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


def free_port(host: str = "127.0.0.1") -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _rcpt_options(envelope: Envelope) -> list[list[str]]:
    """The envelope's RCPT options, one list per accepted recipient.

    aiosmtpd itself flattens them into one list of words (its Envelope is typed so), but only
    when no handle_RCPT hook accepts the recipient: RecordingHandler.handle_RCPT stores each
    recipient's own list instead.
    """
    return cast("list[list[str]]", envelope.rcpt_options)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    content: bytes
    mail_options: list[str]
    rcpt_options: list[list[str]]
    helo: str = ""  # the name the client gave in EHLO (or HELO)


@dataclass
class RecordingHandler:
    extra_keywords: tuple[str, ...] = ("PIPELINING", "DSN", "ENHANCEDSTATUSCODES")
    reject: dict[str, str] = field(default_factory=dict)
    data_reply: str = "250 2.0.0 Ok: queued"
    messages: list[Received] = field(default_factory=list)
    rcpt_options: list[list[str]] = field(default_factory=list)

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        session.host_name = hostname
        last = responses[-1]
        extra = [f"250-{k}" for k in self.extra_keywords]
        return [*responses[:-1], *extra, last]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        for prefix, reply in self.reject.items():
            if address.startswith(prefix):
                return reply
        envelope.rcpt_tos.append(address)
        _rcpt_options(envelope).append(options)
        self.rcpt_options.append(list(options))
        return "250 2.1.5 Ok"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.messages.append(
            Received(
                str(envelope.mail_from),
                list(envelope.rcpt_tos),
                bytes(envelope.original_content or b""),
                list(envelope.mail_options),
                [list(o) for o in _rcpt_options(envelope)],
                str(session.host_name or ""),
            )
        )
        return self.data_reply


class AiosmtpdServer:
    def __init__(self, handler: RecordingHandler, host: str = "127.0.0.1", **kw: Any) -> None:
        self.handler = handler
        self.host = host
        self.port = free_port(host)
        kw.setdefault("data_size_limit", 0)
        kw.setdefault("enable_SMTPUTF8", True)
        self.controller = Controller(handler, hostname=host, port=self.port, **kw)

    @property
    def nexthop(self) -> str:
        host = f"ipv6:{self.host}" if ":" in self.host else self.host
        return f"[{host}]:{self.port}"

    @property
    def messages(self) -> list[Received]:
        return self.handler.messages

    def start(self) -> AiosmtpdServer:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()


@dataclass
class HoldingHandler(RecordingHandler):
    """A `RecordingHandler` that, while held (`hold()`), records each message and then keeps
    its reply to the final dot back until `release()`. `arrived` counts the messages
    received whole; `wait_arrived(n)` waits for n of them."""

    released: threading.Event = field(default_factory=threading.Event)
    arrived: int = 0

    def __post_init__(self) -> None:
        self.released.set()

    def hold(self) -> None:
        self.released.clear()

    def release(self) -> None:
        self.released.set()

    def wait_arrived(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while self.arrived < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{self.arrived} of {count} messages arrived in {timeout} s")
            time.sleep(0.02)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        reply = await super().handle_DATA(server, session, envelope)
        self.arrived += 1
        while not self.released.is_set():
            await asyncio.sleep(0.02)
        return reply

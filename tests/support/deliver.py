"""One delivery in a test: build the request, run it through the public API, keep the log.

`deliver_to(peer, body, **params)` delivers `body` to `peer` (a server with a `nexthop`, or a
next-hop text) through `mailcarrier.deliver` with `client_settings(**params)` (or the
`config=` given) and returns a `Delivery`: the result and the `MemoryLog` of its log lines,
unpacked as `result, log = await deliver_to(...)`. `request_to(...)` builds the same request
without delivering it (for a test that changes a field first) and `deliver_request(request,
...)` delivers a request built elsewhere. For connection reuse, `caching_agent(settings)` is
a `DeliveryAgent` with its own connection cache and log, and `deliver_via(agent, peer, ...)`
sends one message through it.

Defaults are those the scripted sessions of tests/support/wire.py expect: sender
`a@example.org`, one recipient `b@example.net`, `BODY`, queue ID `4ABCDEF123`.

It asserts nothing: what a test checks stays in the test. Settings are built by
tests/support/settings.py; the servers are tests/support/peers and tests/support/scripted.py.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, NamedTuple, Protocol

import mailcarrier
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.log import MemoryLog
from mailcarrier.status import DeliveryResult
from tests.support.settings import client_settings

QUEUE_ID: Final = "4ABCDEF123"
SENDER: Final = "a@example.org"
RECIPIENT: Final = "b@example.net"
BODY: Final = b"Subject: test\n\nhello\n"


class HasNexthop(Protocol):
    """A server of the tests: aiosmtpd, smtp-sink, Postfix smtpd or a scripted server."""

    @property
    def nexthop(self) -> str: ...


Peer = HasNexthop | str


class Delivery(NamedTuple):
    """What one delivery gave: its result and every log line it wrote."""

    result: DeliveryResult
    log: MemoryLog


def nexthop_of(peer: Peer, transport: str = "smtp") -> str:
    """`peer`'s next hop; a server's `[host]:port` becomes `inet:[host]:port` for LMTP."""
    if isinstance(peer, str):
        return peer
    return f"inet:{peer.nexthop}" if transport == "lmtp" else peer.nexthop


def request_to(
    peer: Peer,
    body: bytes = BODY,
    *,
    recipients: Sequence[str] = (RECIPIENT,),
    sender: str = SENDER,
    transport: str = "smtp",
    queue_id: str = QUEUE_ID,
    smtputf8: bool = False,
    notify: str = "",
    ret: str = "",
    envid: str = "",
) -> DeliveryRequest:
    """The request `mailcarrier.make_request` builds for these values."""
    return mailcarrier.make_request(
        body,
        sender=sender,
        recipients=list(recipients),
        nexthop=nexthop_of(peer, transport),
        transport=transport,
        queue_id=queue_id,
        smtputf8=smtputf8,
        notify=notify,
        ret=ret,
        envid=envid,
    )


async def deliver_request(
    request: DeliveryRequest,
    *,
    config: Settings | None = None,
    log: MemoryLog | None = None,
    **params: str,
) -> Delivery:
    """Deliver `request` with `config`, or with `client_settings(**params)`."""
    if config is None:
        config = client_settings(**params)
    elif params:
        raise TypeError(f"parameters {sorted(params)} and a config: give one or the other")
    log = log if log is not None else MemoryLog()
    result = await mailcarrier.deliver(request, config=config, log=log)
    return Delivery(result, log)


async def deliver_to(
    peer: Peer,
    body: bytes = BODY,
    *,
    recipients: Sequence[str] = (RECIPIENT,),
    sender: str = SENDER,
    transport: str = "smtp",
    queue_id: str = QUEUE_ID,
    smtputf8: bool = False,
    notify: str = "",
    ret: str = "",
    envid: str = "",
    config: Settings | None = None,
    log: MemoryLog | None = None,
    **params: str,
) -> Delivery:
    """Deliver `body` to `peer` (see `request_to` and `deliver_request`)."""
    request = request_to(
        peer,
        body,
        recipients=recipients,
        sender=sender,
        transport=transport,
        queue_id=queue_id,
        smtputf8=smtputf8,
        notify=notify,
        ret=ret,
        envid=envid,
    )
    return await deliver_request(request, config=config, log=log, **params)


class CachingAgent(NamedTuple):
    """A delivery agent with its own connection cache and log (for connection reuse)."""

    agent: DeliveryAgent
    cache: ConnectionCache
    log: MemoryLog


def caching_agent(settings: Settings, limits: CacheLimits | None = None) -> CachingAgent:
    """A `DeliveryAgent` for `settings` whose connection cache has `limits`."""
    cache = ConnectionCache(limits if limits is not None else CacheLimits())
    log = MemoryLog()
    return CachingAgent(DeliveryAgent(settings, log=log, cache=cache), cache, log)


async def deliver_via(
    agent: DeliveryAgent,
    peer: Peer,
    body: bytes = BODY,
    *,
    recipients: Sequence[str] = (RECIPIENT,),
    sender: str = SENDER,
    queue_id: str = QUEUE_ID,
    smtputf8: bool = False,
) -> DeliveryResult:
    """Deliver `body` to `peer` through `agent` (its cache, its log)."""
    request = request_to(
        peer, body, recipients=recipients, sender=sender, queue_id=queue_id, smtputf8=smtputf8
    )
    return await agent.deliver(request)

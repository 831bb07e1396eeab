"""Mail loops (Postfix's "mail for X loops back to myself") with best_mx_transport set: the
recipients left are handed to another transport instead of being deferred or bounced.

`hand_off()` takes the delivery to run as a value (`HandOff`: a request in, its result out);
the agent gives it one of its own that does not hand off again. Neighbours: agent.py (which
calls this after the last destination), state.py (the request's bookkeeping).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace

from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.delivery.state import DeliveryState
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.log import LogSink
from mailcarrier.status import DeliveryResult

__all__ = ["HandOff", "hand_off"]

# Delivers a request through another transport, without logging delivery lines (the
# recipients are marked, and logged, by the request handed off).
HandOff = Callable[[DeliveryRequest], Awaitable[DeliveryResult]]


async def hand_off(
    job: DeliveryState,
    target: str,
    deliver: HandOff,
    *,
    log: LogSink,
    now: Callable[[], float],
    services: Mapping[str, str] | None = None,
) -> bool:
    """A mail loop with best_mx_transport = `target`: deliver the rest through it.

    best_mx_transport is written as ``transport:nexthop`` (like a transport_maps result),
    e.g. ``lmtp:unix:/run/lmtp``: the transport is smtp, lmtp or a master.cf service
    (`services`: name -> smtp or lmtp), whose settings then apply.
    """
    target = target.strip()
    if not target:
        return False
    transport, _, nexthop = target.partition(":")
    services = services or {}
    kind = services.get(transport) or (transport if transport in ("smtp", "lmtp") else "")
    if not kind or not nexthop:
        log.warning(
            job.process,
            f'best_mx_transport: unsupported value "{target}" (want smtp:DEST, lmtp:DEST '
            "or SERVICE:DEST for an smtp or lmtp service of master.cf)",
        )
        return False
    pending = job.tracker.pending()
    sub = replace(
        job.request,
        transport=kind,
        service=transport if transport in services else "",
        nexthop=nexthop,
        recipients=tuple(job.request.recipients[i] for i in pending),
    )
    result = await deliver(sub)
    delays = job.attempt.delays(now())
    for i, status in zip(pending, result.recipients, strict=True):
        job.tracker.mark(
            i,
            Verdict(status.status, status.dsn, status.diagnostic),
            relay=status.relay,
            delays=delays,
            conn_use=status.conn_use,
            action=status.action,
        )
    return True

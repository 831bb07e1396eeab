"""Mail loops (Postfix's "mail for X loops back to myself") with best_mx_transport set: the
recipients left are handed to another transport instead of being deferred or bounced.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from mailcarrier.delivery.job import Job
from mailcarrier.delivery.trouble import Verdict

if TYPE_CHECKING:
    from mailcarrier.delivery.agent import DeliveryAgent

__all__ = ["hand_off"]


async def hand_off(agent: DeliveryAgent, job: Job) -> bool:
    """A mail loop with best_mx_transport set: deliver the rest through that transport.

    mailcarrier's transports are smtp and lmtp, so best_mx_transport is written as
    ``transport:nexthop`` (like a transport_maps result), e.g. ``lmtp:unix:/run/lmtp``.
    """
    target = agent.settings.params.best_mx_transport.strip()
    if not target or agent._depth > 0:
        return False
    transport, _, nexthop = target.partition(":")
    if transport not in ("smtp", "lmtp") or not nexthop:
        agent.log.warning(
            job.process,
            f'best_mx_transport: unsupported value "{target}" (want smtp:DEST or lmtp:DEST)',
        )
        return False
    pending = job.tracker.pending()
    sub = replace(
        job.request,
        transport=transport,
        nexthop=nexthop,
        recipients=tuple(job.request.recipients[i] for i in pending),
    )
    from mailcarrier.delivery.agent import DeliveryAgent  # the agent imports this module

    inner = DeliveryAgent(
        agent.settings,
        log=agent.log,
        clock=agent.clock,
        wallclock=agent.wallclock,
        resolver=agent.resolver,
        native=agent.native,
        rng=agent.rng,
        cache=agent.cache,
        notify=agent.notify,
        _depth=agent._depth + 1,
    )
    result = await inner.deliver(sub, log_lines=False)
    now = agent.clock()
    for i, status in zip(pending, result.recipients, strict=True):
        job.tracker.mark(
            i,
            Verdict(status.status, status.dsn, status.diagnostic),
            relay=status.relay,
            delays=job.attempt.delays(now),
            conn_use=status.conn_use,
            action=status.action,
        )
    return True

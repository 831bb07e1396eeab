"""The queue manager's units of work: a message in active/ and the jobs made of it.

`ActiveMessage` is a message the scheduler (scheduler.py) has taken into active/: its queue
file's records writer, when it was taken, how many of its jobs are still running, and the
first write that failed for it. A `Job` is the recipients of one message for one
(transport, next hop), at most ``<transport>_destination_recipient_limit`` of them, with the
recipients whose verdict is recorded so far; `delivery_request(job)` is the
`DeliveryRequest` the delivery agent gets for it (delivery/request.py), each recipient
with its attempt number (the verdicts recorded for it so far, plus one). No I/O here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from mailcarrier.delivery.request import DeliveryRequest, queued_recipient, queued_request
from mailcarrier.queue.route import Route
from mailcarrier.queue.spool import QueueMessage, RecordWriter

__all__ = ["ActiveMessage", "Job", "delivery_request"]


@dataclass
class ActiveMessage:
    message: QueueMessage
    records: RecordWriter
    qmgr_time: float
    jobs_left: int = 0
    trouble: str = ""  # a verdict could not be written: the message goes back unfinished


@dataclass
class Job:
    active: ActiveMessage
    route: Route
    indexes: list[int]
    recorded: set[int] = field(default_factory=set)


def delivery_request(job: Job) -> DeliveryRequest:
    """The request for `job`: its recipients (with their offsets in the queue file), the
    message's envelope and content range (checked as `DeliveryRequest` checks: a queue
    file may have been edited by hand)."""
    message = job.active.message
    env = message.envelope
    attempts = message.state.attempts
    everyone = env.recipients
    recipients = []
    for i in job.indexes:
        rcpt = everyone[i]
        recipients.append(
            queued_recipient(
                rcpt.address,
                rcpt.orig_address,
                rcpt.dsn_orcpt,
                rcpt.dsn_notify,
                i,
                attempts.get(i, 0) + 1,
            )
        )
    route = job.route
    return queued_request(
        queue_id=env.queue_id,
        nexthop=route.nexthop,
        sender=env.sender,
        recipients=tuple(recipients),
        content=message.name,
        transport=route.transport,
        service=route.service,
        size=env.size,
        content_offset=env.content_offset,
        encoding=env.encoding,
        smtputf8=env.smtputf8,
        requiretls=env.requiretls,
        tls_required_no=env.tls_required_no,
        dsn_envid=env.dsn_envid,
        dsn_ret=env.dsn_ret,
        arrival_time=env.arrival_time,
        qmgr_time=job.active.qmgr_time,
        probe=env.probe,  # sendmail -bv: MAIL and RCPT only (Postfix's trace-only request)
        content_bytes=message.content,  # the spool's first read held it (scheduler.py)
    )

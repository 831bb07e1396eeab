"""The durable queue: spool, submission, scheduler (qmgr), notices (bounce), administration.

`open_spool(settings)` opens the queue directory; `submit_stream` queues a message;
`QueueManager` delivers from the queue through a DeliveryAgent; `serve` runs it as a daemon;
`QueueAdmin` lists and manages queued mail. See each module's opening paragraph.
"""

from __future__ import annotations

from mailcarrier.queue.admin import QueueAdmin, QueueEntry, format_mailq
from mailcarrier.queue.daemon import Controls, QueueBusyError, QueueLock, serve
from mailcarrier.queue.ids import new_queue_id
from mailcarrier.queue.route import Route, Router
from mailcarrier.queue.scheduler import Deliverer, QueueManager
from mailcarrier.queue.spool import Spool, open_spool
from mailcarrier.queue.submit import SubmitOptions, submit_stream

__all__ = [
    "Controls",
    "Deliverer",
    "QueueAdmin",
    "QueueBusyError",
    "QueueEntry",
    "QueueLock",
    "QueueManager",
    "Route",
    "Router",
    "Spool",
    "SubmitOptions",
    "format_mailq",
    "new_queue_id",
    "open_spool",
    "serve",
    "submit_stream",
]

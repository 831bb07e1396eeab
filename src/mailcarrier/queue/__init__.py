"""The durable queue: spool, submission, scheduler (qmgr), notices (bounce), administration.

`open_spool(settings)` opens the queue directory; `submit_stream` queues a message;
`QueueManager` delivers from the queue through a DeliveryAgent; `serve` runs it as a daemon;
`QueueAdmin` lists and manages queued mail. See each module's opening paragraph.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailcarrier.lazy import lazy_names

if TYPE_CHECKING:
    from mailcarrier.queue.admin import QueueAdmin, QueueEntry, format_mailq
    from mailcarrier.queue.daemon import Controls, QueueBusyError, QueueLock, serve
    from mailcarrier.queue.ids import new_queue_id
    from mailcarrier.queue.route import Route, Router
    from mailcarrier.queue.scheduler import Deliverer, QueueManager
    from mailcarrier.queue.spool import Spool, open_spool
    from mailcarrier.queue.submit import SubmitOptions, submit_stream

# Where each public name lives; loaded on first use (PEP 562), so that submitting a message
# (queue.submit) does not load the scheduler and the delivery agent.
_HOMES: dict[str, tuple[str, ...]] = {
    "admin": ("QueueAdmin", "QueueEntry", "format_mailq"),
    "daemon": ("Controls", "QueueBusyError", "QueueLock", "serve"),
    "ids": ("new_queue_id",),
    "route": ("Route", "Router"),
    "scheduler": ("Deliverer", "QueueManager"),
    "spool": ("Spool", "open_spool"),
    "submit": ("SubmitOptions", "submit_stream"),
}

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


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())

"""The durable queue: spool, submission, scheduler (qmgr), notices (bounce), administration.

`open_spool(settings)` opens the queue directory; `submit_stream` queues a message;
`QueueManager` delivers from the queue through a DeliveryAgent; `serve` runs it as a daemon;
`QueueAdmin` lists and manages queued mail. See each module's opening paragraph.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

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
_HOME_OF: dict[str, str] = {name: module for module, names in _HOMES.items() for name in names}

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


def __getattr__(name: str) -> Any:
    """A public name, imported from its module on first use (then kept here); a submodule
    as Python's import system gives it."""
    module = _HOME_OF.get(name)
    if module is None:
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

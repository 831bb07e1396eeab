"""What the queue manager tells an observer (the metrics and the status page, observe/).

`QueueObserver` is the one narrow interface through which the scheduler reports what
happened: `recorded()` for each recipient verdict it writes to a queue file (the agent's, or
its own for error:, retry:, a suspended destination or a failed delivery), with the
transport and next hop of the job; `counted()` for what the agent counted besides
(status.py's `Counts`: connections, TLS, DNS, ...) with each result; `expired()` for a
message returned at maximal_queue_lifetime (finalize.py), with the number of recipients it
returned. The scheduler counts in this one place whether deliveries run in its process or in
agent processes (workers.py), so metrics need no multi-process mode. `NullObserver` is the
default: nothing is kept. The observer must not block or raise: it is called between the
durable write and the next recipient.
"""

from __future__ import annotations

from typing import Protocol

from mailcarrier.status import Counts, RecipientStatus

__all__ = ["NullObserver", "QueueObserver"]


class QueueObserver(Protocol):
    def recorded(self, transport: str, nexthop: str, status: RecipientStatus) -> None: ...

    def counted(self, transport: str, counts: Counts) -> None: ...

    def expired(self, recipients: int) -> None: ...


class NullObserver:
    def recorded(self, transport: str, nexthop: str, status: RecipientStatus) -> None:
        pass

    def counted(self, transport: str, counts: Counts) -> None:
        pass

    def expired(self, recipients: int) -> None:
        pass

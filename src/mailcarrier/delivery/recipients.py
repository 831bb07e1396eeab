"""Recipient bookkeeping: each recipient of a request is marked exactly once.

`RecipientTracker` holds the request's recipients; `mark()` records a recipient's verdict with
its relay, delays and connection use, and refuses a second mark (a bug, never silently
accepted). `pending()` lists who still needs a server; `result()` builds the
`DeliveryResult` and refuses if anyone was left unmarked. A callback sees each mark as it
happens, so log lines and queue updates follow delivery in real time, as Postfix's do.
"""

from __future__ import annotations

from collections.abc import Callable

from mailcarrier.delivery.request import Recipient
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.errors import LocalProtocolError
from mailcarrier.status import (
    Counts,
    Delays,
    DeliveryResult,
    DeliveryStatus,
    HopStatus,
    RecipientStatus,
    TlsSession,
)

__all__ = ["RecipientTracker"]


# The DSN action of a verdict when the caller names none.
_DEFAULT_ACTION = {
    DeliveryStatus.SENT: "relayed",
    DeliveryStatus.DEFERRED: "delayed",
    DeliveryStatus.BOUNCED: "failed",
}


class RecipientTracker:
    def __init__(
        self,
        recipients: tuple[Recipient, ...],
        on_mark: Callable[[int, RecipientStatus], None] | None = None,
        status_filter: Callable[[Verdict], Verdict] | None = None,
    ) -> None:
        self.recipients = recipients
        # smtp_delivery_status_filter (status_filter.py): applied to every verdict marked.
        self._filter = status_filter
        self._status: list[RecipientStatus | None] = [None] * len(recipients)
        self._on_mark = on_mark
        self._unmarked = len(recipients)
        # The TLS feature status of the session in use (tls/features.py), set by the agent;
        # each mark carries it into the delivery line's tls= field.
        self.tls_status = ""
        # The TLS session in use (protocol, cipher, trust), for the event records; None
        # without one. Set by the agent with `tls_status`.
        self.tls_session: TlsSession | None = None
        # Set when recipients were deferred because the site failed (status.HopStatus).
        self.hop_status: HopStatus | None = None

    def pending(self) -> list[int]:
        unmarked = self._unmarked
        if unmarked == len(self._status):  # nobody marked yet (a request's first server)
            return list(range(unmarked))
        if not unmarked:
            return []
        return [i for i, s in enumerate(self._status) if s is None]

    @property
    def has_pending(self) -> bool:
        """Whether any recipient is still unmarked (`bool(pending())`, without the list)."""
        return self._unmarked > 0

    def is_marked(self, index: int) -> bool:
        return self._status[index] is not None

    def mark(
        self,
        index: int,
        verdict: Verdict,
        *,
        relay: str,
        delays: Delays,
        conn_use: int = 0,
        action: str = "",
    ) -> RecipientStatus:
        if self._status[index] is not None:
            raise LocalProtocolError(f"recipient {self.recipients[index].address} marked twice")
        rcpt = self.recipients[index]
        if self._filter is not None:
            filtered = self._filter(verdict)
            if filtered.status is not verdict.status:
                action = ""  # a success stays a success; a failure's action follows its class
            verdict = filtered
        if not action:
            action = _DEFAULT_ACTION[verdict.status]
        status = RecipientStatus(
            address=rcpt.address,
            status=verdict.status,
            dsn=verdict.dsn,
            diagnostic=verdict.diagnostic,
            relay=relay,
            delays=delays,
            conn_use=conn_use,
            orig_address=rcpt.orig_address,
            action=action,
            tls=self.tls_status,
            soft_bounced=verdict.soft_bounced,
            tls_session=self.tls_session,
        )
        self._status[index] = status
        self._unmarked -= 1
        if self._on_mark is not None:
            self._on_mark(index, status)
        return status

    def result(
        self,
        queue_id: str,
        busy: float | None = None,
        unavailable: bool = False,
        counts: Counts = (),
    ) -> DeliveryResult:
        """Every recipient's status; with `busy` (fleet mode: try again in that many
        seconds; `unavailable`: Redis could not be asked), those marked so far, the others
        left for the queue to try again. `counts`: what the agent counted (the metrics)."""
        if busy is not None:
            marked = tuple(s for s in self._status if s is not None)
            return DeliveryResult(queue_id, marked, self.hop_status, busy, counts, unavailable)
        missing = [self.recipients[i].address for i in self.pending()] if self._unmarked else []
        if missing:
            raise LocalProtocolError(f"recipients left without a status: {', '.join(missing)}")
        # Everyone is marked (checked above): no None left in the list.
        return DeliveryResult(queue_id, tuple(self._status), self.hop_status, None, counts)  # type: ignore[arg-type]

"""What becomes of each recipient's verdict under Postfix: the library calls smtp(8) makes
(sent(), bounce_append(), defer_append(), trace_append(), verify_append()), the mark in the
queue file, the log line, and the recipient's share of the request's final status.

`Reporter.report(rcpt, status)` takes one recipient's `RecipientStatus` from the delivery
agent and:

- sent: trace records first when the request or the recipient asks for them (``sendmail
  -v``, confirm_delay_cleared, NOTIFY=SUCCESS unless the next hop took the DSN request on),
  then the log line; the recipient is marked done when the request's SUCCESS flag says so.
  A trace service that fails turns it into a deferral ("trace service failed"), as sent.c.
- bounced: an append to bounce(8); marked done only when bounce(8) accepted it; if it did
  not, a deferral ("bounce or trace service failure").
- deferred: an append to defer(8) (its failure only logged, as defer.c); never marked; then,
  as defer.c, flush(8) is told of the recipient's domain when it is a fast flush domain.
- address probes (verify(8)'s MTA_VRFY, ``sendmail -bv``'s USR_VRFY) go to verify(8) or
  trace(8) instead, logged ``deliverable`` or ``undeliverable``.

The log line goes with its event record (event_log_file, events.py), and the verdict to
`on_verdict` (the agent's metrics). The result is 0 when the recipient is finished and -1
when the message must stay queued; the request's final status is the OR of them (server.py).
Neighbours: services.py (the sockets), request.py (the flags), queuefile.py (the mark).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Final

from mailcarrier.events import delivery_event
from mailcarrier.log import LogSink, delivery_line
from mailcarrier.postfix.reply import Dsn
from mailcarrier.postfix.request import (
    DEL_REQ_FLAG_MTA_VRFY,
    DEL_REQ_FLAG_REC_DLY_SENT,
    DEL_REQ_FLAG_RECORD,
    DEL_REQ_FLAG_SUCCESS,
    DEL_REQ_FLAG_USR_VRFY,
    NativeRecipient,
    trace_flags,
)
from mailcarrier.postfix.services import FLUSH_STAT_DENY as FLUSH_DENY
from mailcarrier.postfix.services import StatusServices
from mailcarrier.status import (
    ACTION_FORWARDED,
    DeliveryStatus,
    RecipientStatus,
    remote_mta,
    server_reply,
)

__all__ = ["Reporter"]

FLAG_SUCCESS: Final = DEL_REQ_FLAG_SUCCESS
FLAG_MTA_VRFY: Final = DEL_REQ_FLAG_MTA_VRFY
FLAG_USR_VRFY: Final = DEL_REQ_FLAG_USR_VRFY
FLAG_RECORD: Final = DEL_REQ_FLAG_RECORD
FLAG_REC_DLY_SENT: Final = DEL_REQ_FLAG_REC_DLY_SENT
NOTIFY_SUCCESS: Final = 2
NOTIFY_DELAY: Final = 8

# verify(8) recipient_status values (DEL_RCPT_STAT_*).
_VERIFY_STATUS: Final = {
    DeliveryStatus.SENT: 0,
    DeliveryStatus.DEFERRED: 1,
    DeliveryStatus.BOUNCED: 2,
}


def status_dsn(status: RecipientStatus, action: str) -> Dsn:
    """The DSN smtp(8) builds for a verdict: a server's reply is the diagnostic (``smtp``)
    and its host the reporting MTA (``dns``); a local reason has neither."""
    reply = server_reply(status.diagnostic)
    if status.status is DeliveryStatus.SENT:
        reply = status.diagnostic  # a success's diagnostic is the reply itself
    mname = remote_mta(status.relay)
    return Dsn(
        status=status.dsn,
        reason=status.diagnostic,
        action=action,
        diag_type="smtp" if reply is not None else "",
        diag_text=reply or "",
        mta_type="dns" if reply is not None and mname else "",
        mta_mname=mname if reply is not None else "",
    )


class Reporter:
    """Reports the recipients of one request (`flags` and `queue_id` are the request's);
    `mark(offset)` marks a recipient done in the queue file; `on_verdict` is told of each
    verdict logged (the metrics), address probes' excepted."""

    def __init__(
        self,
        services: StatusServices,
        log: LogSink,
        *,
        flags: int,
        queue_id: str,
        mark: Callable[[int], None],
        process: str = "smtp",
        verify_negative_cache: bool = True,
        resolution: int = 2,
        on_verdict: Callable[[RecipientStatus], None] | None = None,
    ) -> None:
        self.on_verdict = on_verdict
        self.services = services
        self.log = log
        self.flags = flags
        self.trace_flags = trace_flags(flags)
        self.queue_id = queue_id
        self.mark = mark
        self.process = process
        self.verify_negative_cache = verify_negative_cache
        self.resolution = resolution

    def _log(self, status: RecipientStatus, word: str) -> None:
        """The delivery line and its event record (event_log_file). Postfix counts no
        attempts (qmgr resets the defer log at each queue run): the record's attempt is
        null."""
        line = delivery_line(self.queue_id, status, self.resolution, word=word)
        self.log.event(self.process, line, delivery_event(self.queue_id, status, 0))
        # The metrics count deliveries: an address probe's verdict is none.
        if self.on_verdict is not None and not self.flags & (FLAG_MTA_VRFY | FLAG_USR_VRFY):
            self.on_verdict(status)

    async def report(self, rcpt: NativeRecipient, status: RecipientStatus) -> int:
        if self.flags & FLAG_MTA_VRFY:
            return await self._verify(rcpt, status)
        if self.flags & FLAG_USR_VRFY:
            word = "deliverable" if status.status is DeliveryStatus.SENT else "undeliverable"
            return await self._trace(rcpt, status, status_dsn(status, word), log_word=word)
        if status.status is DeliveryStatus.SENT:
            return await self._sent(rcpt, status)
        if status.status is DeliveryStatus.BOUNCED:
            return await self._bounced(rcpt, status)
        return await self._deferred(rcpt, status, status_dsn(status, "delayed"))

    def report_at_once(self, rcpt: NativeRecipient, status: RecipientStatus) -> int | None:
        """`report()` of a recipient sent with no trace record to append (the common case:
        nothing to ask another service), done now; None when `report()` must do it."""
        if status.status is not DeliveryStatus.SENT or self.flags & (FLAG_MTA_VRFY | FLAG_USR_VRFY):
            return None
        if self._traces(rcpt, status)[0]:
            return None
        self._log(status, "sent")
        self._finish(rcpt, status)
        return 0

    def _traces(self, rcpt: NativeRecipient, status: RecipientStatus) -> tuple[int, str]:
        """How many trace records a success asks for (sent.c: one for "sendmail -v" or a
        cleared delay, one more for NOTIFY=SUCCESS, from which bounce(8) mails the success
        notice), and the DSN action."""
        notify = rcpt.notify_flags
        action = status.action or "relayed"
        if action == ACTION_FORWARDED:
            # The next hop announced DSN and took NOTIFY along: its notice, not ours.
            notify &= ~NOTIFY_SUCCESS
            action = "relayed"
        traces = int(bool(notify & NOTIFY_SUCCESS))
        if self.flags & FLAG_RECORD or (
            self.flags & FLAG_REC_DLY_SENT and (notify == 0 or notify & NOTIFY_DELAY)
        ):
            traces += 1
        return traces, action

    async def _sent(self, rcpt: NativeRecipient, status: RecipientStatus) -> int:
        traces, action = self._traces(rcpt, status)
        dsn = status_dsn(status, action)
        for _ in range(traces):
            if await self._append_trace(rcpt, status, dsn) != 0:
                failed = replace(
                    status,
                    status=DeliveryStatus.DEFERRED,
                    dsn="4.3.0",
                    diagnostic=f"{self.queue_id}: trace service failed",
                )
                return await self._deferred(rcpt, failed, status_dsn(failed, "delayed"))
        self._log(status, "sent")
        self._finish(rcpt, status)
        return 0

    def _finish(self, rcpt: NativeRecipient, status: RecipientStatus) -> None:
        """smtp(8)'s marks: a bounce always, a success when the request's flags ask."""
        if status.status is DeliveryStatus.BOUNCED or (
            status.status is DeliveryStatus.SENT and self.flags & FLAG_SUCCESS
        ):
            self.mark(rcpt.offset)

    async def _bounced(self, rcpt: NativeRecipient, status: RecipientStatus) -> int:
        dsn = status_dsn(status, "failed")
        if status.dsn[:1] != "5":
            dsn = replace(dsn, status="5" + status.dsn[1:])
        appended = await self.services.append(
            "bounce", flags=self.trace_flags, queue_id=self.queue_id, rcpt=rcpt, dsn=dsn
        )
        if appended == 0 and (
            not self.flags & FLAG_RECORD or await self._append_trace(rcpt, status, dsn) == 0
        ):
            self._log(status, "bounced")
            self._finish(rcpt, status)
            return 0
        failed = replace(
            status,
            status=DeliveryStatus.DEFERRED,
            dsn="4.3.0",
            diagnostic=f"{self.services.names['bounce']} or "
            f"{self.services.names['trace']} service failure",
        )
        return await self._deferred(rcpt, failed, status_dsn(failed, "delayed"))

    async def _deferred(self, rcpt: NativeRecipient, status: RecipientStatus, dsn: Dsn) -> int:
        appended = await self.services.append(
            "defer", flags=self.trace_flags, queue_id=self.queue_id, rcpt=rcpt, dsn=dsn
        )
        if appended != 0:
            self.log.warning(
                self.process, f"{self.queue_id}: {self.services.names['defer']} service failure"
            )
        self._log(status, "")
        if self.flags & FLAG_RECORD and await self._append_trace(rcpt, status, dsn) != 0:
            self.log.warning(
                self.process, f"{self.queue_id}: {self.services.names['trace']} service failure"
            )
        site = rcpt.address.rpartition("@")[2] if "@" in rcpt.address else ""
        if site and await self.services.flush_add(site, self.queue_id) not in (0, FLUSH_DENY):
            self.log.warning(
                self.process, f"{self.queue_id}: {self.services.names['flush']} service failure"
            )
        return -1

    async def _append_trace(self, rcpt: NativeRecipient, status: RecipientStatus, dsn: Dsn) -> int:
        reason = dsn.reason
        if status.relay != "none":
            reason = f"delivery via {status.relay}: {reason}"
        return await self.services.append(
            "trace",
            flags=self.trace_flags,
            queue_id=self.queue_id,
            rcpt=rcpt,
            dsn=replace(dsn, reason=reason),
        )

    async def _trace(
        self, rcpt: NativeRecipient, status: RecipientStatus, dsn: Dsn, *, log_word: str
    ) -> int:
        """``sendmail -bv``: the result goes to trace(8), which mails it to the user."""
        if await self._append_trace(rcpt, status, dsn) != 0:
            self.log.warning(
                self.process, f"{self.queue_id}: {self.services.names['trace']} service failure"
            )
            return -1
        self._log(status, log_word)
        self._finish(rcpt, status)
        return 0

    async def _verify(self, rcpt: NativeRecipient, status: RecipientStatus) -> int:
        """An address probe from verify(8): its result is recorded there, not mailed."""
        ok = status.status is DeliveryStatus.SENT
        word = "deliverable" if ok else "undeliverable"
        result = 0
        if ok or self.verify_negative_cache:
            code = _VERIFY_STATUS[status.status]
            for address in dict.fromkeys(a for a in (rcpt.orig_addr, rcpt.address) if a):
                if await self.services.update_verify(address, code, status.diagnostic) != 0:
                    result = -1
                    break
        else:
            word = "undeliverable-but-not-cached"
        if result != 0:
            self.log.warning(
                self.process, f"{self.queue_id}: {self.services.names['verify']} service failure"
            )
            return -1
        self._log(status, word)
        self._finish(rcpt, status)
        return 0

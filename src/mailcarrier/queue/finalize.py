"""What happens to a message after a delivery pass: notices, expiry, defer or remove.

`Finisher.finish(message, records)` runs when every job of an active message has ended. It
bounces recipients still deferred once the message is older than `maximal_queue_lifetime`
(`bounce_queue_lifetime` for notices), queues the notices that the recorded verdicts call for
and marks them done, sends at most one delay warning once the message is older than
`delay_warning_time`, and then removes the file (no recipient left) or moves it to deferred/
with the next attempt time as its mtime. Who is told follows Postfix's bounce(8): never a
notice to the null sender; a failed notice goes to the postmaster only with ``2bounce`` in
`notify_classes`; a failed postmaster notice (from `double_bounce_sender`) is discarded;
postmaster copies per ``bounce`` and ``delay``; DSN NOTIFY per recipient.

When a record, a notice or the deferral cannot be written (`TemporaryError`: a full disk, a
read-only queue), one warning names the file and the error, and the message goes back to
the queue it came from with its old next-attempt time (`put_back`): its recorded verdicts
stay, a notice not queued is queued by the next attempt, and nothing is removed.
The expiry line and each notice line go with their event records (events.py); an expiry is
told to `on_expired` (the scheduler's observer: the metrics) with the recipients returned.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from mailcarrier.delivery.autodetect import MailSource, smtputf8_autodetect
from mailcarrier.errors import TemporaryError
from mailcarrier.events import expired_event, notice_event
from mailcarrier.log import LogSink, log_event
from mailcarrier.notify import Notify
from mailcarrier.queue.addresses import qualify
from mailcarrier.queue.crash import crash_point
from mailcarrier.queue.names import BOUNCE, QMGR
from mailcarrier.queue.notices import NoticeSpec, write_notice
from mailcarrier.queue.params import QueueParams
from mailcarrier.queue.qfile import (
    MessageClass,
    RecipientState,
    notified_record,
    status_record,
    warned_record,
)
from mailcarrier.queue.spool import QueueMessage, RecordWriter, Spool
from mailcarrier.queue.window import backoff_delay
from mailcarrier.status import ACTION_FORWARDED, DeliveryStatus

__all__ = ["Finisher", "record_state"]


def record_state(
    message: QueueMessage, records: RecordWriter, index: int, state: RecipientState
) -> None:
    """Append one verdict durably and fold it into the in-memory state."""
    records.append(
        status_record(
            index, state.status, state.dsn, state.relay, state.diagnostic, state.when, state.action
        )
    )
    message.state.states[index] = state
    attempts = message.state.attempts
    attempts[index] = attempts.get(index, 0) + 1


class Finisher:
    def __init__(
        self,
        spool: Spool,
        params: QueueParams,
        log: LogSink,
        clock: Callable[[], float],
        *,
        on_expired: Callable[[int], None] | None = None,
    ) -> None:
        self.on_expired = on_expired
        self.spool = spool
        self.params = params
        self.log = log
        self.clock = clock
        self.myorigin = params.myorigin()
        self.double_bounce = qualify(params.main.double_bounce_sender, self.myorigin)
        self.classes = set(params.main.notify_classes)

    def finish(self, message: QueueMessage, records: RecordWriter) -> bool:
        """Notices, then defer or remove. False when a write failed (logged) and the
        message was put back or left in active/ for recovery instead."""
        env = message.envelope
        queue_id = env.queue_id
        try:
            pending = self._notices(message, records)
        except TemporaryError as exc:
            self.log.warning(QMGR, f"{queue_id}: {exc}")
            return self.put_back(message, records)
        if pending:
            now = self.clock()
            delay = backoff_delay(
                now - env.arrival_time,
                self.params.main.minimal_backoff_time,
                self.params.main.maximal_backoff_time,
            )
            try:
                records.close()
                self.spool.move(queue_id, "active", "deferred", mtime=now + delay)
            except FileNotFoundError:
                pass
            except TemporaryError as exc:  # left in active/: recovered by a later pass
                self.log.warning(QMGR, f"{queue_id}: {exc}")
                return False
            return True
        records.close(sync=False)  # the file is removed next: see RecordWriter
        crash_point("finalize-before-move")
        self.spool.remove_soon(
            "active", queue_id, lambda: self.log.info(QMGR, f"{queue_id}: removed")
        )
        return True

    def _notices(self, message: QueueMessage, records: RecordWriter) -> list[int]:
        """Expire, queue the notices due, warn of delay; the recipients still pending."""
        env = message.envelope
        now = self.clock()
        age = now - env.arrival_time
        main = self.params.main
        lifetime = (
            main.bounce_queue_lifetime
            if env.message_class.is_notice or not env.sender
            else main.maximal_queue_lifetime
        )
        pending = message.pending()
        if pending and age >= lifetime:
            self._expire(message, records, pending, now)
            pending = []
        if env.probe:
            if not pending:
                self._probe_report(message, records, now)
            return pending
        self._final_notices(message, records, now, removing=not pending)
        if pending:
            self._delay_warning(message, records, pending, now, age)
        return pending

    def put_back(self, message: QueueMessage, records: RecordWriter) -> bool:
        """After a failed write: back to the queue the message came from, with its old
        next-attempt time and whatever verdicts were recorded. Returns False (not finished)."""
        queue_id = message.queue_id
        try:
            records.close()
        except TemporaryError as exc:
            self.log.warning(QMGR, f"{queue_id}: {exc}")
        try:
            self.spool.move(queue_id, "active", message.origin or "incoming", mtime=message.mtime)
        except FileNotFoundError:
            pass
        except TemporaryError as exc:  # left in active/: recovered by a later pass
            self.log.warning(QMGR, f"{queue_id}: {exc}")
        return False

    def _notify(
        self, message: QueueMessage, indexes: list[int], spec: NoticeSpec, what: str
    ) -> None:
        """Queue one notice and log it as bounce(8) does ("sender non-delivery
        notification: ID"); a failure names the notice, the file and the error."""
        try:
            new_id = write_notice(self.spool, message, indexes, spec)
        except TemporaryError as exc:
            raise TemporaryError(f"{what}: {exc}", path=exc.path, errno=exc.errno) from exc
        event = notice_event(
            message.queue_id,
            notice=spec.kind.value,
            what=what,
            notice_queue_id=new_id,
            to=spec.recipient,
            nrcpt=len(indexes),
        )
        log_event(self.log, BOUNCE, f"{message.queue_id}: {what}: {new_id}", event)

    # --- expiry -----------------------------------------------------------------------
    def _expire(
        self, message: QueueMessage, records: RecordWriter, pending: list[int], now: float
    ) -> None:
        env = message.envelope
        expired = f"{env.queue_id}: from=<{env.sender}>, status=expired, returned to sender"
        addresses = [env.recipients[i].address for i in pending]
        event = expired_event(
            env.queue_id, sender=env.sender, recipients=addresses, age=now - env.arrival_time
        )
        log_event(self.log, QMGR, expired, event)
        for i in pending:
            last = message.state.states.get(i)
            dsn = last.dsn if last is not None else "4.4.7"
            reason = last.diagnostic if last is not None else "message expired"
            relay = last.relay if last is not None else "none"
            state = RecipientState(DeliveryStatus.BOUNCED, dsn, reason, relay, now, "failed")
            record_state(message, records, i, state)
        if self.on_expired is not None:
            self.on_expired(len(pending))

    # --- notices ----------------------------------------------------------------------
    def _spec(self, kind: MessageClass, sender: str, recipient: str, now: float) -> NoticeSpec:
        return NoticeSpec(
            kind=kind,
            sender=sender,
            recipient=recipient,
            reporting_mta=self.params.myhostname(),
            mail_name=self.params.main.mail_name or "Postfix",
            bounce_size_limit=self.params.main.bounce_size_limit,
            now=now,
            smtputf8_autodetect=smtputf8_autodetect(self.params.settings, MailSource.BOUNCE),
            requiretls_redact=self.params.main.requiretls_redact_dsn,
        )

    def _postmaster(self, address: str) -> str:
        """A *_notice_recipient value, qualified ("postmaster" when empty)."""
        return qualify(address or "postmaster", self.myorigin)

    def _final_notices(
        self, message: QueueMessage, records: RecordWriter, now: float, *, removing: bool
    ) -> None:
        """Queue the notices final verdicts ask for, and record them as notified. When none
        was asked for and the message is `removing` (its file goes next), the ``notified``
        records are not written: they would say only that no notice is due, which a crash
        before the removal has the next pass find out again (the state a crash just before
        this finish leaves already)."""
        env = message.envelope
        state = message.state
        states, notified = state.states, state.notified
        # One pass: the final verdicts not yet notified (`todo`), the bounces among them,
        # and the deliveries whose recipient asked to be told of success.
        todo: list[int] = []
        bounced: list[int] = []
        sent: list[int] = []
        for i, rcpt in enumerate(env.recipients):
            verdict = states.get(i)
            if verdict is None or verdict.status is DeliveryStatus.DEFERRED or i in notified:
                continue
            todo.append(i)
            if verdict.status is DeliveryStatus.BOUNCED:
                bounced.append(i)
            elif (
                verdict.status is DeliveryStatus.SENT
                # Most mail asks for nothing: no Flag arithmetic (Python code) for it.
                and rcpt.dsn_notify is not Notify.NONE
                and rcpt.dsn_notify & Notify.SUCCESS
                # The next hop took NOTIFY=SUCCESS along: the notice is its to send.
                and verdict.action != ACTION_FORWARDED
            ):
                sent.append(i)
        if not todo:
            return
        sender = env.sender
        if bounced:
            wants_failure = [
                i for i in bounced if _wants(env.recipients[i].dsn_notify, Notify.FAILURE)
            ]
            self._bounce_notices(message, bounced, wants_failure, now)
        success = bool(sent) and bool(sender) and sender.lower() != self.double_bounce.lower()
        if success:
            spec = self._spec(MessageClass.SUCCESS, "", sender, now)
            self._notify(message, sent, spec, "sender delivery status notification")
        crash_point("notice-before-record")
        if bounced or success or not removing:
            for i in todo:
                records.append(notified_record(i))
                notified.add(i)
        else:
            notified.update(todo)

    def _probe_report(self, message: QueueMessage, records: RecordWriter, now: float) -> None:
        """The report of an address probe (sendmail -bv), once every recipient has its
        verdict: one message to the sender about all of them, as Postfix's trace service
        sends it (bounce_trace_service.c): from <>; about a message from <> to the
        postmaster only with ``2bounce`` in notify_classes; never about a double bounce."""
        env = message.envelope
        state = message.state
        todo = [i for i in range(len(env.recipients)) if i not in state.notified]
        if not todo:
            return
        queue_id = env.queue_id
        sender, to = "", env.sender
        if env.sender.lower() == self.double_bounce.lower():
            to = ""
        elif not env.sender and "2bounce" in self.classes:
            sender = self.double_bounce
            to = self._postmaster(self.params.main.double_bounce_notice_recipient)
        if to:
            spec = self._spec(MessageClass.VERIFY, sender, to, now)
            indexes = list(range(len(env.recipients)))
            self._notify(message, indexes, spec, "sender delivery status notification")
        else:
            kind = "double-bounce" if env.sender else "single-bounce"
            self.log.info(BOUNCE, f"{queue_id}: not sending the probe report of a {kind} message")
        crash_point("notice-before-record")
        for i in todo:
            records.append(notified_record(i))
            state.notified.add(i)

    def _bounce_notices(
        self, message: QueueMessage, bounced: list[int], wants: list[int], now: float
    ) -> None:
        env = message.envelope
        queue_id = env.queue_id
        if env.sender.lower() == self.double_bounce.lower():
            self.log.warning(BOUNCE, f"{queue_id}: undeliverable postmaster notification discarded")
            return
        if not env.sender:
            if "2bounce" in self.classes:
                to = self._postmaster(self.params.main.double_bounce_notice_recipient)
                spec = self._spec(MessageClass.POSTMASTER, self.double_bounce, to, now)
                self._notify(message, bounced, spec, "postmaster non-delivery notification")
            return
        if wants:
            spec = self._spec(MessageClass.BOUNCE, "", env.sender, now)
            self._notify(message, wants, spec, "sender non-delivery notification")
        if "bounce" in self.classes:
            to = self._postmaster(self.params.main.bounce_notice_recipient)
            spec = self._spec(MessageClass.POSTMASTER, self.double_bounce, to, now)
            self._notify(message, bounced, spec, "postmaster non-delivery notification")

    def _delay_warning(
        self,
        message: QueueMessage,
        records: RecordWriter,
        pending: list[int],
        now: float,
        age: float,
    ) -> None:
        env = message.envelope
        warn_after = self.params.main.delay_warning_time
        if warn_after <= 0 or age < warn_after or message.state.warned:
            return
        if not env.sender or env.message_class.is_notice:
            return
        if env.sender.lower() == self.double_bounce.lower():
            return
        rows = [i for i in pending if _wants(env.recipients[i].dsn_notify, Notify.DELAY)]
        for i in pending:
            if i not in message.state.states:
                reason = "delivery not yet attempted"
                message.state.states[i] = RecipientState(
                    DeliveryStatus.DEFERRED, "4.0.0", reason, "none", now, "delayed"
                )
        until = env.arrival_time + self.params.main.maximal_queue_lifetime
        if rows:
            spec = self._spec(MessageClass.DELAY, "", env.sender, now)
            spec = replace(spec, retry_until=until)
            self._notify(message, rows, spec, "sender delay notification")
        if "delay" in self.classes:
            to = self._postmaster(self.params.main.delay_notice_recipient)
            spec = self._spec(MessageClass.DELAY, self.double_bounce, to, now)
            spec = replace(spec, retry_until=until)
            self._notify(message, pending, spec, "postmaster delay notification")
        records.append(warned_record())
        message.state.warned = True


def _wants(notify: Notify, flag: Notify) -> bool:
    """RFC 3461: no NOTIFY means FAILURE,DELAY; NEVER means nothing."""
    if notify == Notify.NONE:
        return flag is Notify.FAILURE or flag is Notify.DELAY
    return bool(notify & flag)

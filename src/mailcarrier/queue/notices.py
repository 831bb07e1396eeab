"""Delivery status notifications (RFC 3464) written straight into the queue, as Postfix's
bounce(8) does: non-delivery, delay and success notices, and postmaster copies.

`write_notice()` streams one ``multipart/report; report-type=delivery-status`` message into
a new queue file: a human-readable part, the ``message/delivery-status`` part (per-message
fields Reporting-MTA, X-Postfix-Queue-ID, X-Postfix-Sender, Arrival-Date, Original-Envelope-Id;
per-recipient fields Final-Recipient, Original-Recipient, Action, Status, Remote-MTA,
Diagnostic-Code, Last-Attempt-Date, Will-Retry-Until) and the returned message: in full as
``message/rfc822``, or only its header as ``text/rfc822-headers`` when RET=HDRS, when it is
larger than bounce_size_limit, and for delay, success and postmaster notices and the report
of an address probe (sendmail -bv: Action "deliverable" or "undeliverable" per recipient, as
Postfix's trace service reports it). The original content is copied in bounded chunks,
never loaded. A notice keeps the SMTPUTF8 flag of its
message and adds what autodetection of the "bounce" class finds (delivery/autodetect.py).
A notice about a message sent with REQUIRETLS is redacted as RFC 8689 section 5 allows
(Postfix's requiretls_redact_dsn, on by default): the body of the message is left out (only
its header is returned, as with RET=HDRS) and the notice goes without REQUIRETLS, since the
way back to the sender may lack it; with requiretls_redact_dsn off it keeps what RET asks for
and is itself sent with REQUIRETLS. A message with "TLS-Required: No" gets a notice with the
same header (and flag), as Postfix's bounce(8) does.
Who gets which notice is decided by the scheduler (finalize.py); this module only writes.
Every value written into a header, a delivery-status field or a line of the text part (reply
texts, addresses, host names, myhostname, mail_name, ENVID) goes through `field_text()`
(queue/headers.py): no control character in it can end a field early and start a new
header, field or MIME part.
"""

from __future__ import annotations

import email.utils
import os
from dataclasses import dataclass
from typing import BinaryIO, Final

from mailcarrier.delivery.autodetect import ContentScan, wants_smtputf8
from mailcarrier.queue.headers import boundary_text, field_text
from mailcarrier.queue.qfile import (
    MAX_ENVELOPE,
    Envelope,
    MessageClass,
    QueueRecipient,
    RecipientState,
)
from mailcarrier.queue.spool import MessageWriter, QueueMessage, Spool
from mailcarrier.status import DeliveryStatus, remote_mta, server_reply

__all__ = ["NoticeSpec", "diagnostic_code", "probe_action", "remote_mta", "write_notice"]

_CHUNK: Final = 65536
_SUBJECTS: Final = {
    MessageClass.BOUNCE: "Undelivered Mail Returned to Sender",
    MessageClass.DELAY: "Delayed Mail (still being retried)",
    MessageClass.SUCCESS: "Successful Mail Delivery Report",
    MessageClass.POSTMASTER: "Postmaster Copy: Undelivered Mail",
    MessageClass.VERIFY: "Mail Delivery Status Report",
}
_INTRO: Final = {
    MessageClass.BOUNCE: (
        "Your message could not be delivered to one or more recipients.\n"
        "The reasons are listed below; the delivery report and the returned\n"
        "message are attached.\n"
    ),
    MessageClass.DELAY: (
        "Delivery of your message to the recipients below is delayed.\n"
        "Nothing needs to be done: delivery will be retried until {until}.\n"
    ),
    MessageClass.SUCCESS: (
        "Your message was delivered to the recipients below, as requested\n"
        "by the delivery status notification option (NOTIFY=SUCCESS).\n"
    ),
    MessageClass.POSTMASTER: (
        "A message could not be delivered to one or more recipients.\n"
        "This is a copy for the postmaster; the message header is attached.\n"
    ),
    MessageClass.VERIFY: (
        "This is the report of the address verification you asked for (sendmail -bv).\n"
        "No message was sent: each recipient below was tried only as far as RCPT TO,\n"
        "and the result says what would happen to mail for it.\n"
    ),
}


@dataclass(frozen=True, slots=True)
class NoticeSpec:
    kind: MessageClass
    sender: str  # envelope sender of the notice ("" except for postmaster copies)
    recipient: str
    reporting_mta: str
    mail_name: str
    bounce_size_limit: int
    now: float
    retry_until: float = 0.0
    # smtputf8_autodetect_classes lists "bounce" (delivery/autodetect.py); a notice also
    # keeps the SMTPUTF8 flag of the message it is about, as Postfix's bounce(8) does.
    smtputf8_autodetect: bool = False
    # requiretls_redact_dsn: see the module docstring.
    requiretls_redact: bool = True


def diagnostic_code(diagnostic: str) -> str:
    """RFC 3464 Diagnostic-Code: ``smtp; <reply>`` when a server said it, else
    ``X-Postfix; <local reason>`` as Postfix writes it."""
    reply = server_reply(diagnostic)
    if reply is not None:
        return f"smtp; {reply}"
    return f"X-Postfix; {diagnostic}"


def probe_action(state: RecipientState) -> str:
    """An address probe's verdict as Postfix's trace service words it (the DSN Action)."""
    return "deliverable" if state.status is DeliveryStatus.SENT else "undeliverable"


def _orcpt(rcpt: QueueRecipient) -> str:
    if rcpt.dsn_orcpt:
        kind, _, addr = rcpt.dsn_orcpt.partition(";")
        return f"{kind.strip()};{addr.strip()}" if addr else f"rfc822;{kind}"
    return f"rfc822;{rcpt.orig_address}" if rcpt.orig_address else ""


def _date(when: float) -> str:
    return email.utils.formatdate(when, localtime=True)


def _dsn_part(
    original: Envelope, spec: NoticeSpec, rows: list[tuple[QueueRecipient, RecipientState]]
) -> list[str]:
    """The fields of the message/delivery-status part (RFC 3464 2.2, 2.3), one per line."""
    lines = [
        f"Reporting-MTA: dns; {field_text(spec.reporting_mta)}",
        f"X-Postfix-Queue-ID: {field_text(original.queue_id)}",
        f"X-Postfix-Sender: rfc822; {field_text(original.sender)}",
        f"Arrival-Date: {_date(original.arrival_time)}",
    ]
    if original.dsn_envid:
        lines.append(f"Original-Envelope-Id: {field_text(original.dsn_envid)}")
    for rcpt, state in rows:
        lines.append("")
        lines.append(f"Final-Recipient: rfc822; {field_text(rcpt.address)}")
        orcpt = _orcpt(rcpt)
        if orcpt:
            lines.append(f"Original-Recipient: {field_text(orcpt)}")
        action = {
            MessageClass.DELAY: "delayed",
            MessageClass.SUCCESS: state.action or "relayed",
            MessageClass.VERIFY: probe_action(state),
        }.get(spec.kind, "failed")
        lines.append(f"Action: {field_text(action)}")
        lines.append(f"Status: {field_text(state.dsn)}")
        mta = remote_mta(state.relay)
        if mta:
            lines.append(f"Remote-MTA: dns; {field_text(mta)}")
        lines.append(f"Diagnostic-Code: {field_text(diagnostic_code(state.diagnostic))}")
        lines.append(f"Last-Attempt-Date: {_date(state.when)}")
        if spec.kind is MessageClass.DELAY and spec.retry_until:
            lines.append(f"Will-Retry-Until: {_date(spec.retry_until)}")
    return lines


def _copy_original(writer: MessageWriter, message: QueueMessage, headers_only: bool) -> None:
    env = message.envelope
    with open(message.path, "rb") as f:
        f.seek(env.content_offset)
        if not headers_only:
            writer.copy_from(f.read, env.size)
            return
        _copy_header_section(writer, f, env.size)


def _copy_header_section(writer: MessageWriter, f: BinaryIO, size: int) -> None:
    left = size
    while left > 0:
        line = f.readline(min(left, _CHUNK))
        if not line:
            return
        left -= len(line)
        if line in (b"\n", b"\r\n"):
            return
        writer.write(line)


def _notice_header(spec: NoticeSpec, queue_id: str, boundary: str, cte: str) -> list[str]:
    """The notice's header section, ending with its empty line."""
    host = field_text(spec.reporting_mta)
    return [
        f"From: MAILER-DAEMON@{host} (Mail Delivery System)",
        f"Subject: {_SUBJECTS[spec.kind]}",
        f"To: {field_text(spec.recipient)}",
        "Auto-Submitted: auto-replied",
        f"Date: {_date(spec.now)}",
        f"Message-Id: <{queue_id}@{host}>",
        "MIME-Version: 1.0",
        "Content-Type: multipart/report; report-type=delivery-status;",
        f'\tboundary="{boundary}"',
        f"Content-Transfer-Encoding: {cte}",
        "",
    ]


def _notice_smtputf8(spec: NoticeSpec, original: Envelope, header: list[str]) -> bool:
    """The notice's SMTPUTF8 flag: the message's own, or what autodetection of the "bounce"
    class finds in the notice's envelope and header (delivery/autodetect.py)."""
    scan = ContentScan(MAX_ENVELOPE)
    scan.feed(("\n".join(header) + "\n").encode("utf-8"))
    return wants_smtputf8(
        spec.smtputf8_autodetect,
        addresses=(spec.sender, spec.recipient),
        header_utf8=scan.header_utf8,
        explicit=original.smtputf8,
    )


def write_notice(
    spool: Spool,
    message: QueueMessage,
    indexes: list[int],
    spec: NoticeSpec,
) -> str:
    """Queue one notice about `indexes` of `message`; returns the notice's queue ID."""
    original = message.envelope
    rows = [(original.recipients[i], message.state.states[i]) for i in indexes]
    redact = original.requiretls and spec.requiretls_redact  # RFC 8689 section 5
    headers_only = (
        spec.kind is not MessageClass.BOUNCE
        or original.dsn_ret == "HDRS"
        or redact
        or (spec.bounce_size_limit > 0 and original.size > spec.bounce_size_limit)
    )
    queue_id = spool.new_id()
    boundary = f"{queue_id}.{os.getpid()}/{boundary_text(field_text(spec.reporting_mta))}"
    cte = "8bit" if original.encoding == "8bit" and not headers_only else "7bit"
    header = _notice_header(spec, queue_id, boundary, cte)
    if original.tls_required_no:
        header.insert(-1, "TLS-Required: No")
    envelope = Envelope(
        queue_id=queue_id,
        sender=spec.sender,
        recipients=(QueueRecipient(spec.recipient, spec.recipient),),
        arrival_time=spec.now,
        encoding=original.encoding if not headers_only else "7bit",
        smtputf8=_notice_smtputf8(spec, original, header),
        message_class=spec.kind,
        requiretls=original.requiretls and not spec.requiretls_redact,
        tls_required_no=original.tls_required_no,
    )
    with spool.create(envelope) as writer:
        head = [
            *header,
            "This is a MIME-encapsulated message.",
            "",
            f"--{boundary}",
            "Content-Description: Notification",
            "Content-Type: text/plain; charset=utf-8",
            "",
            f"This is the mail system at host {field_text(spec.reporting_mta)}"
            f" ({field_text(spec.mail_name)}).",
            "",
            _INTRO[spec.kind].format(until=_date(spec.retry_until)),
        ]
        for rcpt, state in rows:
            verdict = f"{probe_action(state)}: " if spec.kind is MessageClass.VERIFY else ""
            head.append(f"<{field_text(rcpt.address)}>: {verdict}{field_text(state.diagnostic)}")
        head += ["", f"--{boundary}", "Content-Description: Delivery report"]
        head += ["Content-Type: message/delivery-status", ""]
        head += _dsn_part(original, spec, rows)
        head += ["", f"--{boundary}"]
        if spec.kind is MessageClass.VERIFY:
            head += ["Content-Description: Message Headers"]
            head += ["Content-Type: text/rfc822-headers", ""]
        elif headers_only:
            head += ["Content-Description: Undelivered Message Headers"]
            head += ["Content-Type: text/rfc822-headers", ""]
        else:
            head += ["Content-Description: Undelivered Message", "Content-Type: message/rfc822"]
            head += [f"Content-Transfer-Encoding: {cte}", ""]
        writer.write(("\n".join(head) + "\n").encode("utf-8"))
        _copy_original(writer, message, headers_only)
        writer.write(f"\n--{boundary}--\n".encode())
        return writer.commit()

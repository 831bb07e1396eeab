"""Turn one mail transaction's raw replies into recipient verdicts, as Postfix's smtp_rcpt.c
and smtp_proto.c do, and build the envelope that transaction sends.

Order matters and follows Postfix: a rejected MAIL FROM marks every recipient; a rejected
RCPT is final at once (whatever happens later on the connection); a rejected DATA marks the
accepted recipients; the final-dot reply marks them (SMTP: one reply for all; LMTP: one
each). An address probe (`mark_probe`) ends at the RCPT replies: they are the verdicts.
Recipients left unmarked after a lost connection are returned with the verdict that goes
with them, for the next server or the final deferral. trouble.py words each verdict.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from mailcarrier.content.pipeline import ContentPlan
from mailcarrier.delivery.recipients import RecipientTracker
from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.delivery.trouble import Verdict, reply_verdict, soften, transport_verdict
from mailcarrier.protocol.address import orcpt_for
from mailcarrier.protocol.commands import XFORWARD_UNAVAILABLE, RcptTo
from mailcarrier.protocol.ehlo import Capabilities
from mailcarrier.protocol.reply import Reply
from mailcarrier.protocol.stages import Stage
from mailcarrier.status import DeliveryStatus, fast_init
from mailcarrier.transport.records import Envelope, TransactionResult

__all__ = [
    "Leftover",
    "build_envelope",
    "eightbitmime_verdict",
    "mark_probe",
    "mark_replies",
    "mark_transaction",
    "mime_8bit_ok",
    "orcpt_for",
    "xforward_attributes",
]


@fast_init
@dataclass(frozen=True, slots=True)
class Leftover:
    """What unmarked recipients carry to the next server (or to their final deferral)."""

    verdict: Verdict
    relay: str
    # The connection's use count when a session was reached (1 for a new one); 0 when no
    # connection was made (DNS, connect and pre-connect TLS failures).
    conn_use: int = 0
    # The site failed (Postfix smtp_site_fail, smtp_sess_fail, smtp_stream_except): no
    # session, a refused or broken one. A deferral for it is reported as the hop status.
    site: bool = False


def _utf8_mail(request: DeliveryRequest) -> bool:
    """Postfix's SMTPUTF8_FLAG_ALL for the ORCPT type: the request flag, or UTF-8 in the
    envelope sender or any recipient of the request."""
    return (
        request.smtputf8
        or not request.sender.isascii()
        or not all(r.address.isascii() for r in request.recipients)
    )


def xforward_attributes(request: DeliveryRequest) -> tuple[tuple[str, str], ...]:
    """Postfix XFORWARD_README attributes of the original client, in Postfix's order;
    ``[UNAVAILABLE]`` for what the request does not know. SOURCE is LOCAL or REMOTE, from
    the address rewriting context; IDENT the queue ID the message was received under."""
    source = {"local": "LOCAL", "remote": "REMOTE"}.get(request.rewrite_context, "")
    values = (
        ("NAME", request.client_name),
        ("ADDR", request.client_addr),
        ("PORT", request.client_port),
        ("PROTO", request.client_proto),
        ("HELO", request.client_helo),
        ("IDENT", request.log_ident or request.queue_id),
        ("SOURCE", source),
    )
    return tuple((name, value or XFORWARD_UNAVAILABLE) for name, value in values)


def build_envelope(
    request: DeliveryRequest,
    tracker: RecipientTracker,
    pending: Sequence[int],
    size: int,
    *,
    xforward: bool = False,
    dummy_auth: bool = False,
    smtputf8_enable: bool = True,
    probe_data: bool = False,
) -> Envelope:
    """The envelope of one transaction. `xforward`: smtp_send_xforward_command; `dummy_auth`:
        AUTH=<> on MAIL (smtp_send_dummy_mail_auth with SASL enabled); the session sends either
        only when the server announced XFORWARD or AUTH. With `smtputf8_enable` off no derived
        ORCPT is of the "utf-8" type (Postfix then raises no SMTPUTF8 flag at all). `probe_data`:
    an address probe goes as far as DATA (smtp_address_verify_target = data)."""
    recipients = tracker.recipients
    rcpts = []
    utf8: bool | None = None  # found when first needed: queued mail carries its ORCPTs
    for i in pending:  # a loop, not a generator: once per message
        recipient = recipients[i]
        orcpt = recipient.dsn_orcpt
        if not orcpt and recipient.orig_address:
            if utf8 is None:
                utf8 = smtputf8_enable and _utf8_mail(request)
            orcpt = orcpt_for("", recipient.orig_address, utf8=utf8)
        rcpts.append(
            RcptTo(recipient.address, notify=recipient.dsn_notify.wire(), orcpt=orcpt, index=i)
        )
    return Envelope(
        sender=request.sender,
        recipients=tuple(rcpts),
        size=size,
        body="8BITMIME" if request.encoding == "8bit" else "",
        smtputf8=request.smtputf8,
        ret=request.dsn_ret,
        envid=request.dsn_envid,
        xforward=xforward_attributes(request) if xforward else (),
        auth="" if dummy_auth else None,
        probe=request.probe,
        probe_data=request.probe and probe_data,
    )


def mime_8bit_ok(caps: Capabilities) -> bool:
    """The server takes 8-bit content: 8BITMIME, or SMTPUTF8 without 8BITMIME (Postfix treats
    that as 8BITMIME: "our primary mission is to deliver mail")."""
    return caps.eightbitmime or caps.smtputf8


def eightbitmime_verdict(plan: ContentPlan, caps: Capabilities, namaddr: str) -> Verdict | None:
    """8bit content, a server without 8BITMIME, and conversion disabled: RFC 6152 3 forbids
    sending it, so try the next server and then bounce with 5.6.3 (RFC 3463: conversion
    required but not supported). Postfix itself sends the 8-bit content anyway here. Content
    nobody declared (encoding "") is not known to be 8-bit: it is sent, as Postfix does."""
    if plan.encoding != "8bit" or not plan.disable_conversion or mime_8bit_ok(caps):
        return None
    return Verdict(
        DeliveryStatus.BOUNCED,
        "5.6.3",
        "message has 8-bit content and MIME output conversion is disabled, but no server "
        f"was found that supports 8BITMIME. The last attempted server was {namaddr}",
    )


def _all_accepted(replies: list[Reply | None]) -> bool:
    for reply in replies:  # noqa: SIM110 - a loop, not all() over a generator: hot path
        if reply is None or reply.code // 100 != 2:
            return False
    return True


def mark_transaction(
    result: TransactionResult,
    pending: Sequence[int],
    namaddr: str,
    relay: str,
    *,
    lmtp: bool,
    soft_bounce: bool,
    final: bool,
    mark: Callable[[int, Verdict], None],
) -> Leftover | None:
    """Mark every recipient whose fate the transaction decided; describe the rest.

    The usual outcome (every recipient accepted, the content taken) is marked without the
    general walk of `mark_replies`, which comes to the same marks (tests/delivery/
    test_outcome.py holds the two together over random reply vectors)."""
    dot = result.dot
    if (
        not lmtp
        and result.error is None
        and result.content_error is None
        and len(dot) == 1
        and dot[0] is not None
        and dot[0].code // 100 == 2
        and result.data is not None
        and result.data.code == 354
        and (result.mail is None or result.mail.code // 100 == 2)
        and len(result.rcpt) == len(pending)
        and _all_accepted(result.rcpt)
    ):
        sent = reply_verdict(namaddr, dot[0], Stage.DOT)
        for i in pending:
            mark(i, sent)
        return None
    return mark_replies(
        result,
        pending,
        namaddr,
        relay,
        lmtp=lmtp,
        soft_bounce=soft_bounce,
        final=final,
        mark=mark,
    )


def mark_replies(
    result: TransactionResult,
    pending: Sequence[int],
    namaddr: str,
    relay: str,
    *,
    lmtp: bool,
    soft_bounce: bool,
    final: bool,
    mark: Callable[[int, Verdict], None],
) -> Leftover | None:
    """The general walk of a transaction's replies, as Postfix's smtp_proto.c and
    smtp_rcpt.c mark recipients. (Longer than ~60 lines: the order of its steps, MAIL,
    each RCPT, content errors, DATA, the replies to the dot, a lost connection, is the
    marking rule, and reads best in one place.)

    A soft failure of the whole transaction (4xx to MAIL, DATA or the final dot, a 421
    anywhere, a lost connection) leaves the recipients for the next server unless this is
    the final one, as Postfix's smtp_bulk_fail() does. A 4xx to one recipient's RCPT is
    that recipient's final deferral for this attempt (issue 4: it does not move delivery on).
    """

    def verdict_for(stage: Stage, reply: Reply) -> Verdict:
        return reply_verdict(namaddr, reply, stage, soft_bounce=soft_bounce)

    def bulk(stage: Stage, reply: Reply, targets: Sequence[int]) -> Leftover | None:
        return _fail_all(verdict_for(stage, reply), targets, relay, final, mark)

    if result.mail is not None and result.mail.code // 100 != 2:
        return bulk(Stage.MAIL, result.mail, pending)
    done: set[int] = set()
    for pos, reply in enumerate(result.rcpt):
        if reply is None or reply.code // 100 == 2:
            continue
        if reply.code == 421:
            # The server is going away: nobody not yet marked can be delivered here.
            return bulk(
                Stage.RCPT, reply, [pending[p] for p in range(len(pending)) if p not in done]
            )
        mark(pending[pos], verdict_for(Stage.RCPT, reply))
        done.add(pos)
    accepted = result.accepted
    if result.content_error is not None:
        # Postfix smtp_mime_fail(): the content cannot be sent (MIME nesting beyond the
        # limit while converting); the transaction was abandoned without the final dot.
        # A 4.x.x content error (a table lookup problem mid-DATA) defers instead.
        error = result.content_error
        status = DeliveryStatus.DEFERRED if error.dsn[:1] == "4" else DeliveryStatus.BOUNCED
        failed = Verdict(status, error.dsn, error.text)
        for pos in accepted:
            mark(pending[pos], soften(failed) if soft_bounce else failed)
        return None
    if result.data is not None and result.data.code != 354 and accepted:
        return bulk(Stage.DATA, result.data, [pending[pos] for pos in accepted])
    marked = _mark_dot(result, pending, accepted, lmtp, verdict_for, mark)
    if marked is None:
        dot = result.dot[0]
        assert dot is not None
        # RFC 3030: with BDAT the content's replies answer a "BDAT command".
        return bulk(Stage.BDAT if result.bdat else Stage.DOT, dot, [pending[p] for p in accepted])
    if result.error is not None:
        return Leftover(transport_verdict(result.error), relay, site=True)
    if all(pos in marked for pos in accepted):
        return None
    # An LMTP server that sent fewer replies than it accepted recipients.
    return Leftover(
        Verdict(
            DeliveryStatus.DEFERRED,
            "4.5.0",
            f"lost reply from host {namaddr} for some recipients after end of data",
        ),
        relay,
    )


def _fail_all(
    verdict: Verdict,
    targets: Sequence[int],
    relay: str,
    final: bool,
    mark: Callable[[int, Verdict], None],
) -> Leftover | None:
    """A failure of the whole transaction for `targets` (Postfix smtp_mesg_fail()): a
    soft one leaves them for the next server unless this is the final one."""
    if not verdict.final and not final:
        return Leftover(verdict, relay)
    for i in targets:
        mark(i, verdict)
    return None


def mark_probe(
    result: TransactionResult,
    pending: Sequence[int],
    namaddr: str,
    relay: str,
    *,
    soft_bounce: bool,
    final: bool,
    mark: Callable[[int, Verdict], None],
    data_target: bool = False,
) -> Leftover | None:
    """The verdicts of an address probe (`Envelope.probe`), as Postfix's smtp_proto.c gives
    them for a trace-only request: each recipient is marked at its RCPT reply, a 2xx as its
    success with the reply as the diagnostic (smtp_rcpt_done()), anything else as the same
    failure as for a message (smtp_rcpt_fail()). A refused MAIL and a 421 fail everyone not
    yet marked, as for a message; the final RSET decides nothing. Recipients whose RCPT was
    never answered (a lost connection) are left over for the next server. With `data_target`
    (smtp_address_verify_target = data) an accepted recipient waits for the reply to DATA:
    354 is its success (with 2.0.0 and that reply), anything else fails the accepted ones as
    for a message."""

    def verdict_for(stage: Stage, reply: Reply) -> Verdict:
        return reply_verdict(namaddr, reply, stage, soft_bounce=soft_bounce)

    if result.mail is not None and result.mail.code // 100 != 2:
        return _fail_all(verdict_for(Stage.MAIL, result.mail), pending, relay, final, mark)
    unanswered: list[int] = []
    accepted: list[int] = []
    for pos, reply in enumerate(result.rcpt):
        if reply is None:
            unanswered.append(pending[pos])
        elif reply.code == 421:
            # The server is going away: nobody not yet marked can be verified here (replies
            # come in order, so all of them are at `pos` and after).
            rest = pending[pos:]
            return _fail_all(verdict_for(Stage.RCPT, reply), rest, relay, final, mark)
        elif data_target and reply.code // 100 == 2:
            accepted.append(pending[pos])
        else:
            mark(pending[pos], verdict_for(Stage.RCPT, reply))
    if accepted and not unanswered:
        return _mark_probe_data(result, accepted, namaddr, relay, verdict_for, final, mark)
    if not unanswered:
        return None
    # Only a transport error leaves an RCPT unanswered once MAIL was taken (the session
    # sends every RCPT after an accepted MAIL, and reads every reply it can).
    assert result.error is not None
    return Leftover(transport_verdict(result.error), relay, site=True)


def _mark_probe_data(
    result: TransactionResult,
    accepted: list[int],
    namaddr: str,
    relay: str,
    verdict_for: Callable[[Stage, Reply], Verdict],
    final: bool,
    mark: Callable[[int, Verdict], None],
) -> Leftover | None:
    """A probe's accepted recipients by the reply to DATA (see `mark_probe`)."""
    data = result.data
    if data is None:
        assert result.error is not None  # no reply to DATA: the connection failed
        return Leftover(transport_verdict(result.error), relay, site=True)
    if data.code // 100 == 3:
        for i in accepted:
            mark(i, Verdict(DeliveryStatus.SENT, "2.0.0", data.text))
        return None
    return _fail_all(verdict_for(Stage.DATA, data), accepted, relay, final, mark)


def _mark_dot(
    result: TransactionResult,
    pending: Sequence[int],
    accepted: list[int],
    lmtp: bool,
    verdict_for: Callable[[Stage, Reply], Verdict],
    mark: Callable[[int, Verdict], None],
) -> set[int] | None:
    """The accepted recipients the reply (SMTP) or replies (LMTP, RFC 2033 4.2) to the end
    of the content marked; None when an SMTP server refused the content (a bulk verdict)."""
    marked: set[int] = set()
    if not result.dot:
        return marked
    stage = Stage.BDAT if result.bdat else Stage.DOT
    first = result.dot[0]
    if not lmtp and first is not None and first.code // 100 != 2:
        return None
    for pos in accepted:
        # SMTP: one reply for all; LMTP: one per accepted recipient.
        reply = first if not lmtp else result.dot[pos] if pos < len(result.dot) else None
        if reply is not None:
            mark(pending[pos], verdict_for(stage, reply))
            marked.add(pos)
    return marked

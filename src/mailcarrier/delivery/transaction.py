"""One mail transaction on an open session, and what it means for each recipient.

The envelope for this server (SIZE limit, smtp_generic_maps, SMTPUTF8 or A-labels, 8BITMIME
downgrade, CHUNKING), the transaction itself (transport/session.py), then the verdicts: the
replies to MAIL, RCPT, DATA and the final dot mark recipients through outcome.py with
trouble.py's wording (for an address probe, the replies to MAIL and RCPT alone). A message
that asked for REQUIRETLS is checked before MAIL FROM (requiretls_step.py). What is
left unmarked comes back as a `Leftover` for the next server. Postfix's smtp_proto.c and
smtp_rcpt.c; the agent (agent.py) calls this for fresh and for cached sessions alike.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from mailcarrier.delivery.outcome import (
    Leftover,
    build_envelope,
    eightbitmime_verdict,
    mark_probe,
    mark_transaction,
    mime_8bit_ok,
)
from mailcarrier.delivery.requiretls_step import check_before_mail
from mailcarrier.delivery.smtputf8 import smtputf8_envelope
from mailcarrier.delivery.state import ContentFactory, DeliveryState
from mailcarrier.delivery.trouble import Verdict, size_verdict, soften
from mailcarrier.log import LogSink
from mailcarrier.protocol.ehlo import Capabilities
from mailcarrier.status import ACTION_FORWARDED, DeliveryStatus
from mailcarrier.transport.connection import Peer
from mailcarrier.transport.records import Envelope, TransactionResult
from mailcarrier.transport.session import Session

__all__ = ["run_transaction", "success_action"]


async def run_transaction(
    job: DeliveryState,
    session: Session,
    peer: Peer,
    final: bool,
    *,
    clock: Callable[[], float],
    log: LogSink,
    reset_first: bool = False,
) -> Leftover | None:
    """One transaction for the recipients still pending; None when nothing is left over
    for another server (everyone marked, or a dead cached session: see `reset_first`)."""
    tracker = job.tracker
    pending = tracker.pending()
    if job.fleet is not None and pending:
        # Fleet mode: the destination's fleet-wide rate, spent as the message is assigned
        # to this connection; over it, the rest of the request waits in the queue.
        job.busy = await job.fleet.admit(job.request.transport, job.request.nexthop)
        if job.busy is not None:
            if not job.busy.error:  # an error is counted by the gate (agent.py)
                job.tally.fleet("rate", "denied")
            return None
    conn_use = session.transactions + 1
    caps = session.proto.capabilities
    action_if_sent = success_action(job, session)
    relay = peer.relay
    attempt = job.attempt

    def mark(i: int, verdict: Verdict) -> None:
        delays = attempt.delays(clock())
        action = action_if_sent if verdict.status is DeliveryStatus.SENT else ""
        tracker.mark(i, verdict, relay=relay, delays=delays, conn_use=conn_use, action=action)

    limit = caps.size_limit
    if limit and job.size > limit:
        # RFC 1870 6.1: do not send a message the server has said it will not take.
        verdict = size_verdict(job.size, limit, peer.namaddr, soft_bounce=job.soft_bounce)
        for i in pending:
            mark(i, verdict)
        return None
    if job.generic is not None:  # network generic maps: asked now, on the loop
        await job.generic.prefetch(
            [job.request.sender, *(job.request.recipients[i].address for i in pending)]
        )
        if job.plan is not None:
            await job.generic.prefetch_header(job.plan)
    prepared = _prepare(job, caps, peer, pending)
    if isinstance(prepared, Leftover):
        return replace(prepared, conn_use=conn_use)
    if isinstance(prepared, Verdict):
        # This server cannot take the message as it is (SMTPUTF8, 8BITMIME): the next
        # one may; at the last, the recipients have their verdict.
        if not final:
            return Leftover(prepared, relay, conn_use)
        verdict = soften(prepared) if job.soft_bounce else prepared
        for i in pending:
            mark(i, verdict)
        return None
    envelope, factory = prepared
    if session.requiretls:
        refused = _requiretls(job, session, caps, peer, log)
        if isinstance(refused, Verdict):
            if not final:
                return Leftover(refused, relay, conn_use)
            verdict = soften(refused) if job.soft_bounce else refused
            for i in pending:
                mark(i, verdict)
            return None
        envelope = refused(envelope)
    result = await session.transaction(envelope, factory, reset_first=reset_first)
    if result.xforward:
        _warn_xforward(result, peer, job.process, log)
    if result.reset_failed:
        return None  # a dead cached session: nobody is marked, the caller goes on
    if envelope.probe:
        leftover = mark_probe(
            result,
            pending,
            peer.namaddr,
            relay,
            soft_bounce=job.soft_bounce,
            final=final,
            mark=mark,
            data_target=envelope.probe_data,
        )
    else:
        leftover = mark_transaction(
            result,
            pending,
            peer.namaddr,
            relay,
            lmtp=job.profile.lmtp,
            soft_bounce=job.soft_bounce,
            final=final,
            mark=mark,
        )
    return None if leftover is None else replace(leftover, conn_use=conn_use)


def _requiretls(
    job: DeliveryState, session: Session, caps: Capabilities, peer: Peer, log: LogSink
) -> Verdict | Callable[[Envelope], Envelope]:
    """RFC 8689 before MAIL FROM (requiretls_step.py): a 5.7.30 verdict for a server that
    cannot take the message, else what the envelope becomes (REQUIRETLS on MAIL FROM, or
    RET=HDRS for a server without it); the requiretls feature goes to the tls= field."""
    queue_id = job.request.queue_id
    verdict, send, feature = check_before_mail(session, caps, peer, queue_id, job.process, log)
    if feature is not None and job.agent.params.log_tls_feature_status:
        job.tracker.tls_status = f"{session.tls_status or 'none'}/{feature.text}"
    if verdict is not None:
        return verdict
    if send:
        return lambda envelope: replace(envelope, requiretls=True)
    # Postfix: "limit content exposure in bounce" from a server without REQUIRETLS.
    return lambda envelope: replace(envelope, ret="HDRS")


def _warn_xforward(result: TransactionResult, peer: Peer, process: str, log: LogSink) -> None:
    """Postfix warns about a refused XFORWARD and goes on with MAIL."""
    for reply in result.xforward:
        if reply.code // 100 != 2:
            log.warning(
                process, f"host {peer.namaddr} said: {reply.text} (in reply to XFORWARD command)"
            )


def _prepare(
    job: DeliveryState, caps: Capabilities, peer: Peer, pending: list[int]
) -> tuple[Envelope, ContentFactory] | Leftover | Verdict:
    """The envelope and content for this server; a `Leftover` when a table failed (the
    next server, whichever, gets the recipients), a `Verdict` when this server cannot take
    the message and another one might."""
    profile = job.profile
    envelope = build_envelope(
        job.request,
        job.tracker,
        pending,
        job.size,
        xforward=profile.send_xforward,
        dummy_auth=profile.dummy_auth,
        smtputf8_enable=profile.smtputf8_enable,
        probe_data=profile.probe_data,
    )
    if job.generic is not None:  # smtp_generic_maps: see generic.py
        mapped = job.generic.envelope(envelope, peer.namaddr, job.request.queue_id)
        if isinstance(mapped, Verdict):
            return Leftover(mapped, peer.relay)
        envelope = mapped
    # SMTPUTF8 (RFC 6531) or A-label domains: see smtputf8.py. An all-ASCII envelope
    # that asks for no SMTPUTF8 goes out as it is, whatever the server: skip the call
    # (and its copy of the envelope) in that case, the one of nearly every message.
    if job.request.smtputf8 or envelope.smtputf8 or not _ascii_addresses(envelope):
        utf8 = smtputf8_envelope(
            envelope, job.request.smtputf8, caps, peer.namaddr, enabled=profile.smtputf8_enable
        )
        if isinstance(utf8, Verdict):
            return utf8
        envelope = utf8
    plan = job.plan
    if plan is None:
        return envelope, job.factory
    # 8BITMIME downgrade (RFC 6152): see content/pipeline.py.
    eightbit_ok = mime_8bit_ok(caps)
    if plan.encoding != "7bit" and not eightbit_ok:
        eightbit = eightbitmime_verdict(plan, caps, peer.namaddr)
        if eightbit is not None:
            return eightbit
    downgrade = plan.downgrade_for(eightbit_ok)
    if downgrade:  # Postfix omits SIZE= when it converts (the size changes)
        envelope = replace(envelope, size=None)
    # CHUNKING (RFC 3030) behind smtp_use_chunking: BDAT takes the content as it is,
    # without dot-stuffing. An address probe sends no content at all.
    bdat = profile.use_chunking and caps.chunking and not envelope.probe
    if bdat != envelope.bdat:
        envelope = replace(envelope, bdat=bdat)
    if downgrade or bdat:
        return envelope, lambda: plan.chunks(downgrade=downgrade, dot_stuff=not bdat)
    return envelope, plan.plain_chunks


def _ascii_addresses(envelope: Envelope) -> bool:
    """Whether the sender and every recipient address are all-ASCII."""
    if not envelope.sender.isascii():
        return False
    for rcpt in envelope.recipients:  # noqa: SIM110 - no generator on the hot path
        if not rcpt.address.isascii():
            return False
    return True


def success_action(job: DeliveryState, session: Session) -> str:
    """Postfix smtp_rcpt_done(): who reports a NOTIFY=SUCCESS delivery."""
    if session.proto.capabilities.dsn:
        return ACTION_FORWARDED
    if job.profile.assume_final:
        return "delivered"
    return "relayed"

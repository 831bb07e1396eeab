"""Failure classification: the one place that decides sent, deferred, bounced or try-next.

Postfix's smtp_trouble.c in Python. Inputs are what the session observed (a reply and the
stage it answered, a `TransportError`, a refused handshake); outputs are `Verdict` values with
Postfix's wording ("host h[a] said: 550 5.1.1 ... (in reply to RCPT TO command)") and an RFC
3463 code (the server's, or X.0.0 from the reply class when it sent none). `soft_bounce`
turns every would-be bounce into a deferral with a 4.x.x code, as in Postfix (`soften`); such
a verdict says so (`soft_bounced`), and its line is logged ``status=SOFTBOUNCE`` as bounce.c
logs it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from mailcarrier.errors import TransportError
from mailcarrier.protocol.reply import Reply
from mailcarrier.protocol.stages import Stage
from mailcarrier.status import DeliveryStatus, fast_init

__all__ = [
    "Verdict",
    "handshake_verdict",
    "local_verdict",
    "reply_verdict",
    "size_verdict",
    "soften",
    "transport_verdict",
]


@fast_init
@dataclass(frozen=True, slots=True)
class Verdict:
    status: DeliveryStatus
    dsn: str
    diagnostic: str
    soft_bounced: bool = False  # a bounce that soft_bounce turned into this deferral

    @property
    def final(self) -> bool:
        """True for sent and bounced: no other server will be tried for this recipient."""
        return self.status is not DeliveryStatus.DEFERRED


def _status_for(code: int) -> DeliveryStatus:
    if code // 100 == 2:
        return DeliveryStatus.SENT
    if code // 100 == 5:
        return DeliveryStatus.BOUNCED
    return DeliveryStatus.DEFERRED


# The DSN class of a reply class (anything else counts as a 4xx).
_DSN_CLASS = {2: "2", 4: "4", 5: "5"}


def _dsn_for(reply: Reply) -> str:
    dsn = reply.dsn
    # A 4xx reply with a 5.x.x code (or the reverse) gets the class of the reply code.
    wanted = _DSN_CLASS.get(reply.code // 100, "4")
    return wanted + dsn[1:] if dsn[0] != wanted else dsn


def soften(verdict: Verdict) -> Verdict:
    """soft_bounce: a bounce becomes a deferral with a 4.x.x code, marked `soft_bounced`."""
    if verdict.status is not DeliveryStatus.BOUNCED:
        return verdict
    dsn = "4" + verdict.dsn[1:]
    return replace(verdict, status=DeliveryStatus.DEFERRED, dsn=dsn, soft_bounced=True)


def _apply_soft_bounce(verdict: Verdict, soft_bounce: bool) -> Verdict:
    return soften(verdict) if soft_bounce else verdict


def reply_verdict(
    namaddr: str, reply: Reply, stage: Stage, *, soft_bounce: bool = False
) -> Verdict:
    """A server reply to a command. 2xx: the reply text itself is the diagnostic."""
    status = _status_for(reply.code)
    if status is DeliveryStatus.SENT:
        return Verdict(status, _dsn_for(reply), reply.text)
    text = f"host {namaddr} said: {reply.text}"
    if stage.command_phrase:
        text += f" (in reply to {stage.command_phrase})"
    return _apply_soft_bounce(Verdict(status, _dsn_for(reply), text), soft_bounce)


def handshake_verdict(
    namaddr: str, reply: Reply, stage: Stage, *, skip_5xx_greeting: bool, soft_bounce: bool
) -> Verdict:
    """The server refused the session at the greeting or at EHLO/HELO/LHLO.

    Postfix words both "host h[a] refused to talk to me: <reply>". With
    smtp_skip_5xx_greeting a 5xx greeting is only a reason to try the next server (and, at
    the end, a deferral); without it, a 5xx greeting bounces at once.
    """
    text = f"host {namaddr} refused to talk to me: {reply.text}"
    status = _status_for(reply.code)
    if status is DeliveryStatus.SENT:  # a 2xx is not a refusal; never treat it as success
        return Verdict(DeliveryStatus.DEFERRED, "4.4.0", text)
    verdict = Verdict(status, _dsn_for(reply), text)
    if stage is Stage.GREETING and skip_5xx_greeting and verdict.final:
        # A soft error from here on, as smtp_helo() makes it (not soft_bounce's deferral).
        verdict = replace(verdict, status=DeliveryStatus.DEFERRED, dsn="4" + verdict.dsn[1:])
    return _apply_soft_bounce(verdict, soft_bounce)


def transport_verdict(error: TransportError) -> Verdict:
    """Network trouble always defers: 4.4.1 for connect failures, 4.4.2 otherwise."""
    dsn = "4.4.1" if error.stage is Stage.CONNECT else "4.4.2"
    return Verdict(DeliveryStatus.DEFERRED, dsn, error.reason)


def size_verdict(size: int, limit: int, namaddr: str, *, soft_bounce: bool = False) -> Verdict:
    """RFC 1870: the message is larger than the server's announced SIZE limit."""
    text = f"message size {size} exceeds size limit {limit} of server {namaddr}"
    return _apply_soft_bounce(Verdict(DeliveryStatus.BOUNCED, "5.3.4", text), soft_bounce)


def local_verdict(
    status: DeliveryStatus, dsn: str, text: str, *, soft_bounce: bool = False
) -> Verdict:
    return _apply_soft_bounce(Verdict(status, dsn, text), soft_bounce)

"""Setting a session up on an open connection, before its first transaction: the server's
per-address quirks, the greeting and EHLO/HELO/LHLO, STARTTLS with the TLS policy (or the
certificate of a wrapper-mode connection), and SASL authentication.

`SessionSetup.session()` makes the `Session` for a connection (None when a quirks table
failed); `prepare()` runs the steps and says how it went (`Prepared`): READY for a
transaction, DONE when the recipients were marked or left for the next server (each failure
worded by trouble.py, tls_step.py or auth_step.py, as Postfix's smtp_connect.c and
smtp_proto.c do), or RETRY when opportunistic TLS failed in the handshake and the same server
should be tried again in plaintext. The agent (agent.py) decides what follows.
"""

from __future__ import annotations

import enum
from collections.abc import Callable

from mailcarrier.delivery import auth_step
from mailcarrier.delivery.hop import Hop
from mailcarrier.delivery.outcome import Leftover
from mailcarrier.delivery.state import DeliveryState
from mailcarrier.delivery.tally import Tally
from mailcarrier.delivery.tls_job import TlsOutcome
from mailcarrier.delivery.tls_step import TlsJob, TlsResult, negotiate_tls
from mailcarrier.delivery.transcript import TranscriptReporter
from mailcarrier.delivery.trouble import Verdict, handshake_verdict, transport_verdict
from mailcarrier.errors import TransportError
from mailcarrier.log import LogSink
from mailcarrier.protocol.ehlo import discard_notice
from mailcarrier.protocol.stages import Stage
from mailcarrier.status import TlsSession
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.verify import Trust
from mailcarrier.transport.connection import Connection, Peer
from mailcarrier.transport.records import HandshakeFailure
from mailcarrier.transport.session import Session

__all__ = ["Prepared", "SessionSetup", "count_tls"]

_TLS_RESULTS = {
    TlsResult.PLAINTEXT: "plaintext",
    TlsResult.FAIL: "failed",
    TlsResult.RETRY_PLAINTEXT: "retry_plaintext",
}


def count_tls(tally: Tally, tls: TlsJob, peer: Peer, outcome: TlsOutcome) -> None:
    """Count the TLS policy applied to a server for the metrics (tally.py): the session's
    level (after a DANE downgrade) and result, and the DANE and MTA-STS results when the
    destination's policy has them."""
    if outcome.result is TlsResult.TLS:
        result = (outcome.trust or Trust.ANONYMOUS).value.lower()
    else:
        result = _TLS_RESULTS[outcome.result]
    tally.tls(outcome.level.value, result)
    policy = tls.policy(peer)
    if policy.level.is_dane:
        if outcome.result is TlsResult.FAIL:
            tally.dane("failed")
        elif outcome.result is TlsResult.TLS and outcome.level.is_dane:
            tally.dane("verified")
        else:
            tally.dane("no_usable_tlsa")
    if policy.sts_mode == "testing":
        tally.mta_sts("testing", "fail" if peer.relay in tls.sts_would_fail else "pass")
    elif policy.sts_mode:
        ok = outcome.result is TlsResult.TLS
        tally.mta_sts(policy.sts_mode, "pass" if ok else "fail")


class Prepared(enum.Enum):
    READY = "ready"  # a transaction may start
    DONE = "done"  # recipients marked, or the failure remembered for the next server
    RETRY = "retry"  # the same server again, in plaintext (opportunistic TLS failed)


class SessionSetup:
    """The steps between connect and the first MAIL FROM, for one agent."""

    __slots__ = ("_clock", "_log", "_transcripts", "_wallclock")

    def __init__(
        self,
        log: LogSink,
        *,
        clock: Callable[[], float],
        wallclock: Callable[[], float],
        transcripts: TranscriptReporter,
    ) -> None:
        self._log = log
        self._clock = clock
        self._wallclock = wallclock
        self._transcripts = transcripts

    def session(
        self, job: DeliveryState, conn: Connection, peer: Peer, final: bool
    ) -> Session | None:
        """The session for `conn`, with the options the server's address calls for; None
        (the connection dropped, the failure remembered) when the quirks table failed."""
        quirks = job.profile.quirks()
        options = quirks.session_options(job.options, peer, job.request.queue_id, job.quirk_answers)
        if isinstance(options, Verdict):  # smtp_discard_ehlo_keyword_address_maps failed
            conn.abort()
            job.site_failed(Leftover(options, peer.relay, 1, site=True), final, self._log)
            return None
        session = Session(conn, options)
        if self._transcripts.enabled:
            session.history = []
        return session

    async def prepare(
        self, job: DeliveryState, hop: Hop, session: Session, peer: Peer, final: bool
    ) -> Prepared:
        """Greeting, hello, TLS and AUTH (see the module docstring)."""
        conn = session.conn
        tls = hop.tls
        job.tracker.tls_session = None  # until this session's TLS step, if any
        if tls is not None:
            job.tracker.tls_status = tls.undecided_text(peer)  # Postfix 3.11 tls=
            # smtp_tls_wrappermode: judge the certificate before reading the greeting.
            if conn.tls:
                done = await self._apply_tls(job, tls, session, peer, final)
                if done is not None:
                    return done
        started = await self._hello(job, session, peer, final)
        if started is not Prepared.READY:
            return started
        # STARTTLS and the TLS policy: see tls_step.py (wrapper mode was judged above).
        if tls is not None and not conn.tls:
            done = await self._apply_tls(job, tls, session, peer, final)
            if done is not None:
                return done
        auth = await auth_step.authenticate(
            job.profile.settings,
            job.agent,
            session,
            peer,
            job.request,
            log=self._log,
            soft_bounce=job.soft_bounce,
            destination=hop.destination,
            memo=job.sasl_credentials,
            shared=job.fleet.shared(auth_step.SHARED_CACHE) if job.fleet is not None else None,
        )
        if auth is not None:
            self._failed(job, auth, peer, final)  # Postfix smtp_sess_fail()
            return Prepared.DONE
        return Prepared.READY

    async def _hello(
        self, job: DeliveryState, session: Session, peer: Peer, final: bool
    ) -> Prepared:
        """The greeting, the server's workarounds (quirks.py), and EHLO/HELO/LHLO."""
        try:
            greeting = await session.read_greeting()
            refused = None
            if greeting.code // 100 != 2:
                refused = HandshakeFailure(Stage.GREETING, greeting)
            else:
                request = job.request
                workarounds = job.profile.quirks().workarounds(
                    greeting,
                    peer,
                    queue_id=request.queue_id,
                    arrival_time=request.arrival_time,
                    now=self._wallclock,
                    answers=job.quirk_answers,
                )
                refused = await session.hello(workarounds)
        except TransportError as exc:
            session.broken = True
            leftover = Leftover(transport_verdict(exc), peer.relay, 1, site=True)
            job.site_failed(leftover, final, self._log)
            return Prepared.DONE
        if refused is not None:
            verdict = handshake_verdict(
                peer.namaddr,
                refused.reply,
                refused.stage,
                skip_5xx_greeting=job.agent.params.skip_5xx_greeting,
                soft_bounce=job.soft_bounce,
            )
            # A hard refusal (5xx greeting without smtp_skip_5xx_greeting, 5xx to HELO)
            # bounces now: only soft errors qualify for another server.
            self._failed(job, verdict, peer, final)
            return Prepared.DONE
        notice = discard_notice(session.options.discard_keywords)
        if notice:
            self._log.info(job.process, notice)
        return Prepared.READY

    async def _apply_tls(
        self, job: DeliveryState, tls: TlsJob, session: Session, peer: Peer, final: bool
    ) -> Prepared | None:
        """The TLS step (tls_step.py); None when the session goes on."""
        conn = session.conn
        wrapper = conn.tls  # implicit TLS: nothing read or sent yet
        outcome = await negotiate_tls(tls, session, peer, soft_bounce=job.soft_bounce)
        count_tls(job.tally, tls, peer, outcome)
        session.tls_verified = outcome.trust is Trust.VERIFIED
        session.tls_status = job.tracker.tls_status = tls.status_text(outcome)
        session.tls_session = job.tracker.tls_session = tls_session(session, outcome.trust)
        # For the REQUIRETLS check before MAIL FROM (requiretls_step.py).
        session.requiretls = tls.requiretls.action
        session.tls_matched = outcome.result is TlsResult.TLS and outcome.level.must_match
        if outcome.retry_plaintext:  # "may": the same server again, in plaintext
            session.broken = True
            return Prepared.RETRY
        if outcome.verdict is None:
            return None
        if wrapper:
            session.broken = True  # no QUIT before the greeting: just close
        if outcome.next_server:  # REQUIRETLS: 5.7.30 once no other server is left
            job.site_failed(Leftover(outcome.verdict, peer.relay, 1), final, self._log)
            return Prepared.DONE
        # Postfix does not throttle a destination for opportunistic TLS trouble.
        site = tls.policy(peer).level is not SecurityLevel.MAY
        self._failed(job, outcome.verdict, peer, final, site=site)
        return Prepared.DONE

    def _failed(
        self, job: DeliveryState, verdict: Verdict, peer: Peer, final: bool, *, site: bool = True
    ) -> None:
        """A session that reached the server failed: a final verdict (a bounce) marks the
        recipients now, a deferral is remembered for the next server (Postfix's
        smtp_site_fail and smtp_sess_fail)."""
        if verdict.final:
            job.mark_pending(verdict, peer.relay, self._clock(), 1)
        else:
            job.site_failed(Leftover(verdict, peer.relay, 1, site=site), final, self._log)


def tls_session(session: Session, trust: Trust | None) -> TlsSession | None:
    """The TLS session of `session` for the event records: None when it has none."""
    obj = session.conn.ssl_object
    cipher = obj.cipher() if obj is not None else None
    if obj is None or cipher is None:
        return None
    name, version, bits = cipher
    trust_name = trust.value if trust is not None else "Anonymous"
    return TlsSession(trust_name, obj.version() or version, name, bits)

"""The delivery agent: one request -> servers -> sessions -> one status per recipient.

`DeliveryAgent.deliver(request)` is Postfix's smtp(8) deliver_message(): for each destination
(the next hop, a relay list, then fallback relays; servers.py finds their addresses) try the
servers in order. A server that cannot be reached, refuses the session or drops it mid-way
moves the remaining recipients to the next server, up to `smtp_mx_session_limit` sessions per
destination; replies to MAIL, RCPT, DATA and the final dot mark recipients (outcome.py, with
trouble.py's wording). Addresses of one MX preference may be raced (RFC 8305) when
`smtp_happy_eyeballs` is on. Every recipient is marked exactly once and logged as it is.
Injected: settings, log sink, clocks, resolver; nothing global.

Split out: one transaction and its verdicts (transaction.py), connection reuse and cache
keys (reuse.py), mail-loop hand-off (handoff.py), and what a request carries with the
settings read once per transport (job.py).
"""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from typing import BinaryIO

from mailcarrier.config.settings import AgentSettings, Settings
from mailcarrier.content.stream import MessageFile
from mailcarrier.delivery.cache import ConnectionCache
from mailcarrier.delivery.generic import GenericMapper
from mailcarrier.delivery.handoff import hand_off
from mailcarrier.delivery.job import Attempt, Job, TransportProfile, content_size, open_content
from mailcarrier.delivery.outcome import Leftover
from mailcarrier.delivery.quirks import ServerQuirks
from mailcarrier.delivery.recipients import RecipientTracker
from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.delivery.reuse import SessionReuse
from mailcarrier.delivery.servers import ServerFinder, ServerList
from mailcarrier.delivery.status_filter import StatusFilter
from mailcarrier.delivery.tls_step import TlsClient, TlsJob, negotiate_tls, prepare_tls
from mailcarrier.delivery.transaction import run_transaction
from mailcarrier.delivery.transcript import (
    PROTOCOL,
    SessionTranscript,
    TranscriptHook,
    failure_code_class,
    recorded_classes,
)
from mailcarrier.delivery.trouble import (
    Verdict,
    handshake_verdict,
    soften,
    transport_verdict,
)
from mailcarrier.errors import TransportError
from mailcarrier.log import LogSink, NullLog, delivery_line
from mailcarrier.protocol.ehlo import discard_notice
from mailcarrier.routing.resolver import NativeLookup, Resolver
from mailcarrier.status import DeliveryResult, DeliveryStatus, HopStatus, RecipientStatus
from mailcarrier.tables.maps import Maps
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.verify import Trust
from mailcarrier.transport.connection import Connection, Peer, open_tcp, open_unix
from mailcarrier.transport.racing import race_connect
from mailcarrier.transport.session import Session

__all__ = ["DeliveryAgent"]

# Kept for callers that imported the names from here (now delivery/job.py).
_Job = Job
_Attempt = Attempt


class DeliveryAgent:
    """Delivers requests with one configuration. Reusable and safe for concurrent use."""

    def __init__(
        self,
        settings: Settings,
        *,
        log: LogSink | None = None,
        clock: Callable[[], float] = time.monotonic,
        wallclock: Callable[[], float] = time.time,
        resolver: Resolver | None = None,
        native: NativeLookup | None = None,
        rng: random.Random | None = None,
        cache: ConnectionCache | None = None,
        notify: TranscriptHook | None = None,
        _depth: int = 0,
    ) -> None:
        self.settings = settings
        # Postmaster transcripts (delivery/transcript.py): sessions record their
        # conversation only when `notify` is given and notify_classes asks for a class a
        # client session can raise.
        self.notify = notify
        self._transcript_classes = (
            recorded_classes(settings.params.notify_classes) if notify else frozenset()
        )
        self._double_bounce = settings.params.double_bounce_sender.lower().split("@", 1)[0]
        # Sessions kept between requests (Postfix's scache); None: every session is closed.
        self.cache = cache
        self.log: LogSink = log if log is not None else NullLog()
        self.clock = clock
        self.wallclock = wallclock
        self.resolver = resolver
        self.native = native
        self.rng = rng
        self._depth = _depth
        self._finders: dict[str, ServerFinder] = {}
        # Per transport: the settings every request reads (job.py), for `self.settings`.
        self._profiles: dict[str, TransportProfile] = {}
        self._quirks: dict[str, ServerQuirks] = {}
        self._generic: dict[str, GenericMapper] = {}
        self._status_maps: dict[str, Maps | None] = {}  # None: no filter
        self._tls = TlsClient()
        self._reuse = SessionReuse(self)

    # --- public -----------------------------------------------------------------------
    async def deliver(
        self,
        request: DeliveryRequest,
        *,
        on_status: Callable[[int, RecipientStatus], None] | None = None,
        log_lines: bool = True,
    ) -> DeliveryResult:
        """Deliver `request`; `on_status(index, status)` runs as each recipient is marked
        (before the next one), so a queue can record it durably at once."""
        profile = self._profile(request.transport)
        log = self.log
        # Nothing to format when the lines go nowhere (the API's default sink).
        log_lines = log_lines and type(log) is not NullLog
        on_mark: Callable[[int, RecipientStatus], None] | None = on_status
        if log_lines:
            resolution = profile.resolution

            def log_mark(index: int, status: RecipientStatus) -> None:
                if on_status is not None:
                    on_status(index, status)
                line = delivery_line(request.queue_id, status, resolution)
                log.info(request.transport, line)

            on_mark = log_mark
        tracker = RecipientTracker(
            request.recipients, on_mark, self._status_filter(request, profile)
        )
        content, opened = open_content(request)
        try:
            job = self._job(request, tracker, content, profile)
            await self._run(job)
        finally:
            if opened:
                content.close()
        return tracker.result(request.queue_id)

    def _profile(self, transport: str) -> TransportProfile:
        """The transport's settings, read once per `Settings` object."""
        profile = self._profiles.get(transport)
        if profile is None or profile.settings is not self.settings:
            profile = self._profiles[transport] = TransportProfile(self.settings, transport)
        return profile

    # --- content ----------------------------------------------------------------------
    def _job(
        self,
        request: DeliveryRequest,
        tracker: RecipientTracker,
        content: BinaryIO | MessageFile,
        profile: TransportProfile,
    ) -> Job:
        agent = profile.agent
        generic = self._generic_mapper(agent)
        plan = profile.content_plan(
            request,
            content,
            log=self.log,
            rewrite_header=generic.header_rewriter(request.queue_id) if generic else None,
        )
        return Job(
            plan=plan,
            generic=generic,
            request=request,
            agent=agent,
            options=profile.session_options(),
            tracker=tracker,
            attempt=Attempt(request, self.clock(), self.wallclock()),
            factory=plan.plain_chunks,
            size=content_size(request, content),
            soft_bounce=profile.soft_bounce,
            profile=profile,
        )

    # --- destinations -----------------------------------------------------------------
    async def _run(self, job: Job) -> None:
        finder: ServerFinder | None = None  # not needed while cached sessions serve
        domains: frozenset[str] | None = None
        loop = False
        dests = job.profile.destinations(job.request.nexthop)
        for n, destination in enumerate(dests):
            job.destination = destination.text
            job.dest_key = self._reuse.dest_key(job, destination)
            # The destination's TLS state, made when first needed: a session taken from the
            # cache is parked again under keys that include its TLS policy (reuse.py), which
            # does not need the whole state for a plaintext session.
            job.tls_maker = self._tls_maker(job, destination.text)
            await self._reuse.try_cached(job, job.dest_key)
            if not job.tracker.has_pending:
                return
            if finder is None:
                finder = self._finder(job.agent)
            if domains is None:
                domains = frozenset(
                    r.address.rpartition("@")[2].lower()
                    for r in job.request.recipients
                    if "@" in r.address
                )
            servers = await finder.find(destination, domains)
            for note in servers.notes:
                log = self.log.warning if note.level == "warning" else self.log.info
                log(job.process, note.text)
            last_destination = n == len(dests) - 1 or servers.final
            if servers.failure is not None:
                job.last = Leftover(servers.failure, "none", site=True)
                loop = servers.loop
            else:
                await self._try_servers(job, servers, last_destination)
            if not job.tracker.pending() or servers.final:
                break
        if not job.tracker.pending():
            return
        if loop and await hand_off(self, job):
            return
        last = job.last or Leftover(
            Verdict(DeliveryStatus.DEFERRED, "4.3.5", "no destination to deliver to"), "none"
        )
        verdict = soften(last.verdict) if job.soft_bounce else last.verdict
        if last.site and verdict.status is DeliveryStatus.DEFERRED:
            # Postfix's hop status: the queue manager's negative feedback (status.HopStatus).
            job.tracker.hop_status = HopStatus(verdict.dsn, verdict.diagnostic)
        self._mark_pending(job, verdict, last.relay, last.conn_use)

    def _tls_maker(self, job: Job, destination: str) -> Callable[[], TlsJob]:
        # Not a closure over `job`, which keeps the maker: no reference cycle per request.
        preactive_delay = self.wallclock() - job.request.arrival_time
        agent = job.agent

        def make() -> TlsJob:
            return self._tls.job(
                agent,
                destination,
                log=self.log,
                resolver=lambda: self._finder(agent).resolver,
                preactive_delay=preactive_delay,
            )

        return make

    def _status_filter(
        self, request: DeliveryRequest, profile: TransportProfile
    ) -> StatusFilter | None:
        """smtp_delivery_status_filter (lmtp_ for LMTP); None when it is empty."""
        agent = profile.agent
        try:
            maps = self._status_maps[agent.transport]
        except KeyError:
            opened = agent.open_maps("delivery_status_filter")
            maps = self._status_maps[agent.transport] = opened if opened else None
        if maps is None:
            return None
        process = request.transport
        name = agent.name("delivery_status_filter")
        return StatusFilter(maps, name, lambda text: self.log.warning(process, text))

    def _server_quirks(self, agent: AgentSettings) -> ServerQuirks:
        """Tables keyed by server address: discarded EHLO keywords, PIX (quirks.py)."""
        quirks = self._quirks.get(agent.transport)
        if quirks is None:
            process = agent.transport
            quirks = self._quirks[agent.transport] = ServerQuirks(
                agent,
                info=lambda text: self.log.info(process, text),
                warning=lambda text: self.log.warning(process, text),
            )
        return quirks

    def _generic_mapper(self, agent: AgentSettings) -> GenericMapper | None:
        """smtp_generic_maps (generic.py); None when it is empty."""
        mapper = self._generic.get(agent.transport)
        if mapper is None:
            process = agent.transport
            mapper = self._generic[agent.transport] = GenericMapper(
                agent, warning=lambda text: self.log.warning(process, text)
            )
        return mapper if mapper.enabled else None

    def _finder(self, agent: AgentSettings) -> ServerFinder:
        finder = self._finders.get(agent.transport)
        if finder is None:
            finder = ServerFinder(
                self.settings, agent, resolver=self.resolver, native=self.native, rng=self.rng
            )
            self._finders[agent.transport] = finder
        return finder

    # --- servers of one destination ---------------------------------------------------
    async def _try_servers(self, job: Job, servers: ServerList, last_destination: bool) -> None:
        limit = job.agent.params.mx_session_limit
        racing = self.settings.params.smtp_happy_eyeballs and not job.agent.is_lmtp
        delay = self.settings.params.smtp_happy_eyeballs_delay
        prefs = servers.preferences or (0,) * len(servers.peers)
        remaining = list(zip(servers.peers, prefs, strict=True))
        sessions = 0
        while remaining and job.tracker.pending():
            if limit and sessions >= limit:
                break
            group = [p for p, pref in remaining if pref == remaining[0][1]]
            families = {p.family for p in group}
            if racing and len(families) > 1:
                ready = []
                for p in group:  # each server's TLS policy (TLSA) before connecting
                    if await self._tls_refused(job, p, last_destination and len(remaining) == 1):
                        remaining = [(q, pref) for q, pref in remaining if q != p]
                    else:
                        ready.append(p)
                if not ready:
                    continue
                race = await race_connect(ready, lambda p: self._connect(job, p), delay=delay)
                for error in race.failed:
                    self._connect_failed(job, error)
                tried = set(ready) - set(race.untried)
                remaining = [(p, pref) for p, pref in remaining if p not in tried]
                conn, peer = race.connection, race.peer
            else:
                peer = remaining.pop(0)[0]
                # The TLS policy, TLSA records included, before connecting (or reusing).
                if await self._tls_refused(job, peer, last_destination and not remaining):
                    continue
                await self._reuse.try_cached(job, self._reuse.addr_key(job, peer))
                if not job.tracker.pending():
                    return
                try:
                    conn = await self._connect(job, peer)
                except TransportError as error:
                    self._connect_failed(job, error)
                    conn = None
            if conn is None or peer is None:
                continue
            sessions += 1
            final = last_destination and (not remaining or bool(limit and sessions >= limit))
            await self._use_server(job, conn, peer, final)

    async def _tls_refused(self, job: Job, peer: Peer, final: bool) -> bool:
        """The TLS policy of `peer` before connecting (tls_step.prepare_tls()): True when
        it defers this server (a TLSA lookup error, dane-only without usable TLSA records,
        a broken policy entry), which is then never contacted. Marked and logged as when
        the TLS step fails on an open connection. A server that never connected does not
        count against smtp_mx_session_limit, as in Postfix."""
        if job.tls is None:
            return False
        outcome = await prepare_tls(job.tls, peer)
        if outcome is None or outcome.verdict is None:
            return False
        job.tracker.tls_status = job.tls.status_text(outcome)
        if outcome.verdict.final:
            self._mark_pending(job, outcome.verdict, peer.relay)
        else:
            self._server_failed(job, Leftover(outcome.verdict, peer.relay, site=True), final)
        return True

    def _connect_failed(self, job: Job, error: TransportError) -> None:
        job.tracker.tls_status = ""  # no session, no TLS feature status
        self.log.info(job.process, error.reason)
        job.last = Leftover(transport_verdict(error), "none", site=True)

    async def _connect(self, job: Job, peer: Peer) -> Connection:
        timeout = job.agent.params.connect_timeout
        if peer.family == socket.AF_UNIX:
            return await open_unix(peer, timeout=timeout)
        p = job.agent.params
        bind = p.bind_address6 if peer.family == socket.AF_INET6 else p.bind_address
        wrapper = job.tls.wrapper_context(peer) if job.tls is not None else None  # implicit TLS
        if wrapper is not None:
            return await open_tcp(
                peer,
                timeout=timeout,
                bind_address=bind,
                ssl_context=wrapper[0],
                server_hostname=wrapper[1],
            )
        return await open_tcp(peer, timeout=timeout, bind_address=bind)

    async def _use_server(self, job: Job, conn: Connection, peer: Peer, final: bool) -> None:
        """Greeting, hello and one transaction on an open connection; then QUIT."""
        quirks = self._server_quirks(job.agent)
        options = quirks.session_options(job.options, peer, job.request.queue_id)
        if isinstance(options, Verdict):  # smtp_discard_ehlo_keyword_address_maps failed
            conn.abort()
            self._server_failed(job, Leftover(options, peer.relay, 1, site=True), final)
            return
        session = Session(conn, options)
        if self._transcript_classes:
            session.history = []
        quirks.watch_greeting(
            session,
            peer,
            queue_id=job.request.queue_id,
            arrival_time=job.request.arrival_time,
            now=self.wallclock,
        )
        try:
            if job.tls is not None:
                job.tracker.tls_status = job.tls.undecided_text(peer)  # Postfix 3.11 tls=
                # smtp_tls_wrappermode: judge the certificate before reading the greeting.
                if conn.tls and await self._apply_tls(job, session, conn, peer, final):
                    return
            try:
                refused = await session.start()
            except TransportError as exc:
                session.broken = True
                broken = Leftover(transport_verdict(exc), peer.relay, 1, site=True)
                self._server_failed(job, broken, final)
                return
            if refused is not None:
                verdict = handshake_verdict(
                    peer.namaddr,
                    refused.reply,
                    refused.stage,
                    skip_5xx_greeting=job.agent.params.skip_5xx_greeting,
                    soft_bounce=job.soft_bounce,
                )
                if verdict.final:
                    # A hard refusal (5xx greeting without smtp_skip_5xx_greeting, 5xx to
                    # HELO) bounces now: only soft errors qualify for another server.
                    self._mark_pending(job, verdict, peer.relay, 1)
                    return
                self._server_failed(job, Leftover(verdict, peer.relay, 1, site=True), final)
                return
            notice = discard_notice(session.options.discard_keywords)
            if notice:
                self.log.info(job.process, notice)
            # STARTTLS and the TLS policy: see tls_step.py (wrapper mode was judged above).
            if (
                job.tls is not None
                and not conn.tls
                and await self._apply_tls(job, session, conn, peer, final)
            ):
                return
            from mailcarrier.delivery import auth_step  # SASL (RFC 4954): see auth_step.py

            auth = await auth_step.authenticate(
                self.settings,
                job.agent,
                session,
                peer,
                job.request,
                log=self.log,
                soft_bounce=job.soft_bounce,
                destination=job.destination,
            )
            if auth is not None:
                if auth.final:  # Postfix smtp_sess_fail(): a hard error bounces at once
                    self._mark_pending(job, auth, peer.relay, 1)
                else:
                    self._server_failed(job, Leftover(auth, peer.relay, 1, site=True), final)
                return
            job.attempt.ready = self.clock()
            leftover = await self._transaction(job, session, peer, final)
            if leftover is not None:
                self._server_failed(job, leftover, final)
        finally:
            await self._reuse.release(job, session, peer)

    def report_transcript(self, job: Job, session: Session) -> None:
        """Hand the session's conversation to `notify` when it ran into an error class the
        postmaster asked for (Postfix's smtp_chat_notify()), then start a new one."""
        history = session.history
        if history is None or self.notify is None:
            return
        errors: set[str] = set()
        if session.protocol_errors:
            errors.add(PROTOCOL)
        for line in history:
            code = line[4:7]
            # A failure reply (4xx/5xx) of the kind smtp_check_code() reports.
            if line.startswith("In: ") and code.isdigit() and int(code) >= 400:
                errors.add(failure_code_class(int(code)))
        errors.discard("")
        wanted = frozenset(errors) & self._transcript_classes
        # Never a transcript about delivering a transcript (or any double-bounce mail): a
        # server that always misbehaves must not make notices breed.
        sender = job.request.sender.lower()
        if wanted and history and sender.split("@", 1)[0] != self._double_bounce:
            self.notify(
                SessionTranscript(
                    session.conn.peer.relay,
                    session.options.lmtp,
                    wanted,
                    tuple(history),
                    job.request.queue_id,
                )
            )
        session.history = []
        session.protocol_errors = 0

    async def _apply_tls(
        self, job: Job, session: Session, conn: Connection, peer: Peer, final: bool
    ) -> bool:
        """The TLS step (tls_step.py); True when the session must not go on."""
        assert job.tls is not None
        wrapper = conn.tls  # implicit TLS: nothing read or sent yet
        tls = await negotiate_tls(job.tls, session, peer, soft_bounce=job.soft_bounce)
        conn.tls_verified = tls.trust is Trust.VERIFIED
        conn.tls_status = job.tracker.tls_status = job.tls.status_text(tls)
        if tls.retry_plaintext:  # "may": the same server again, in plaintext
            session.broken = True
            try:
                retry = await self._connect(job, peer)
            except TransportError as error:
                self._connect_failed(job, error)
                return True
            await self._use_server(job, retry, peer, final)
            return True
        if tls.verdict is None:
            return False
        if wrapper:
            session.broken = True  # no QUIT before the greeting: just close
        if tls.verdict.final:
            self._mark_pending(job, tls.verdict, peer.relay, 1)
        else:
            # Postfix does not throttle a destination for opportunistic TLS trouble.
            site = job.tls.policy(peer).level is not SecurityLevel.MAY
            self._server_failed(job, Leftover(tls.verdict, peer.relay, 1, site=site), final)
        return True

    def _server_failed(self, job: Job, leftover: Leftover, final: bool) -> None:
        """Remember why; Postfix logs a non-final server's failure as it moves on."""
        job.last = leftover
        if not final:
            self.log.info(job.process, f"{job.request.queue_id}: {leftover.verdict.diagnostic}")

    def _mark_pending(self, job: Job, verdict: Verdict, relay: str, conn_use: int = 0) -> None:
        """Mark every recipient still pending; `conn_use` 0 when no connection was reached."""
        now = self.clock()
        delays = job.attempt.delays(now)
        for i in job.tracker.pending():
            job.tracker.mark(i, verdict, relay=relay, delays=delays, conn_use=conn_use)

    async def _transaction(
        self, job: Job, session: Session, peer: Peer, final: bool, *, reset_first: bool = False
    ) -> Leftover | None:
        """One mail transaction and its verdicts (transaction.py)."""
        return await run_transaction(
            job, session, peer, final, clock=self.clock, log=self.log, reset_first=reset_first
        )

"""The delivery agent: one request -> servers -> sessions -> one status per recipient.

`DeliveryAgent.deliver(request)` is Postfix's smtp(8) deliver_message(): for each destination
(the next hop, a relay list, then fallback relays; servers.py finds their addresses) try the
servers in order. A server that cannot be reached, refuses the session or drops it mid-way
moves the remaining recipients to the next server, up to `smtp_mx_session_limit` sessions per
destination; replies to MAIL, RCPT, DATA and the final dot mark recipients (outcome.py, with
trouble.py's wording). Addresses of one MX preference may be raced (RFC 8305) when
`smtp_happy_eyeballs` is on. Every recipient is marked exactly once and logged as it is.
Injected: settings, log sink, clocks, resolver; nothing global.
"""

from __future__ import annotations

import os
import random
import re
import socket
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, replace
from typing import BinaryIO

from mailcarrier.config.settings import AgentSettings, Settings
from mailcarrier.content.pipeline import ContentPlan, plan_from_settings
from mailcarrier.delivery.auth_step import session_identity
from mailcarrier.delivery.cache import ConnectionCache
from mailcarrier.delivery.outcome import (
    Leftover,
    build_envelope,
    eightbitmime_verdict,
    mark_transaction,
    mime_8bit_ok,
)
from mailcarrier.delivery.recipients import RecipientTracker
from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.delivery.servers import Destination, ServerFinder, ServerList, destinations
from mailcarrier.delivery.smtputf8 import smtputf8_envelope
from mailcarrier.delivery.status_filter import StatusFilter
from mailcarrier.delivery.tls_step import TlsClient, TlsJob, negotiate_tls
from mailcarrier.delivery.trouble import (
    Verdict,
    handshake_verdict,
    size_verdict,
    soften,
    transport_verdict,
)
from mailcarrier.errors import TransportError, UsageError
from mailcarrier.log import LogSink, NullLog, delivery_line
from mailcarrier.protocol.ehlo import discard_notice
from mailcarrier.routing.resolver import NativeLookup, Resolver
from mailcarrier.status import (
    ACTION_FORWARDED,
    Delays,
    DeliveryResult,
    DeliveryStatus,
    RecipientStatus,
)
from mailcarrier.tables.maps import Maps
from mailcarrier.tls.verify import Trust
from mailcarrier.transport.connection import Connection, Peer, open_tcp, open_unix
from mailcarrier.transport.racing import race_connect
from mailcarrier.transport.session import Session, SessionOptions

__all__ = ["DeliveryAgent"]

ContentFactory = Callable[[], Iterator[bytes]]


class _Attempt:
    """Timing for the delays= field of the recipients marked during one request."""

    def __init__(self, request: DeliveryRequest, start: float, wall: float) -> None:
        if request.qmgr_time:
            self.before_qmgr = max(0.0, request.qmgr_time - request.arrival_time)
            self.in_qmgr = max(0.0, wall - request.qmgr_time)
        else:
            self.before_qmgr = 0.0
            self.in_qmgr = max(0.0, wall - request.arrival_time)
        self.start = start
        self.ready: float | None = None

    def delays(self, now: float) -> Delays:
        if self.ready is None:
            return Delays(self.before_qmgr, self.in_qmgr, now - self.start, 0.0)
        return Delays(self.before_qmgr, self.in_qmgr, self.ready - self.start, now - self.ready)


@dataclass(slots=True)
class _Job:
    """Everything about one request that the server loop passes around."""

    request: DeliveryRequest
    agent: AgentSettings
    options: SessionOptions
    tracker: RecipientTracker
    attempt: _Attempt
    factory: ContentFactory
    size: int
    soft_bounce: bool
    last: Leftover | None = None
    # Connection-cache key of the destination being tried ("" = do not cache).
    dest_key: str = ""
    # The destination (of the next hop list or the fallback relays) being tried.
    destination: str = ""
    tls: TlsJob | None = None  # TLS policy state of the destination being tried
    plan: ContentPlan | None = None  # content transforms (content/pipeline.py)

    @property
    def process(self) -> str:
        return self.request.transport


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
        _depth: int = 0,
    ) -> None:
        self.settings = settings
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
        self._options: dict[str, SessionOptions] = {}
        self._discard_maps: dict[str, Maps] = {}
        self._status_maps: dict[str, Maps] = {}
        self._tls = TlsClient()

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
        resolution = self.settings.get_int("delay_logging_resolution_limit")

        def on_mark(index: int, status: RecipientStatus) -> None:
            if on_status is not None:
                on_status(index, status)
            if log_lines:
                line = delivery_line(request.queue_id, status, resolution)
                self.log.info(request.transport, line)

        tracker = RecipientTracker(request.recipients, on_mark, self._status_filter(request))
        with ExitStack() as stack:
            content = self._open_content(request, stack)
            job = self._job(request, tracker, content)
            await self._run(job)
        return tracker.result(request.queue_id)

    # --- content ----------------------------------------------------------------------
    def _open_content(self, request: DeliveryRequest, stack: ExitStack) -> BinaryIO:
        src = request.content
        if not isinstance(src, (str, os.PathLike)):
            if src.seekable():
                return src
            # A pipe can be read once; a second server needs it again: spool it to disk.
            spool = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 - closed by the stack
            while block := src.read(65536):
                spool.write(block)
            spool.flush()
            return spool
        try:
            return stack.enter_context(open(src, "rb"))
        except OSError as exc:
            raise UsageError(f"cannot open message file {src}: {exc.strerror}") from exc

    def _job(self, request: DeliveryRequest, tracker: RecipientTracker, content: BinaryIO) -> _Job:
        agent = self.settings.for_transport(request.transport)
        process = request.transport
        plan = plan_from_settings(
            agent,
            content,
            start=request.content_offset,
            length=request.size,
            encoding=request.encoding,
            queue_id=request.queue_id,
            info=lambda text: self.log.info(process, text),
            warning=lambda text: self.log.warning(process, text),
        )

        def factory() -> Iterator[bytes]:
            return plan.chunks(downgrade=False)

        return _Job(
            plan=plan,
            request=request,
            agent=agent,
            options=self._session_options(agent),
            tracker=tracker,
            attempt=_Attempt(request, self.clock(), self.wallclock()),
            factory=factory,
            size=_content_size(request, content),
            soft_bounce=self.settings.get_bool("soft_bounce"),
        )

    # --- destinations -----------------------------------------------------------------
    async def _run(self, job: _Job) -> None:
        finder = self._finder(job.agent)
        domains = frozenset(
            r.address.rpartition("@")[2].lower() for r in job.request.recipients if "@" in r.address
        )
        loop = False
        dests = destinations(job.request.nexthop, job.agent)
        for n, destination in enumerate(dests):
            job.destination = destination.text
            job.dest_key = self._dest_key(job, destination)
            await self._try_cached(job, job.dest_key)
            if not job.tracker.pending():
                return
            servers = await finder.find(destination, domains)
            job.tls = self._tls.job(
                job.agent,
                destination.text,
                log=self.log,
                resolver=lambda: finder.resolver,
                preactive_delay=self.wallclock() - job.request.arrival_time,
            )
            for note in servers.notes:
                log = self.log.warning if note.level == "warning" else self.log.info
                log(job.process, note.text)
            last_destination = n == len(dests) - 1 or servers.final
            if servers.failure is not None:
                job.last, loop = Leftover(servers.failure, "none"), servers.loop
            else:
                await self._try_servers(job, servers, last_destination)
            if not job.tracker.pending() or servers.final:
                break
        if not job.tracker.pending():
            return
        if loop and await self._hand_off(job):
            return
        last = job.last or Leftover(
            Verdict(DeliveryStatus.DEFERRED, "4.3.5", "no destination to deliver to"), "none"
        )
        verdict = soften(last.verdict) if job.soft_bounce else last.verdict
        self._mark_pending(job, verdict, last.relay)

    def _status_filter(self, request: DeliveryRequest) -> StatusFilter | None:
        """smtp_delivery_status_filter (lmtp_ for LMTP); None when it is empty."""
        agent = self.settings.for_transport(request.transport)
        maps = self._status_maps.get(agent.transport)
        if maps is None:
            maps = self._status_maps[agent.transport] = agent.open_maps("delivery_status_filter")
        if not maps:
            return None
        process = request.transport
        name = agent.name("delivery_status_filter")
        return StatusFilter(maps, name, lambda text: self.log.warning(process, text))

    def _peer_options(self, job: _Job, peer: Peer) -> SessionOptions:
        """smtp_discard_ehlo_keyword_address_maps: a list found for the server's address
        replaces smtp_discard_ehlo_keywords (Postfix smtp_helo())."""
        transport = job.agent.transport
        maps = self._discard_maps.get(transport)
        if maps is None:
            maps = job.agent.open_maps("discard_ehlo_keyword_address_maps")
            self._discard_maps[transport] = maps
        found = maps.find(peer.address) if maps else None
        if found is None:
            return job.options
        words = tuple(w for w in re.split(r"[\s,]+", found.value) if w)
        return replace(job.options, discard_keywords=words)

    def _session_options(self, agent: AgentSettings) -> SessionOptions:
        """Per transport, read once: the settings of an agent never change."""
        options = self._options.get(agent.transport)
        if options is None:
            options = self._options[agent.transport] = SessionOptions.from_settings(agent)
        return options

    def _finder(self, agent: AgentSettings) -> ServerFinder:
        finder = self._finders.get(agent.transport)
        if finder is None:
            finder = ServerFinder(
                self.settings, agent, resolver=self.resolver, native=self.native, rng=self.rng
            )
            self._finders[agent.transport] = finder
        return finder

    # --- servers of one destination ---------------------------------------------------
    async def _try_servers(self, job: _Job, servers: ServerList, last_destination: bool) -> None:
        limit = job.agent.int("mx_session_limit")
        racing = self.settings.get_bool("smtp_happy_eyeballs") and not job.agent.is_lmtp
        delay = self.settings.get_time("smtp_happy_eyeballs_delay")
        prefs = servers.preferences or (0,) * len(servers.peers)
        remaining = list(zip(servers.peers, prefs, strict=True))
        sessions = 0
        while remaining and job.tracker.pending():
            if limit and sessions >= limit:
                break
            group = [p for p, pref in remaining if pref == remaining[0][1]]
            families = {p.family for p in group}
            if racing and len(families) > 1:
                race = await race_connect(group, lambda p: self._connect(job, p), delay=delay)
                for error in race.failed:
                    self._connect_failed(job, error)
                tried = set(group) - set(race.untried)
                remaining = [(p, pref) for p, pref in remaining if p not in tried]
                conn, peer = race.connection, race.peer
            else:
                peer = remaining.pop(0)[0]
                await self._try_cached(job, self._addr_key(job, peer))
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

    def _connect_failed(self, job: _Job, error: TransportError) -> None:
        self.log.info(job.process, error.reason)
        job.last = Leftover(transport_verdict(error), "none")

    async def _connect(self, job: _Job, peer: Peer) -> Connection:
        timeout = job.agent.time("connect_timeout")
        if peer.family == socket.AF_UNIX:
            return await open_unix(peer, timeout=timeout)
        bind = job.agent.str("bind_address6" if peer.family == socket.AF_INET6 else "bind_address")
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

    async def _use_server(self, job: _Job, conn: Connection, peer: Peer, final: bool) -> None:
        """Greeting, hello and one transaction on an open connection; then QUIT."""
        session = Session(conn, self._peer_options(job, peer))
        try:
            try:
                refused = await session.start()
            except TransportError as exc:
                session.broken = True
                self._server_failed(job, Leftover(transport_verdict(exc), peer.relay), final)
                return
            if refused is not None:
                verdict = handshake_verdict(
                    peer.namaddr,
                    refused.reply,
                    refused.stage,
                    skip_5xx_greeting=job.agent.bool("skip_5xx_greeting"),
                    soft_bounce=job.soft_bounce,
                )
                if verdict.final:
                    # A hard refusal (5xx greeting without smtp_skip_5xx_greeting, 5xx to
                    # HELO) bounces now: only soft errors qualify for another server.
                    self._mark_pending(job, verdict, peer.relay)
                    return
                self._server_failed(job, Leftover(verdict, peer.relay), final)
                return
            notice = discard_notice(session.options.discard_keywords)
            if notice:
                self.log.info(job.process, notice)
            if job.tls is not None:  # STARTTLS and the TLS policy: see tls_step.py
                tls = await negotiate_tls(job.tls, session, peer, soft_bounce=job.soft_bounce)
                conn.tls_verified = tls.trust is Trust.VERIFIED
                if tls.retry_plaintext:  # "may": the same server again, in plaintext
                    session.broken = True
                    try:
                        retry = await self._connect(job, peer)
                    except TransportError as error:
                        self._connect_failed(job, error)
                        return
                    await self._use_server(job, retry, peer, final)
                    return
                if tls.verdict is not None:
                    if tls.verdict.final:
                        self._mark_pending(job, tls.verdict, peer.relay)
                    else:
                        self._server_failed(job, Leftover(tls.verdict, peer.relay), final)
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
                    self._mark_pending(job, auth, peer.relay)
                else:
                    self._server_failed(job, Leftover(auth, peer.relay), final)
                return
            job.attempt.ready = self.clock()
            leftover = await self._transaction(job, session, peer, final)
            if leftover is not None:
                self._server_failed(job, leftover, final)
        finally:
            await self._release(job, session, peer)

    # --- connection reuse -------------------------------------------------------------
    def _label(self, job: _Job, peer: Peer | None = None) -> str:
        """What must match for a cached session to be reused: the transport, the TLS policy
        and the SASL identity, so a session is never shared across policies or credentials
        (Postfix smtp_key.c). `peer` is None for the destination key."""
        parts = [job.agent.transport]
        if job.tls is not None and peer is not None:
            # The destination key already pins the TLS policy (it is chosen by next hop);
            # another destination reaching the same server may have another policy.
            parts.append(f"tls={job.tls.policy(peer)!r}")
        if job.agent.bool("sasl_auth_enable"):
            if peer is None:
                # Credentials follow the destination, and with sender-dependent
                # authentication the sender too: never share across senders.
                sender = (
                    job.request.sender if job.agent.bool("sender_dependent_authentication") else ""
                )
                parts.append(f"sasl=dest:{job.destination}:{sender}")
            else:
                parts.append(
                    "sasl="
                    + session_identity(self.settings, job.agent, job.request, peer, job.destination)
                )
        return "|".join(parts)

    def _dest_key(self, job: _Job, destination: Destination) -> str:
        if self.cache is None:
            return ""
        text = destination.text.lower()
        listed = {d.lower() for d in job.agent.list("connection_cache_destinations")}
        if not job.agent.bool("connection_cache_on_demand") and text not in listed:
            return ""
        return f"{self._label(job)}|dest:{text}"

    def _addr_key(self, job: _Job, peer: Peer) -> str:
        """By server address and port, whatever name led there (Postfix smtp_reuse.c)."""
        if not job.dest_key:
            return ""
        return f"{self._label(job, peer)}|addr:[{peer.address}]:{peer.port}"

    async def _try_cached(self, job: _Job, key: str) -> None:
        """Deliver over cached sessions under `key` while any is alive and recipients remain.

        A parked session is checked with RSET (pipelined with the transaction when the
        server allows it); a dead or refusing one is dropped silently: it is not a delivery
        failure, and the caller goes on to look up and connect as usual.
        """
        while key and self.cache is not None and job.tracker.pending():
            session = self.cache.take(key)
            if session is None:
                return
            peer = session.conn.peer
            job.attempt.ready = self.clock()
            try:
                leftover = await self._transaction(job, session, peer, False, reset_first=True)
                if leftover is not None:
                    self._server_failed(job, leftover, False)
            finally:
                await self._release(job, session, peer)

    def _tls_reuse_allowed(self, job: _Job, session: Session, peer: Peer) -> bool:
        """A TLS session is reused only with smtp_tls_connection_reuse or the policy's
        connection_reuse=yes, as in Postfix (which needs tlsproxy for it; we keep it here)."""
        if not session.conn.tls:
            return True
        return job.tls is not None and job.tls.policy(peer).connection_reuse

    async def _release(self, job: _Job, session: Session, peer: Peer) -> None:
        """Park the session for reuse when allowed, else QUIT."""
        if (
            self.cache is not None
            and job.dest_key
            and not session.broken
            and self._tls_reuse_allowed(job, session, peer)
            and session.transactions
            and (not session.needs_rset or await session.rset())
            and self.cache.park(session, (job.dest_key, self._addr_key(job, peer)))
        ):
            return
        await session.quit()

    def _server_failed(self, job: _Job, leftover: Leftover, final: bool) -> None:
        """Remember why; Postfix logs a non-final server's failure as it moves on."""
        job.last = leftover
        if not final:
            self.log.info(job.process, f"{job.request.queue_id}: {leftover.verdict.diagnostic}")

    def _mark_pending(self, job: _Job, verdict: Verdict, relay: str) -> None:
        now = self.clock()
        for i in job.tracker.pending():
            job.tracker.mark(i, verdict, relay=relay, delays=job.attempt.delays(now))

    async def _transaction(
        self, job: _Job, session: Session, peer: Peer, final: bool, *, reset_first: bool = False
    ) -> Leftover | None:
        pending = job.tracker.pending()
        conn_use = session.transactions + 1
        success_action = self._success_action(job, session)

        def mark(i: int, verdict: Verdict) -> None:
            delays = job.attempt.delays(self.clock())
            action = success_action if verdict.status is DeliveryStatus.SENT else ""
            job.tracker.mark(
                i, verdict, relay=peer.relay, delays=delays, conn_use=conn_use, action=action
            )

        limit = session.proto.capabilities.size_limit
        if limit and job.size > limit:
            # RFC 1870 6.1: do not send a message the server has said it will not take.
            verdict = size_verdict(job.size, limit, peer.namaddr, soft_bounce=job.soft_bounce)
            for i in pending:
                mark(i, verdict)
            return None
        envelope = build_envelope(
            job.request,
            job.tracker,
            pending,
            job.size,
            xforward=job.agent.bool("send_xforward_command"),
            dummy_auth=job.agent.bool("sasl_auth_enable")
            and job.agent.bool("send_dummy_mail_auth"),
        )
        # SMTPUTF8 (RFC 6531) or A-label domains: see smtputf8.py.
        utf8 = smtputf8_envelope(
            envelope, job.request.smtputf8, session.proto.capabilities, peer.namaddr
        )
        if isinstance(utf8, Verdict):
            if not final:
                return Leftover(utf8, peer.relay)
            for i in pending:
                mark(i, soften(utf8) if job.soft_bounce else utf8)
            return None
        envelope = utf8
        factory = job.factory
        if job.plan is not None:  # 8BITMIME downgrade (RFC 6152): see content/pipeline.py
            eightbit = eightbitmime_verdict(job.plan, session.proto.capabilities, peer.namaddr)
            if eightbit is not None:
                if not final:
                    return Leftover(eightbit, peer.relay)
                for i in pending:
                    mark(i, soften(eightbit) if job.soft_bounce else eightbit)
                return None
            plan = job.plan
            downgrade = plan.downgrade_for(mime_8bit_ok(session.proto.capabilities))
            if downgrade:  # Postfix omits SIZE= when it converts (the size changes)
                envelope = replace(envelope, size=None)
            # CHUNKING (RFC 3030) behind smtp_use_chunking: BDAT takes the content as it is,
            # without dot-stuffing.
            bdat = job.agent.bool("use_chunking") and session.proto.capabilities.chunking
            envelope = replace(envelope, bdat=bdat)
            factory = lambda: plan.chunks(downgrade=downgrade, dot_stuff=not bdat)  # noqa: E731
        result = await session.transaction(envelope, factory, reset_first=reset_first)
        for reply in result.xforward:
            if reply.code // 100 != 2:  # Postfix warns and goes on with MAIL
                self.log.warning(
                    job.process,
                    f"host {peer.namaddr} said: {reply.text} (in reply to XFORWARD command)",
                )
        if result.reset_failed:
            return None  # a dead cached session: nobody is marked, the caller goes on
        return mark_transaction(
            result,
            pending,
            peer.namaddr,
            peer.relay,
            lmtp=job.agent.is_lmtp,
            soft_bounce=job.soft_bounce,
            final=final,
            mark=mark,
        )

    def _success_action(self, job: _Job, session: Session) -> str:
        """Postfix smtp_rcpt_done(): who reports a NOTIFY=SUCCESS delivery."""
        if session.proto.capabilities.dsn:
            return ACTION_FORWARDED
        if job.agent.is_lmtp and self.settings.get_bool("lmtp_assume_final"):
            return "delivered"
        return "relayed"

    # --- mail loops -------------------------------------------------------------------
    async def _hand_off(self, job: _Job) -> bool:
        """A mail loop with best_mx_transport set: deliver the rest through that transport.

        mailcarrier's transports are smtp and lmtp, so best_mx_transport is written as
        ``transport:nexthop`` (like a transport_maps result), e.g. ``lmtp:unix:/run/lmtp``.
        """
        target = self.settings.get_str("best_mx_transport").strip()
        if not target or self._depth > 0:
            return False
        transport, _, nexthop = target.partition(":")
        if transport not in ("smtp", "lmtp") or not nexthop:
            self.log.warning(
                job.process,
                f'best_mx_transport: unsupported value "{target}" (want smtp:DEST or lmtp:DEST)',
            )
            return False
        pending = job.tracker.pending()
        sub = replace(
            job.request,
            transport=transport,
            nexthop=nexthop,
            recipients=tuple(job.request.recipients[i] for i in pending),
        )
        inner = DeliveryAgent(
            self.settings,
            log=self.log,
            clock=self.clock,
            wallclock=self.wallclock,
            resolver=self.resolver,
            native=self.native,
            rng=self.rng,
            cache=self.cache,
            _depth=self._depth + 1,
        )
        result = await inner.deliver(sub, log_lines=False)
        now = self.clock()
        for i, status in zip(pending, result.recipients, strict=True):
            job.tracker.mark(
                i,
                Verdict(status.status, status.dsn, status.diagnostic),
                relay=status.relay,
                delays=job.attempt.delays(now),
                conn_use=status.conn_use,
                action=status.action,
            )
        return True


def _content_size(request: DeliveryRequest, content: BinaryIO) -> int:
    if request.size is not None:
        return request.size
    try:
        return max(0, os.fstat(content.fileno()).st_size - request.content_offset)
    except (OSError, ValueError):
        pos = content.tell()
        end = content.seek(0, os.SEEK_END)
        content.seek(pos)
        return max(0, end - request.content_offset)

"""The delivery agent: one request -> destinations -> servers -> sessions -> a status each.

`DeliveryAgent.deliver(request)` is Postfix's smtp(8) deliver_message(): for each destination
of the next hop (a relay list, then the fallback relays; servers.py finds their addresses) try
the servers in order, up to `smtp_mx_session_limit` sessions per destination. A cached
session serves first (reuse.py); a server that cannot be reached, refuses the session or
drops it moves the recipients still pending to the next server; replies mark recipients
(transaction.py, outcome.py, with trouble.py's wording). Addresses of one MX preference may
be raced (RFC 8305) with `smtp_happy_eyeballs`. Every recipient is marked exactly once. An
address probe (`DeliveryRequest.probe`) takes the same path without its content, and its
delivery lines say ``deliverable`` or ``undeliverable``, as Postfix's do.

The three lifetimes of Postfix's smtp(8) are three objects: the request (`DeliveryState`,
state.py), the next hop (`Hop`, hop.py) and the connection (`Session`, transport/). Setting a
session up (greeting, HELO, STARTTLS and the TLS policy, AUTH) is setup.py's. Injected:
settings, log sink, clocks, resolver, connector and connection cache; nothing global.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import random
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.cache import ConnectionCache
from mailcarrier.delivery.handoff import hand_off
from mailcarrier.delivery.hop import Hop
from mailcarrier.delivery.leases import ConnectionLeases
from mailcarrier.delivery.outcome import Leftover
from mailcarrier.delivery.profile import TransportProfile
from mailcarrier.delivery.recipients import RecipientTracker
from mailcarrier.delivery.request import DeliveryRequest, StatusCallback
from mailcarrier.delivery.reuse import SessionReuse
from mailcarrier.delivery.servers import Destination, ServerList
from mailcarrier.delivery.setup import Prepared, SessionSetup, count_tls
from mailcarrier.delivery.state import Attempt, DeliveryState, content_size, open_content
from mailcarrier.delivery.sts_cache import SHARED_CACHE as STS_SHARED_CACHE
from mailcarrier.delivery.sts_cache import StsPolicies, fetch_settings
from mailcarrier.delivery.sts_fetch import FetchSettings
from mailcarrier.delivery.sts_step import (
    destination_policy,
    plain_policy,
    refine_policy,
    settled_policy,
)
from mailcarrier.delivery.tally import Tally
from mailcarrier.delivery.tls_job import TlsrptRecorder
from mailcarrier.delivery.tls_step import TlsClient, TlsJob, prepare_tls
from mailcarrier.delivery.tlsrpt_store import TlsrptStore
from mailcarrier.delivery.transaction import run_transaction
from mailcarrier.delivery.transcript import TranscriptHook, TranscriptReporter
from mailcarrier.delivery.trouble import Verdict, soften, transport_verdict
from mailcarrier.errors import ConfigError, MailcarrierError, TransportError
from mailcarrier.events import delivery_event
from mailcarrier.fleet import Busy, DeadDestination, FleetGate, Lease, LocalGate
from mailcarrier.log import LogSink, NullLog, delivery_line
from mailcarrier.routing.resolver import NativeLookup, Resolver
from mailcarrier.status import (
    Counts,
    DeliveryResult,
    DeliveryStatus,
    HopStatus,
    RecipientStatus,
)
from mailcarrier.tls.policy import TlsPolicy
from mailcarrier.transport.connection import Connection, Peer
from mailcarrier.transport.connector import Connector, SocketConnector
from mailcarrier.transport.racing import race_connect

__all__ = ["DeliveryAgent"]

# The process name of the TLSRPT store's warnings (it serves the smtp and lmtp transports).
_TLSRPT_PROCESS = "smtp"
# What hops start with (`DeliveryAgent._hop`), kept by profile, destination and RFC 8689
# flags: past this many, forgotten and found again.
_MAX_HOPS = 4096
_NOWHERE = Verdict(DeliveryStatus.DEFERRED, "4.3.5", "no destination to deliver to")
# The status word of an address probe's delivery line, by verdict.
_PROBE_WORDS = {
    DeliveryStatus.SENT: "deliverable",
    DeliveryStatus.DEFERRED: "undeliverable",
    DeliveryStatus.BOUNCED: "undeliverable",
}


class DeliveryAgent:
    """Delivers requests with one configuration. Reusable and safe for concurrent use.

    `hand_off` is False for the agent a mail loop hands its recipients to (handoff.py): it
    does not hand them on again."""

    # It runs in its caller's process: a request may carry the content's bytes that the
    # caller read already (DeliveryRequest.content_bytes; request.takes_content_bytes).
    takes_content_bytes: Final = True

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
        connector: Connector | None = None,
        hand_off: bool = True,
        sts: StsPolicies | None = None,
        sts_refresh: bool = False,
        tlsrpt: TlsrptRecorder | None = None,
        fleet: FleetGate | None = None,
    ) -> None:
        self.settings = settings
        self.log: LogSink = log if log is not None else NullLog()
        self.clock = clock
        self.wallclock = wallclock
        self.resolver = resolver
        self.native = native
        self.rng = rng
        # Sessions kept between requests (Postfix's scache); None: every session is closed.
        self.cache = cache
        self.notify = notify
        self.connector: Connector = connector if connector is not None else SocketConnector()
        # Fleet mode: leases and rates shared with other nodes (fleet/gate.py); LocalGate
        # for a single node.
        self.fleet: FleetGate = fleet if fleet is not None else LocalGate()
        self._fleet_job = not isinstance(self.fleet, LocalGate)
        # What the metrics count (tally.py), handed over with each result; the fleet
        # gate's errors as last seen.
        self.tally = Tally()
        self._fleet_errors = 0
        self._hand_off = hand_off
        main = settings.params
        # Postmaster transcripts (transcript.py): sessions record their conversation only
        # when `notify` is given and notify_classes asks for a class a client can raise.
        self._transcripts = TranscriptReporter(
            notify, main.notify_classes, main.double_bounce_sender
        )
        self._profiles: dict[tuple[str, str], TransportProfile] = {}
        # A hop's settled policy, whether a table decides alone, and its cache key (None:
        # made for each request), by profile, destination and RFC 8689 flags (`_hop`).
        self._hops: dict[
            tuple[TransportProfile, str, bool, bool], tuple[TlsPolicy | None, bool, str | None]
        ] = {}
        # smtp(8) opens its tables when it starts: the smtp transport's are opened now
        # (TransportProfile.open_tables), the other transports' with their profile.
        with contextlib.suppress(MailcarrierError):
            self._profile("smtp")
        self._tls = TlsClient()
        # MTA-STS policies (sts_cache.py): cached in data_directory, shared by the agent's
        # deliveries (and in fleet mode with the other nodes, through Redis); refreshed in
        # the background by long-running agents (`sts_refresh`).
        if sts is None and settings.params.smtp_mta_sts_enable:
            directory = Path(settings.params.data_directory) / "mta-sts"
            shared = self.fleet.shared(STS_SHARED_CACHE)
            sts = StsPolicies(directory, log=self.log, wallclock=wallclock, shared=shared)
        self.sts = sts
        # TLSRPT counts (tlsrpt_store.py), in data_directory when smtp_tlsrpt_enable is on.
        if tlsrpt is None and (main.smtp_tlsrpt_enable or main.lmtp_tlsrpt_enable):
            tlsrpt = TlsrptStore(Path(main.data_directory), warn=self._tlsrpt_warning)
        self.tlsrpt = tlsrpt
        self._sts_refresh = sts_refresh
        self._refresh_task: asyncio.Task[None] | None = None
        self._inflight = 0  # deliveries running (`close` waits for them)
        self._idle = asyncio.Event()
        # Fleet mode: each connection's lease, moved when another destination reuses it.
        self.leases = ConnectionLeases(self.fleet)
        self._reuse = SessionReuse(
            cache,
            settings,
            clock=clock,
            log=self.log,
            transcripts=self._transcripts,
            leases=self.leases if self._fleet_job else None,
        )
        self._setup = SessionSetup(
            self.log, clock=clock, wallclock=wallclock, transcripts=self._transcripts
        )

    # --- public -----------------------------------------------------------------------
    async def deliver(
        self,
        request: DeliveryRequest,
        *,
        on_status: StatusCallback | None = None,
        log_lines: bool = True,
    ) -> DeliveryResult:
        """Deliver `request`; `on_status(index, status)` runs as each recipient is marked
        (before the next one), so a queue can record it durably at once."""
        self._inflight += 1
        try:
            return await self._deliver(request, on_status, log_lines)
        finally:
            self._inflight -= 1
            if not self._inflight:
                self._idle.set()

    async def close(self) -> None:
        """An agent retired by a reload: once its deliveries in flight are done, end its
        cached sessions (their fleet leases are released), its fleet gate (its Redis
        connections and lease renewals) and its TLSRPT counts still in memory."""
        while self._inflight:
            self._idle.clear()
            await self._idle.wait()
        if self.cache is not None:
            await self.cache.close_all()
        await self.fleet.close()
        await self.close_tlsrpt()

    async def _deliver(
        self, request: DeliveryRequest, on_status: StatusCallback | None, log_lines: bool
    ) -> DeliveryResult:
        profile = self._profile(request.transport, request.service)
        if self._sts_refresh and self._refresh_task is None:
            self.start_sts_refresh()
        log = self.log
        # Nothing to format when the lines go nowhere (the API's default sink).
        log_lines = log_lines and type(log) is not NullLog
        on_mark: StatusCallback | None = on_status
        if log_lines:
            resolution = self.settings.params.delay_logging_resolution_limit
            probe = request.probe

            def log_mark(index: int, status: RecipientStatus) -> None:
                if on_status is not None:
                    on_status(index, status)
                # Postfix logs an address probe's verdict as "deliverable" or
                # "undeliverable" (verify_append(), trace_append()), never as a delivery.
                word = "" if not probe else _PROBE_WORDS[status.status]
                line = delivery_line(request.queue_id, status, resolution, word=word)
                attempt = request.recipients[index].attempt
                event = delivery_event(request.queue_id, status, attempt)
                log.event(request.transport, line, event)  # the line and its event record

            on_mark = log_mark
        tracker = RecipientTracker(request.recipients, on_mark, profile.status_filter())
        content, opened = open_content(request)
        busy: Busy | None = None
        try:
            generic = profile.generic()
            if generic is not None:
                generic = generic.for_request()  # its network answers: this request's
            rewrite = generic.header_rewriter(request.queue_id) if generic else None
            plan = profile.content_plan(request, content, rewrite_header=rewrite)
            job = DeliveryState(
                request=request,
                profile=profile,
                tracker=tracker,
                attempt=Attempt(request, self.clock(), self.wallclock()),
                factory=plan.plain_chunks,
                size=content_size(request, content),
                plan=plan,
                generic=generic,
                fleet=self.fleet if self._fleet_job else None,
                tally=self.tally,
            )
            await self._run(job)
            busy = job.busy
        finally:
            if opened:
                content.close()
        if busy is None:
            return tracker.result(request.queue_id, counts=self._counts())
        return tracker.result(
            request.queue_id, busy.retry_after, busy.unavailable, counts=self._counts()
        )

    def _counts(self) -> Counts:
        """What the agent counted since its previous result (tally.py)."""
        if self._fleet_job:
            errors = self.fleet.statistics().get("errors", 0)
            if errors > self._fleet_errors:
                self.tally.add("fleet", "server", "error", count=errors - self._fleet_errors)
            self._fleet_errors = errors
        return self.tally.drain()

    def start_sts_refresh(self) -> None:
        """Refresh cached MTA-STS policies before they expire, in a task of the running
        loop, until `stop_sts_refresh()` (long-running agents: the daemon's, Postfix's)."""
        if self.sts is None or self._refresh_task is not None:
            return
        profile = self._profile("smtp")

        def context() -> tuple[Resolver, FetchSettings] | None:
            resolver = profile.finder().resolver
            return None if resolver is None else (resolver, fetch_settings(profile.agent))

        self._refresh_task = asyncio.get_running_loop().create_task(self.sts.run_refresh(context))

    def stop_sts_refresh(self) -> None:
        if self._refresh_task is not None:
            self._refresh_task.cancel()

    async def close_tlsrpt(self) -> None:
        """Write the TLSRPT counts still in memory (tlsrpt_store.py batches them): the
        last step of a clean stop."""
        if self.tlsrpt is not None:
            await self.tlsrpt.aclose()

    def _tlsrpt_warning(self, text: str) -> None:
        self.log.warning(_TLSRPT_PROCESS, text)

    def _profile(self, transport: str, service: str = "") -> TransportProfile:
        """The profile of a transport, or of a master.cf service (its -o settings)."""
        label = (transport, service)
        profile = self._profiles.get(label)
        if profile is None:
            if service and service not in self.settings.services:
                raise ConfigError(f'no master.cf service "{service}"')
            settings = self.settings.service(service) if service else self.settings
            profile = self._profiles[label] = TransportProfile(
                settings,
                transport,
                log=self.log,
                resolver=self.resolver,
                native=self.native,
                rng=self.rng,
                tally=self.tally,
            )
        return profile

    # --- destinations -----------------------------------------------------------------
    async def _run(self, job: DeliveryState) -> None:
        domains: frozenset[str] | None = None
        loop = False
        dests = job.profile.destinations(job.request.nexthop)
        for n, destination in enumerate(dests):
            hop = self._hop(job, destination)
            # sts_step.plain_policy: no MTA-STS policy can apply to a settled hop, or to
            # one whose policy a table decides alone.
            if hop.dest_key and self.sts is not None and hop.settled is None and not hop.by_table:
                hop.dest_key += await self._sts_key(job, hop)
            await self._reuse.try_cached(job, hop, hop.dest_key)
            if not job.tracker.has_pending or job.busy:
                return
            if domains is None:
                domains = frozenset(
                    r.address.rpartition("@")[2].lower()
                    for r in job.request.recipients
                    if "@" in r.address
                )
            servers = await job.profile.finder().find(destination, domains)
            for note in servers.notes:
                (self.log.warning if note.level == "warning" else self.log.info)(
                    job.process, note.text
                )
            last_destination = n == len(dests) - 1 or servers.final
            if servers.failure is not None:
                job.last = Leftover(servers.failure, "none", site=True)
                loop = servers.loop
            else:
                await self._try_servers(job, hop, servers, last_destination)
            if job.busy:
                return  # at a fleet limit: the rest waits in the queue, unmarked
            if not job.tracker.pending() or servers.final:
                break
        if not job.tracker.pending():
            return
        if loop and self._hand_off and await self._hand_off_loop(job):
            return
        last = job.last or Leftover(_NOWHERE, "none")
        verdict = soften(last.verdict) if job.soft_bounce else last.verdict
        if last.site and verdict.status is DeliveryStatus.DEFERRED:
            # Postfix's hop status: the queue manager's negative feedback (status.HopStatus).
            job.tracker.hop_status = HopStatus(verdict.dsn, verdict.diagnostic)
            if not job.fleet_dead:  # what this node found, the fleet learns
                self.fleet.mark_dead(
                    job.request.transport, job.request.nexthop, last.verdict.diagnostic
                )
        job.mark_pending(verdict, last.relay, self.clock(), last.conn_use)

    def _hop(self, job: DeliveryState, destination: Destination) -> Hop:
        """The destination's hop: its cache key now, its TLS state when first needed (a
        session taken from the cache is parked again under keys that include its TLS policy
        (reuse.py), which does not need the whole state for a plaintext session; the MTA-STS
        part of a domain's key, `_sts_key()`, does). Its policy is settled when no table,
        MTA-STS policy or RFC 8689 flag can change it (sts_step.settled_policy): a session
        taken from the cache then needs no TLS state at all.

        What the hop starts with depends on the profile's settings, on whether the agent
        has MTA-STS policies (fixed for its life), on the destination and on the request's
        RFC 8689 flags, and (its cache key) on the sender with sender-dependent
        authentication: it is kept by those for the next request (`_hops`), the key only
        where the sender does not enter it."""
        request, profile, name = job.request, job.profile, destination.text
        requiretls, tls_required_no = request.requiretls, request.tls_required_no
        memo = (profile, name, requiretls, tls_required_no)
        known = self._hops.get(memo)
        if known is not None:
            settled, by_table, dest_key = known
        else:
            settled, by_table = self._hop_policy(profile, name, requiretls, tls_required_no)
            dest_key = None
        # The TLS state, when a session needs it: made by `_tls_job` (a partial, not a
        # closure over `job` or the hop that keeps it: no reference cycle). An address
        # probe may fall back to plaintext at once, as if it had waited (Postfix's
        # TRACE_REQ_ONLY in PLAINTEXT_FALLBACK_OK_AFTER_STARTTLS_FAILURE).
        preactive_delay = math.inf if request.probe else self.wallclock() - request.arrival_time
        maker = functools.partial(
            self._tls_job, profile, name, preactive_delay, requiretls, tls_required_no
        )
        sts_plugin = self.sts is not None
        hop = Hop(name, dest_key or "", maker, settled, by_table=by_table, sts_plugin=sts_plugin)
        if dest_key is None:
            hop.dest_key = self._reuse.dest_key(job, hop, destination)
            if known is None:
                if len(self._hops) >= _MAX_HOPS:
                    self._hops.clear()
                same = not profile.sender_dependent_auth  # else the key names the sender
                self._hops[memo] = (settled, by_table, hop.dest_key if same else None)
        return hop

    def _hop_policy(
        self, profile: TransportProfile, destination: str, requiretls: bool, tls_required_no: bool
    ) -> tuple[TlsPolicy | None, bool]:
        """A hop's TLS policy facts: sts_step.settled_policy(), and whether a policy table
        decides alone where none is settled (sts_step.plain_policy)."""
        agent, sts = profile.agent, self.sts
        flags = {"requiretls": requiretls, "tls_required_no": tls_required_no}
        settled = settled_policy(agent, destination, sts=sts, **flags)
        # Else, when a policy table decides alone, its answers are kept on the hop.
        by_table = settled is None and plain_policy(agent, destination, sts=sts, **flags)
        return settled, by_table

    @staticmethod
    async def _sts_key(job: DeliveryState, hop: Hop) -> str:
        """The destination key's MTA-STS part: the mode and id of the destination's policy
        ("" without one), looked up before the cache is asked, as Postfix resolves a next
        hop's TLS policy before its scache lookup (smtp_key.c puts the TLS level in it).
        A literal next hop or LMTP never has one: no TLS state is made for them here. (A hop
        whose policy is settled, or a table's alone, has none either: `_run` does not ask.)"""
        if job.profile.agent.is_lmtp or hop.destination.strip().startswith("["):
            return ""
        tls = hop.tls
        policy = await destination_policy(tls) if tls is not None else None
        if policy is None or policy.mode == "none":
            return ""
        return f"|sts={policy.mode}:{policy.id}"

    def _tls_job(
        self,
        profile: TransportProfile,
        destination: str,
        preactive_delay: float,
        requiretls: bool,
        tls_required_no: bool,
    ) -> TlsJob:
        """The TLS state of a hop (`Hop.tls`), made when a session first needs it."""
        sts = self.sts
        return self._tls.job(
            profile.agent,
            destination,
            log=self.log,
            resolver=lambda: profile.finder().resolver,
            preactive_delay=preactive_delay,
            requiretls=requiretls,
            tls_required_no=tls_required_no,
            sts=sts,
            refine=refine_policy if sts is not None else None,
            tlsrpt=self.tlsrpt,
        )

    async def _hand_off_loop(self, job: DeliveryState) -> bool:
        """best_mx_transport (handoff.py), through an agent that does not hand off again."""
        inner = DeliveryAgent(
            self.settings,
            log=self.log,
            clock=self.clock,
            wallclock=self.wallclock,
            resolver=self.resolver,
            native=self.native,
            rng=self.rng,
            cache=self.cache,
            notify=self.notify,
            connector=self.connector,
            hand_off=False,
            sts=self.sts,
            tlsrpt=self.tlsrpt,
            fleet=self.fleet,
        )

        async def deliver(request: DeliveryRequest) -> DeliveryResult:
            return await inner.deliver(request, log_lines=False)

        target = self.settings.params.best_mx_transport
        services = {name: s.kind for name, s in self.settings.services.items()}
        return await hand_off(job, target, deliver, log=self.log, now=self.clock, services=services)

    # --- servers of one destination ---------------------------------------------------
    async def _try_servers(
        self, job: DeliveryState, hop: Hop, servers: ServerList, last_destination: bool
    ) -> None:
        limit = job.agent.params.mx_session_limit
        main = job.profile.settings.params
        racing = main.smtp_happy_eyeballs and not job.agent.is_lmtp
        prefs = servers.preferences or (0,) * len(servers.peers)
        remaining = list(zip(servers.peers, prefs, strict=True))
        sessions = 0
        while remaining and job.tracker.pending() and not (job.busy or job.fleet_dead):
            if limit and sessions >= limit:
                break
            group = [p for p, pref in remaining if pref == remaining[0][1]]
            if racing and len({p.family for p in group}) > 1:
                ready = []
                for p in group:  # each server's TLS policy (TLSA) before connecting
                    last = last_destination and len(remaining) == 1
                    if await self._tls_refused(job, hop, p, last):
                        remaining = [(q, pref) for q, pref in remaining if q != p]
                    else:
                        ready.append(p)
                if not ready:
                    continue
                lease = await self._lease(job)
                if lease is None:
                    break
                race = await race_connect(
                    ready,
                    lambda p: self._connect(job, hop, p),
                    delay=main.smtp_happy_eyeballs_delay,
                )
                self._hold(job, lease, race.connection)
                for error in race.failed:
                    self._connect_failed(job, error)
                tried = set(ready) - set(race.untried)
                remaining = [(p, pref) for p, pref in remaining if p not in tried]
                conn, peer = race.connection, race.peer
            else:
                peer = remaining.pop(0)[0]
                # The TLS policy, TLSA records included, before connecting (or reusing).
                if await self._tls_refused(job, hop, peer, last_destination and not remaining):
                    continue
                await self._reuse.try_cached(job, hop, self._reuse.addr_key(job, hop, peer))
                if not job.tracker.pending() or job.busy:
                    return
                conn = await self._try_connect(job, hop, peer)
            if conn is None or peer is None:
                continue
            sessions += 1
            final = last_destination and (not remaining or bool(limit and sessions >= limit))
            await self._use_server(job, hop, conn, peer, final)

    async def _tls_refused(self, job: DeliveryState, hop: Hop, peer: Peer, final: bool) -> bool:
        """The TLS policy of `peer` before connecting (tls_step.prepare_tls()): True when
        it defers this server (a TLSA lookup error, dane-only without usable TLSA records,
        a broken policy entry), which is then never contacted. Marked and logged as when
        the TLS step fails on an open connection. A server that never connected does not
        count against smtp_mx_session_limit, as in Postfix.

        The server's table lookups happen here too, on the loop without blocking it: its
        TLS policy and its SASL credentials, which the synchronous steps after it (reuse
        keys, the TLS step, AUTH) then find already resolved."""
        await self._reuse.prepare_peer(job, hop, peer)
        tls = hop.tls
        if tls is None:
            return False
        outcome = await prepare_tls(tls, peer)
        if outcome is None or outcome.verdict is None:
            return False
        job.tracker.tls_status = tls.status_text(outcome)
        job.tracker.tls_session = None  # refused before connecting
        count_tls(job.tally, tls, peer, outcome)
        if outcome.verdict.final and not outcome.next_server:
            job.mark_pending(outcome.verdict, peer.relay, self.clock())
        else:
            job.site_failed(Leftover(outcome.verdict, peer.relay, site=True), final, self.log)
        return True

    def _connect_failed(self, job: DeliveryState, error: TransportError) -> None:
        job.tracker.tls_status = ""  # no session, no TLS feature status
        job.tracker.tls_session = None
        self.log.info(job.process, error.reason)
        job.last = Leftover(transport_verdict(error), "none", site=True)

    async def _try_connect(self, job: DeliveryState, hop: Hop, peer: Peer) -> Connection | None:
        lease = await self._lease(job)
        if lease is None:
            return None
        try:
            conn = await self._connect(job, hop, peer)
        except TransportError as error:
            lease.release()
            self._connect_failed(job, error)
            return None
        self._hold(job, lease, conn)
        return conn

    async def _lease(self, job: DeliveryState) -> Lease | None:
        """Fleet mode: a lease for one more connection to the request's destination, held
        until the connection is gone (cached sessions keep theirs). None: not now (at the
        fleet limit: `job.busy`), or another node found the destination dead (a site
        failure, as if this node had found it)."""
        answer = await self.fleet.lease(job.request.transport, job.request.nexthop)
        if isinstance(answer, Busy):
            if not answer.error:  # an error is counted by the gate (_counts())
                job.tally.fleet("lease", "denied")
            job.busy = answer
            return None
        if isinstance(answer, DeadDestination):
            job.tally.fleet("lease", "dead")
            job.fleet_dead = True
            text = f"delivery temporarily suspended: {answer.reason}"
            job.last = Leftover(Verdict(DeliveryStatus.DEFERRED, "4.4.1", text), "none", site=True)
            return None
        return answer

    def _hold(self, job: DeliveryState, lease: Lease, conn: Connection | None) -> None:
        if conn is None:
            lease.release()
        elif self._fleet_job:
            destination = f"{job.request.transport}:{job.request.nexthop}"
            self.leases.hold(conn, destination, lease)

    async def _connect(self, job: DeliveryState, hop: Hop, peer: Peer) -> Connection:
        p = job.agent.params
        bind = p.bind_address6 if peer.family == socket.AF_INET6 else p.bind_address
        tls = hop.tls
        wrapper = tls.wrapper_context(peer) if tls is not None else None  # implicit TLS
        conn = await self.connector.open(
            peer,
            timeout=p.connect_timeout,
            bind_address=bind,
            ssl_context=wrapper[0] if wrapper else None,
            server_hostname=wrapper[1] if wrapper else None,
        )
        job.tally.connection("opened")
        return conn

    # --- one server -------------------------------------------------------------------
    async def _use_server(
        self, job: DeliveryState, hop: Hop, conn: Connection, peer: Peer, final: bool
    ) -> None:
        """A session on an open connection, then the transaction; with opportunistic TLS
        that failed in the handshake, the same server once more in plaintext."""
        retry = await self._one_session(job, hop, conn, peer, final)
        if retry:
            plain = await self._try_connect(job, hop, peer)
            if plain is not None:
                await self._one_session(job, hop, plain, peer, final)

    async def _one_session(
        self, job: DeliveryState, hop: Hop, conn: Connection, peer: Peer, final: bool
    ) -> bool:
        """Set up (setup.py), one transaction, and the session back to the cache or QUIT.
        True when TLS asks for the same server again in plaintext."""
        await job.profile.quirks().prefetch(job.quirk_answers, peer)  # network tables only
        session = self._setup.session(job, conn, peer, final)
        if session is None:
            return False
        try:
            ready = await self._setup.prepare(job, hop, session, peer, final)
            if ready is not Prepared.READY:
                return ready is Prepared.RETRY
            job.attempt.ready = self.clock()
            leftover = await run_transaction(
                job, session, peer, final, clock=self.clock, log=self.log
            )
            if leftover is not None:
                job.site_failed(leftover, final, self.log)
            return False
        finally:
            await self._reuse.release(job, hop, session, peer)

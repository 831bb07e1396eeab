"""Connection reuse for the delivery agent: cache keys, cached sessions, parking.

Postfix's smtp_reuse.c and smtp_key.c, on top of the in-process `ConnectionCache`
(cache.py): a session is looked up first by next-hop destination (before any DNS lookup),
then by server address (another destination may reach the same server); after a
transaction it is parked under both keys, or ended with QUIT when it may not be reused.
Keys carry a label of everything that must match (transport, TLS policy, SASL identity, and
a message's REQUIRETLS or "TLS-Required: No", as Postfix's SMTP_KEY_FLAG_REQTLS_LEVEL), so
a session is never shared across policies or credentials (the agent appends the destination's
MTA-STS policy, mode and id, to the destination key, agent.py); for a TLS policy that checks the
certificate by name (verify, secure, dane), the address key also names the server host and
the next hop the certificate was checked for (match names, the DANE TLSA base domain). A
session taken from the cache is checked with RSET (pipelined with the next transaction when
the server allows it); a dead or refusing one is dropped without counting as a delivery
failure. The agent gives a request its destination's TLS state (`Hop.tls`) before it looks
in the cache, so a TLS session reused under smtp_tls_connection_reuse (or the policy's
connection_reuse=yes) is parked again under the same keys and goes on being reused, up to
the cache's limits.

SASL password lookups follow smtp(8): the credentials are looked up when a session is set up
(before connecting, for AUTH and the session's address key), not when a cached session is
reused. Without sender-dependent authentication a session taken from the cache is parked
again under the SASL identity it was parked with (the key it was taken by pins the same
server and destination, so the same lookup would give the same answer); with
smtp_sender_dependent_authentication the credentials are looked up again for the request's
sender and the address key carries that username. A session keeps that identity, and the
address key it was last parked under with what the key was made from (configuration, TLS
policy, server, destination), on itself (`Session.reuse_identity`, `Session.reuse_key`): a
session parked again under the same ones is not keyed again.
"""

from __future__ import annotations

from collections.abc import Callable

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.auth_step import prefetch_credentials, session_identity
from mailcarrier.delivery.cache import ConnectionCache
from mailcarrier.delivery.hop import Hop
from mailcarrier.delivery.leases import ConnectionLeases
from mailcarrier.delivery.servers import Destination
from mailcarrier.delivery.state import DeliveryState
from mailcarrier.delivery.sts_step import table_policy
from mailcarrier.delivery.transaction import run_transaction
from mailcarrier.delivery.transcript import TranscriptReporter
from mailcarrier.fleet import Busy
from mailcarrier.log import LogSink
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.policy import TlsPolicy, resolve_policy
from mailcarrier.transport.connection import Peer
from mailcarrier.transport.session import Session

__all__ = ["SessionReuse"]


def _message_tls(hop: Hop, peer: Peer | None) -> str:
    """The part of a label for a message whose own TLS rules differ from the destination's
    (RFC 8689): REQUIRETLS, with its action once decided (an address key; the destination
    key pins the destination, hence the action), or "TLS-Required: No". Its sessions are
    never shared with other mail (Postfix's SMTP_KEY_FLAG_REQTLS_LEVEL)."""
    tls = hop.tls
    if tls is None:
        return ""
    if tls.requiretls_requested:
        return "requiretls" if peer is None else f"requiretls={tls.requiretls.action.value}"
    return "tls-required=no" if tls.tls_not_required else ""


def _kept_identity(session: Session, profile: object) -> str | None:
    """The SASL identity `session` was parked with under `profile` (`sasl_identity`)."""
    kept = session.reuse_identity
    return kept[1] if kept is not None and kept[0] is profile else None


class SessionReuse:
    """Connection reuse for one agent: its cache (None: every session is closed), and the
    settings, clock, log and transcript reporter reuse needs."""

    __slots__ = ("cache", "clock", "leases", "log", "settings", "transcripts")

    def __init__(
        self,
        cache: ConnectionCache | None,
        settings: Settings,
        *,
        clock: Callable[[], float],
        log: LogSink,
        transcripts: TranscriptReporter,
        leases: ConnectionLeases | None = None,
    ) -> None:
        self.cache = cache
        # Fleet mode: a session reused for another destination takes that one's lease.
        self.leases = leases
        self.settings = settings
        self.clock = clock
        self.log = log
        self.transcripts = transcripts

    def label(
        self,
        job: DeliveryState,
        hop: Hop,
        peer: Peer | None = None,
        session: Session | None = None,
        policy: TlsPolicy | None = None,
    ) -> str:
        """What must match for a cached session to be reused: the transport, the TLS policy
        and the SASL identity, so a session is never shared across policies or credentials
        (Postfix smtp_key.c). `peer` is None for the destination key, else `policy` is its
        TLS policy; `session`, a session being parked (its SASL identity is kept, see
        `sasl_identity`)."""
        profile = job.profile
        # The destination key pins the TLS policy (it is chosen by next hop; its MTA-STS
        # part the agent appends); another destination reaching the same server may have
        # another policy.
        sasl = profile.params.sasl_auth_enable
        plaintext = policy is not None and policy.level is SecurityLevel.NONE and not policy.error
        request = job.request
        message = _message_tls(hop, peer) if request.requiretls or request.tls_required_no else ""
        if not sasl and not message and (policy is None or plaintext):
            # The usual cases, without building the label.
            return profile.plaintext_label if plaintext else profile.label
        parts = [profile.label]
        if message:
            parts.append(message)
        if policy is not None and peer is not None:
            parts.append(policy.reuse_text)  # every plaintext policy is "tls=none"
            if policy.pins_peer and not plaintext:
                # What the certificate was checked against depends on the server's name
                # (hostname matches, DANE's TLSA base domain) and on the next hop (nexthop
                # matches); fingerprints depend on neither.
                tls = hop.tls
                assert tls is not None  # has_tls
                parts.append(f"peer={peer.hostname.lower()}|nexthop={tls.nexthop}")
        if sasl:
            if peer is None:
                # Credentials follow the destination, and with sender-dependent
                # authentication the sender too: never share across senders.
                sender = job.request.sender if profile.sender_dependent_auth else ""
                parts.append(f"sasl=dest:{hop.destination}:{sender}")
            else:
                parts.append("sasl=" + self.sasl_identity(job, hop, peer, session))
        return "|".join(parts)

    def sasl_identity(
        self, job: DeliveryState, hop: Hop, peer: Peer, session: Session | None
    ) -> str:
        """The SASL part of an address key. A session parked again without sender-dependent
        authentication keeps the identity it was parked with under this configuration,
        without a password lookup (smtp(8) looks the password up only to set a session
        up); otherwise the credentials for this request and server are looked up (memoised
        per request)."""
        profile = job.profile
        if session is not None and not profile.sender_dependent_auth:
            known = _kept_identity(session, profile)
            if known is not None:
                return known
        identity = session_identity(
            self.settings, job.agent, job.request, peer, hop.destination, job.sasl_credentials
        )
        if session is not None and not identity.startswith("sasl=unavailable"):
            session.reuse_identity = (profile, identity)
        return identity

    def dest_key(self, job: DeliveryState, hop: Hop, destination: Destination) -> str:
        """The cache key of a destination ("" when its sessions are not cached); `hop` is
        the destination's hop (its key is what this returns). The same for every request
        with the same RFC 8689 flags (REQUIRETLS, "TLS-Required: No", which the label
        holds) unless it names the sender (sender-dependent authentication): the agent
        keeps it for the next request then (`DeliveryAgent._hop`)."""
        if self.cache is None:
            return ""
        profile = job.profile
        text = destination.text.lower()
        if not profile.params.connection_cache_on_demand and text not in profile.cache_destinations:
            return ""
        return f"{self.label(job, hop)}|dest:{text}"

    def addr_key(
        self, job: DeliveryState, hop: Hop, peer: Peer, session: Session | None = None
    ) -> str:
        """By server address and port, whatever name led there (Postfix smtp_reuse.c);
        `session` when it is the key of a session being parked (see `_parked_key`)."""
        if not hop.dest_key:
            return ""
        # The server's TLS policy: TlsJob.policy(), without making the whole TLS state for
        # it when the destination has none or when the settings alone decide it (settled).
        policy = hop.settled
        if policy is None and hop.has_tls:
            policy = hop.known_policy(peer.hostname)
            if policy is None:
                tls = hop.tls
                policy = (
                    tls.policy(peer)  # resolved before connecting, without blocking the loop
                    if tls is not None
                    else resolve_policy(job.agent, hop.destination, peer.hostname)
                )
        if session is None:
            return f"{self.label(job, hop, peer, None, policy)}|addr:[{peer.address}]:{peer.port}"
        kept = session.reuse_key
        request = job.request
        if (
            kept is not None
            and kept[0] is job.profile
            and kept[1] is policy
            and kept[2] is peer
            and kept[3] == hop.destination
            and not (request.requiretls or request.tls_required_no)
        ):
            return kept[4]
        return self._parked_key(job, hop, peer, session, policy)

    def _parked_key(
        self, job: DeliveryState, hop: Hop, peer: Peer, session: Session, policy: TlsPolicy | None
    ) -> str:
        """The address key of a session being parked. Unless the sender or the message's
        own TLS rules (RFC 8689) enter it, it depends only on the configuration (the
        profile: a reload makes new ones), the TLS policy (one object per table answer and
        configuration, tls/policy.py), the server, the destination (nexthop matches) and
        the session's own SASL identity: it is kept on the session with what it was made
        from (`Session.reuse_key`), for `addr_key` to find when none of them changed."""
        label = self.label(job, hop, peer, session, policy)
        key = f"{label}|addr:[{peer.address}]:{peer.port}"
        profile = job.profile
        request = job.request
        if not (
            profile.sender_dependent_auth
            or request.requiretls
            or request.tls_required_no
            or (profile.params.sasl_auth_enable and _kept_identity(session, profile) is None)
        ):
            session.reuse_key = (profile, policy, peer, hop.destination, key)
        return key

    async def try_cached(self, job: DeliveryState, hop: Hop, key: str) -> None:
        """Deliver over a cached session under `key`, when one is alive.

        A parked session is checked with RSET (pipelined with the transaction when the
        server allows it); a dead or refusing one is dropped silently: it is not a delivery
        failure, and the next one under the key is tried. Every turn of the loop either
        drops a session from the cache or ends it: a session that could not take the
        message (it lacks SMTPUTF8 or 8BITMIME, a table failed, the server answered 4xx) is
        not taken again for the same request, which goes on to look up and connect as usual
        (before, such a session went back to the cache and was taken again at once, for
        ever, without a byte of I/O).
        """
        cache = self.cache
        while key and cache is not None and job.tracker.has_pending:
            session = cache.take(key)
            if session is None:
                return
            if session in job.tried_sessions:
                # This request already failed on it (under the other key): not again.
                cache.park(session, self._keys(hop, job, session.conn.peer, session))
                return
            job.tried_sessions.add(session)
            if self.leases is not None:
                request = job.request
                refused = await self.leases.rebind(session.conn, request.transport, request.nexthop)
                if refused is not None:  # not for this destination now: left for its own
                    cache.park(session, self._keys(hop, job, session.conn.peer, session))
                    if isinstance(refused, Busy):
                        job.busy = refused
                    return
            peer = session.conn.peer
            # The TLS checks below; the SASL credentials only when the key needs them. A
            # settled policy without those has nothing to look up (`prepare_peer`).
            credentials = job.profile.sender_dependent_auth
            if credentials or hop.settled is None:
                await self.prepare_peer(job, hop, peer, credentials=credentials)
            job.tracker.tls_status = session.tls_status
            job.tracker.tls_session = session.tls_session
            job.attempt.ready = self.clock()
            leftover = None
            try:
                # One transaction, checked with RSET first; a dead session marks nobody.
                leftover = await run_transaction(
                    job, session, peer, False, clock=self.clock, log=self.log, reset_first=True
                )
                if leftover is not None:
                    job.site_failed(leftover, False, self.log)
            finally:
                if not self.park_now(job, hop, session, peer):
                    await self.release(job, hop, session, peer)
            if leftover is not None or not session.broken:
                job.tally.connection("reused")  # it took the transaction (not a dead one)
                return  # served, or could not serve: either way not this session again

    async def prepare_peer(
        self, job: DeliveryState, hop: Hop, peer: Peer, *, credentials: bool = True
    ) -> None:
        """Look the server's tables up on the loop without blocking it: its SASL
        credentials (unless `credentials` is False: a reused session without
        sender-dependent authentication needs none) and its TLS policy, which the
        synchronous steps after it (reuse keys, the TLS step, AUTH) then find resolved
        (network tables: pgsql:, ...). A hop whose policy is settled has nothing to resolve
        (`Hop.settled`): its TLS state, if a session needs one, gives that policy anyway."""
        if credentials:
            await prefetch_credentials(
                self.settings,
                job.agent,
                job.request,
                peer,
                hop.destination,
                job.sasl_credentials,
                log=self.log,
            )
        if hop.settled is not None:
            return
        if hop.by_table and not hop.tls_made:
            key = peer.hostname.lower()
            if key not in hop.resolved:
                hop.resolved[key] = await table_policy(
                    job.agent, hop.destination, peer, sts=hop.sts_plugin, log=self.log
                )
        elif (tls := hop.tls) is not None:
            await tls.resolve(peer)

    @staticmethod
    def tls_reuse_allowed(hop: Hop, session: Session, peer: Peer) -> bool:
        """A TLS session is reused only with smtp_tls_connection_reuse or the policy's
        connection_reuse=yes, as in Postfix (which needs tlsproxy for it; we keep it here)."""
        if not session.conn.tls:
            return True
        tls = hop.tls
        return tls is not None and tls.policy(peer).connection_reuse

    def _may_park(self, hop: Hop, session: Session, peer: Peer) -> bool:
        """Whether `session` may go back to the cache, RSET aside."""
        return (
            self.cache is not None
            and bool(hop.dest_key)
            and not session.broken
            and self.tls_reuse_allowed(hop, session, peer)
            and session.transactions > 0
        )

    def _keys(self, hop: Hop, job: DeliveryState, peer: Peer, session: Session) -> tuple[str, str]:
        return (hop.dest_key, self.addr_key(job, hop, peer, session))

    def _park(self, job: DeliveryState, hop: Hop, session: Session, peer: Peer) -> bool:
        cache = self.cache
        assert cache is not None  # _may_park()
        return cache.park(session, (hop.dest_key, self.addr_key(job, hop, peer, session)))

    def park_now(self, job: DeliveryState, hop: Hop, session: Session, peer: Peer) -> bool:
        """`release()` without waiting, for the usual session that nothing else concerns
        (no transcript, no RSET needed): parked at once. False: not parked, and the caller
        must `release()` it."""
        return (
            session.history is None
            and not session.needs_rset
            and self._may_park(hop, session, peer)
            and self._park(job, hop, session, peer)
        )

    async def release(self, job: DeliveryState, hop: Hop, session: Session, peer: Peer) -> None:
        """Park the session for reuse when allowed, else QUIT."""
        if session.history is not None:
            self.transcripts.report(session, job.request.queue_id, job.request.sender)
        if (
            self._may_park(hop, session, peer)
            and (not session.needs_rset or await session.rset())
            and self._park(job, hop, session, peer)
        ):
            return
        await session.quit()

"""The TLS step of a session: what Postfix's smtp_proto.c and smtp_tls_policy.c decide.

After the greeting and EHLO, `negotiate_tls()` applies the destination's `TlsPolicy`
(tls/policy.py) to one server and returns a `TlsOutcome`: go on in plaintext, go on over
TLS, give up on this server with a `Verdict` (the next server is tried, as for any site
failure), or reconnect to the same server in plaintext. Postfix's table, per level:

* STARTTLS not offered: ``none``/``may``/``dane`` without usable TLSA go on in plaintext;
  mandatory levels defer 4.7.4 "TLS is required, but was not offered by host h[a]".
* STARTTLS refused: optional levels go on in plaintext on the same connection; mandatory
  levels fail with the server's code: "TLS is required, but host h[a] refused to start TLS".
* Handshake failure: 4.7.5 "Cannot start TLS: handshake failure"; at ``may`` only, once
  the message has waited at least ``minimal_backoff_time`` and no SASL is configured,
  the same server is retried in plaintext (Postfix's PLAINTEXT_FALLBACK_OK_AFTER_...).
* Verification: ``verify``/``secure`` need a trusted chain (4.7.5 "Server certificate not
  trusted") and a matching name, ``fingerprint`` and ``dane`` a match (4.7.5 "Server
  certificate not verified"). No further command is sent after a failed check.

DANE (RFC 7672): the TLSA RRset of ``_port._tcp.mxhost`` decides per server; a validated
usable RRset authenticates, a validated unusable one still makes TLS mandatory, an
unsigned or missing one means ``may`` (``dane-only``: defer); a failed lookup defers 4.7.5.
"""

from __future__ import annotations

import datetime
import enum
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field

from cryptography import x509

from mailcarrier.config.settings import AgentSettings
from mailcarrier.delivery.trouble import Verdict, handshake_verdict, soften, transport_verdict
from mailcarrier.errors import TransportError
from mailcarrier.log import LogSink
from mailcarrier.protocol.reply import Reply
from mailcarrier.routing.resolver import DnsOutcome, Resolver, TLSARecord
from mailcarrier.status import DeliveryStatus
from mailcarrier.tls.context import ContextFactory, TlsSessionCache
from mailcarrier.tls.dane import TlsaRecord, usable
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.names import expand_matches
from mailcarrier.tls.policy import TlsPolicy, nexthop_domain, resolve_policy
from mailcarrier.tls.tlslog import (
    established_line,
    offered_line,
    peer_certificate_line,
    verification_failed_line,
)
from mailcarrier.tls.verify import (
    Expectations,
    PeerCheck,
    Trust,
    check_peer,
    fingerprint,
    pkey_fingerprint,
)
from mailcarrier.transport.connection import Peer
from mailcarrier.transport.session import Session

_ENCODING_DER = 2  # _ssl.ENCODING_DER

__all__ = ["TlsClient", "TlsJob", "TlsOutcome", "TlsResult", "negotiate_tls"]


class TlsResult(enum.Enum):
    PLAINTEXT = "plaintext"
    TLS = "tls"
    FAIL = "fail"
    RETRY_PLAINTEXT = "retry-plaintext"


@dataclass(frozen=True, slots=True)
class TlsOutcome:
    result: TlsResult
    level: SecurityLevel
    verdict: Verdict | None = None
    trust: Trust | None = None

    @property
    def retry_plaintext(self) -> bool:
        return self.result is TlsResult.RETRY_PLAINTEXT


class TlsClient:
    """Per-agent TLS state that outlives requests: contexts and the session cache."""

    def __init__(self) -> None:
        self._factories: dict[str, ContextFactory] = {}
        self._caches: dict[str, TlsSessionCache] = {}

    def job(
        self,
        agent: AgentSettings,
        destination: str,
        *,
        log: LogSink,
        resolver: Callable[[], Resolver | None],
        preactive_delay: float,
    ) -> TlsJob:
        factory = self._factories.get(agent.transport)
        if factory is None or factory.agent.settings is not agent.settings:
            factory = self._factories[agent.transport] = ContextFactory(agent)
        cache = None
        if agent.str("tls_session_cache_database"):
            cache = self._caches.get(agent.transport)
            if cache is None:
                timeout = agent.time("tls_session_cache_timeout")
                cache = self._caches[agent.transport] = TlsSessionCache(timeout)
        return TlsJob(agent, destination, factory, cache, log, resolver, preactive_delay)


@dataclass(slots=True)
class TlsJob:
    """The TLS view of one destination of one request."""

    agent: AgentSettings
    destination: str
    factory: ContextFactory
    cache: TlsSessionCache | None
    log: LogSink
    resolver: Callable[[], Resolver | None]  # lazy: literal next hops never need DNS
    preactive_delay: float  # time the message waited before this delivery attempt
    plaintext_peers: set[str] = field(default_factory=set)

    @property
    def nexthop(self) -> str:
        return nexthop_domain(self.destination)

    def policy(self, peer: Peer) -> TlsPolicy:
        return resolve_policy(self.agent, self.destination, peer.hostname)

    def info(self, text: str) -> None:
        self.log.info(self.agent.transport, text)

    def warning(self, text: str) -> None:
        self.log.warning(self.agent.transport, text)

    def servername(self, policy: TlsPolicy, peer: Peer) -> str | None:
        """SNI: smtp_tls_servername / servername=; by default only with DANE (the TLSA
        base domain, RFC 7672 8.1)."""
        choice = policy.servername.strip()
        if not choice:
            return peer.hostname if policy.level.is_dane else None
        if choice.lower() == "hostname":
            return peer.hostname
        if choice.lower() == "nexthop":
            return self.nexthop
        return choice

    def wrapper_context(self, peer: Peer) -> tuple[ssl.SSLContext, str | None] | None:
        """The context for smtp_tls_wrappermode (implicit TLS), or None when not used or
        unusable (the connection then fails in negotiate_tls, never goes plaintext)."""
        if not self.agent.bool("tls_wrappermode"):
            return None
        policy = self.policy(peer)
        if policy.error or policy.level is SecurityLevel.NONE:
            return None
        try:
            return self.factory.context(policy), self.servername(policy, peer)
        except ValueError:
            return None


def _fail(level: SecurityLevel, dsn: str, text: str) -> TlsOutcome:
    return TlsOutcome(TlsResult.FAIL, level, Verdict(DeliveryStatus.DEFERRED, dsn, text))


def _refused_verdict(namaddr: str, reply: Reply, soft_bounce: bool) -> Verdict:
    text = f"TLS is required, but host {namaddr} refused to start TLS: {reply.text}"
    status = DeliveryStatus.BOUNCED if reply.code // 100 == 5 else DeliveryStatus.DEFERRED
    dsn = reply.dsn
    wanted = "5" if status is DeliveryStatus.BOUNCED else "4"
    dsn = wanted + dsn[1:] if dsn and dsn[0] != wanted else (dsn or wanted + ".0.0")
    verdict = Verdict(status, dsn, text)
    return soften(verdict) if soft_bounce else verdict


@dataclass(frozen=True, slots=True)
class _Dane:
    level: SecurityLevel
    records: tuple[TlsaRecord, ...] = ()
    failure: TlsOutcome | None = None


async def _dane(job: TlsJob, level: SecurityLevel, peer: Peer) -> _Dane:
    """Per-server DANE decision from the TLSA RRset (RFC 7672 2.2)."""
    only = level is SecurityLevel.DANE_ONLY
    dnssec = job.agent.settings.get_str("smtp_dns_support_level") == "dnssec"
    resolver = job.resolver() if dnssec else None
    if resolver is None:
        if only:
            return _Dane(level, failure=_fail(level, "4.7.5", "client TLS configuration problem"))
        job.warning(f"{level.value} TLS security level requires smtp_dns_support_level = dnssec")
        return _Dane(SecurityLevel.MAY)
    qname = f"_{peer.port}._tcp.{peer.hostname}"
    answer = await resolver.resolve(qname, "TLSA")
    if answer.outcome.temporary or answer.outcome is DnsOutcome.NO_RECOVERY:
        text = f"TLSA lookup error for {peer.hostname}:{peer.port}"
        return _Dane(level, failure=_fail(level, "4.7.5", text))
    records = tuple(
        TlsaRecord(r.usage, r.selector, r.mtype, r.data)
        for r in answer.records
        if isinstance(r, TLSARecord)
    )
    if answer.outcome is DnsOutcome.OK and answer.ad and records:
        if usable(records):
            return _Dane(level, usable(records))
        # RFC 7672 3.1.3: a secure RRset with no usable record still means mandatory TLS.
        return _Dane(SecurityLevel.ENCRYPT)
    if only:
        text = f"no usable DANE TLSA records for {peer.namaddr}"
        return _Dane(level, failure=_fail(level, "4.7.5", text))
    return _Dane(SecurityLevel.MAY)


def _chain(session: Session) -> tuple[x509.Certificate, ...]:
    """The server's chain as sent (leaf first); the leaf alone if the chain is unavailable.

    Python 3.11 has the chain only on the private _ssl object (public from 3.13 on).
    """
    obj = session.conn.ssl_object
    if obj is None:
        return ()
    getter = getattr(getattr(obj, "_sslobj", None), "get_unverified_chain", None)
    ders: list[bytes] = []
    for cert in (getter() if getter is not None else None) or ():
        ders.append(cert if isinstance(cert, bytes) else cert.public_bytes(_ENCODING_DER))
    if not ders:
        leaf = obj.getpeercert(binary_form=True)
        ders = [leaf] if leaf else []
    return tuple(x509.load_der_x509_certificate(d) for d in ders)


def _expectations(
    job: TlsJob, policy: TlsPolicy, level: SecurityLevel, peer: Peer, tlsa: tuple[TlsaRecord, ...]
) -> Expectations:
    if level.is_dane:
        names: tuple[str, ...] = (peer.hostname.lower(), job.nexthop)
    else:
        names = expand_matches(policy.matches, peer.hostname, job.nexthop)
    anchors = job.factory.anchors(policy)
    return Expectations(
        level=level,
        names=names,
        fingerprints=policy.matches if level is SecurityLevel.FINGERPRINT else (),
        digest=job.agent.str("tls_fingerprint_digest"),
        anchors=anchors,
        depth=job.agent.int("tls_scert_verifydepth"),
        tlsa=tlsa,
    )


def _log_established(job: TlsJob, session: Session, peer: Peer, check: PeerCheck) -> None:
    obj = session.conn.ssl_object
    loglevel = job.agent.int("tls_loglevel")
    chain = _chain(session)
    if loglevel >= 1 and chain:
        digest = job.agent.str("tls_fingerprint_digest")
        leaf = chain[0]
        subject = leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        issuer = leaf.issuer.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        job.info(
            peer_certificate_line(
                peer.relay,
                str(subject[0].value) if subject else "",
                str(issuer[0].value) if issuer else "",
                fingerprint(leaf, digest),
                pkey_fingerprint(leaf, digest),
            )
        )
    if obj is not None and loglevel >= 1:
        cipher = obj.cipher()
        if cipher is not None:
            name, version, bits = cipher
            job.info(
                established_line(
                    check.trust.value, peer.relay, obj.version() or version, name, bits, bits
                )
            )


async def negotiate_tls(
    job: TlsJob, session: Session, peer: Peer, *, soft_bounce: bool = False
) -> TlsOutcome:
    """Apply the destination's TLS policy to this server (see the module docstring)."""
    policy = job.policy(peer)
    if policy.error:
        job.warning(f"{policy.source}: {policy.error}")
        return _fail(policy.level, "4.7.5", "client TLS configuration problem")
    level = policy.level
    if peer.relay in job.plaintext_peers:
        job.plaintext_peers.discard(peer.relay)
        level = SecurityLevel.NONE
    tlsa: tuple[TlsaRecord, ...] = ()
    if level.is_dane:
        dane = await _dane(job, level, peer)
        if dane.failure is not None:
            return dane.failure
        level, tlsa = dane.level, dane.records
    if session.conn.tls:  # smtp_tls_wrappermode: the handshake happened at connect time
        return _judge(job, session, peer, policy, level, tlsa, wrapper=True)
    offered = session.proto.capabilities.starttls
    if level is SecurityLevel.NONE:
        if offered and job.agent.bool("tls_note_starttls_offer"):
            job.info(offered_line(peer.hostname))
        return TlsOutcome(TlsResult.PLAINTEXT, level)
    if not offered:
        if level.mandatory:
            return _fail(
                level, "4.7.4", f"TLS is required, but was not offered by host {peer.namaddr}"
            )
        return TlsOutcome(TlsResult.PLAINTEXT, level)
    return await _starttls(job, session, peer, policy, level, tlsa, soft_bounce)


async def _starttls(
    job: TlsJob,
    session: Session,
    peer: Peer,
    policy: TlsPolicy,
    level: SecurityLevel,
    tlsa: tuple[TlsaRecord, ...],
    soft_bounce: bool,
) -> TlsOutcome:
    sni = job.servername(policy, peer)
    key = f"{job.agent.transport}:{job.nexthop}:{peer.address}:{peer.port}:{sni}:{level.value}"
    try:
        ctx = job.factory.context(policy, key if job.cache is not None else "")
    except ValueError as exc:
        job.warning(f"TLS library problem: {exc}")
        if level.mandatory:
            return _fail(level, "4.7.5", "TLS is required, but our TLS engine is unavailable")
        return TlsOutcome(TlsResult.PLAINTEXT, level)
    if job.cache is not None:
        job.cache.offer(key, ctx)
    try:
        refused = await session.starttls(ctx, sni)
    except TransportError as exc:
        return _handshake_failed(job, level, peer, exc)
    if refused is not None:
        if level.mandatory:
            return TlsOutcome(
                TlsResult.FAIL, level, _refused_verdict(peer.namaddr, refused, soft_bounce)
            )
        return TlsOutcome(TlsResult.PLAINTEXT, level)  # opportunistic: go on in plaintext
    outcome = _judge(job, session, peer, policy, level, tlsa, wrapper=False)
    if outcome.result is not TlsResult.TLS:
        return outcome
    try:
        refused_hello = await session.hello()
    except TransportError as exc:
        return TlsOutcome(TlsResult.FAIL, level, transport_verdict(exc))
    if refused_hello is not None:
        verdict = handshake_verdict(
            peer.namaddr,
            refused_hello.reply,
            refused_hello.stage,
            skip_5xx_greeting=False,
            soft_bounce=soft_bounce,
        )
        return TlsOutcome(TlsResult.FAIL, level, verdict)
    if job.cache is not None and session.conn.ssl_object is not None:
        job.cache.store(key, session.conn.ssl_object.session)
    return outcome


def _handshake_failed(
    job: TlsJob, level: SecurityLevel, peer: Peer, exc: TransportError
) -> TlsOutcome:
    if exc.stage != "starttls" or not exc.reason.startswith("TLS handshake failed"):
        # Lost connection, timeout, or plaintext injected after the 220.
        return TlsOutcome(TlsResult.FAIL, level, transport_verdict(exc))
    job.info(f"SSL_connect error to {peer.relay}: {exc.reason}")
    backoff = job.agent.settings.get_time("minimal_backoff_time")
    if (
        level is SecurityLevel.MAY
        and job.preactive_delay >= backoff
        and not job.agent.bool("sasl_auth_enable")
    ):
        job.plaintext_peers.add(peer.relay)
        return TlsOutcome(TlsResult.RETRY_PLAINTEXT, level)
    return _fail(level, "4.7.5", "Cannot start TLS: handshake failure")


def _judge(
    job: TlsJob,
    session: Session,
    peer: Peer,
    policy: TlsPolicy,
    level: SecurityLevel,
    tlsa: tuple[TlsaRecord, ...],
    *,
    wrapper: bool,
) -> TlsOutcome:
    """Check the certificate after the handshake, log as Postfix does, decide."""
    try:
        wanted = _expectations(job, policy, level, peer, tlsa)
    except ValueError as exc:
        job.warning(f"cannot load trust anchors: {exc}")
        return _fail(level, "4.7.5", "client TLS configuration problem")
    check = check_peer(_chain(session), wanted, datetime.datetime.now(datetime.UTC))
    _log_established(job, session, peer, check)
    if wrapper and level is SecurityLevel.NONE:
        level = SecurityLevel.ENCRYPT
    if level.must_trust and not check.trusted:
        job.info(verification_failed_line(peer.relay, check.problem))
        return _fail(level, "4.7.5", "Server certificate not trusted")
    if level.must_match and not check.matched:
        job.info(verification_failed_line(peer.relay, check.problem))
        return _fail(level, "4.7.5", "Server certificate not verified")
    return TlsOutcome(TlsResult.TLS, level, trust=check.trust)

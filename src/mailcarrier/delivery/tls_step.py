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
* Verification: ``verify``/``secure`` need a trusted chain and a matching name,
  ``fingerprint`` and ``dane`` a match; any shortfall defers with Postfix's one reason,
  4.7.5 "Server certificate not verified" (smtp_proto.c), after a "certificate
  verification failed" log line with the detail. No further command is sent after a
  failed check. In wrapper mode (``smtp_tls_wrappermode``) the check runs right after the
  handshake, before the greeting is read and before any SMTP byte is sent
  (`negotiate_tls()` is then called before the session starts).

DANE (RFC 7672, as Postfix's smtp_tls_policy.c dane_init()): per server, with the DNSSEC
status that routing recorded on the `Peer`. An MX host named by an insecure MX RRset
(no AD bit) is handled per ``smtp_tls_dane_insecure_mx_policy``: ``may`` (and always at
``dane-only``): "non DNSSEC destination" (``dane`` goes on as ``may``, ``dane-only``
defers); ``encrypt``: mandatory unauthenticated TLS; ``dane``: the TLSA records are used
("half-dane": matched, but logged as Trusted, never Verified). A host whose A/AAAA answer
was not validated has no usable TLSA records (no TLSA lookup is made unless
``smtp_tls_force_insecure_host_tlsa_lookup``). Then the TLSA RRset of ``_port._tcp.host``
decides: a validated usable RRset authenticates, a validated unusable one still makes TLS
mandatory ("TLSA records unusable"; ``dane-only`` defers), an unsigned or missing one means
``may`` ("no TLSA records found"; ``dane-only`` defers 4.7.5); a failed lookup defers 4.7.5
"TLSA lookup error for host:port".

Every outcome carries the TLS feature status of Postfix 3.11's ``tls=`` log field
(tls/features.py), printed when ``smtp_log_tls_feature_status`` is on.
"""

from __future__ import annotations

import dataclasses
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
from mailcarrier.tls.features import FeatureState, TlsFeature
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
    TrustAnchors,
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


HALF_DANE = "half-dane"  # Postfix's TLS_LEV_HALF_DANE name: DANE for an insecure MX host


@dataclass(frozen=True, slots=True)
class TlsOutcome:
    result: TlsResult
    level: SecurityLevel
    verdict: Verdict | None = None
    trust: Trust | None = None
    # The security-level feature of the tls= log field; None: no TLS policy was applied.
    feature: TlsFeature | None = None

    @property
    def retry_plaintext(self) -> bool:
        return self.result is TlsResult.RETRY_PLAINTEXT

    def with_feature(self, feature: TlsFeature | None) -> TlsOutcome:
        return TlsOutcome(self.result, self.level, self.verdict, self.trust, feature)


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

    def status_text(self, outcome: TlsOutcome) -> str:
        """The tls= field for marks after this outcome ("" when logging is off)."""
        if outcome.feature is None or not self.agent.bool("log_tls_feature_status"):
            return ""
        if outcome.feature.target == SecurityLevel.NONE.value:
            # No TLS policy, nothing to report: the line keeps the classic Postfix form
            # (log tools that predate 3.11 parse it unchanged).
            return ""
        return outcome.feature.text

    def undecided_text(self, peer: Peer) -> str:
        """The tls= field while a session with `peer` has not reached its TLS decision
        (greeting refused, connection lost): the policy level with "?" ("may?")."""
        if not self.agent.bool("log_tls_feature_status"):
            return ""
        policy = self.policy(peer)
        if policy.error:
            return ""
        level = policy.level
        if self.agent.bool("tls_wrappermode") and level is SecurityLevel.NONE:
            level = SecurityLevel.ENCRYPT
        if level is SecurityLevel.DANE_ONLY:
            level = SecurityLevel.DANE
        if level is SecurityLevel.NONE:
            return ""
        return TlsFeature(level.value).text

    def wrapper_context(self, peer: Peer) -> tuple[ssl.SSLContext, str | None] | None:
        """The context for smtp_tls_wrappermode (implicit TLS), or None when not used or
        unusable (the connection then fails in negotiate_tls, never goes plaintext)."""
        if not self.agent.bool("tls_wrappermode"):
            return None
        policy = self.policy(peer)
        if policy.error:
            return None
        # Postfix 3.10.6: wrapper mode never goes plaintext; "none" and "may" mean encrypt.
        try:
            return self.factory.context(policy), self.servername(policy, peer)
        except ValueError:
            return None


def _fail(
    level: SecurityLevel, dsn: str, text: str, feature: TlsFeature | None = None
) -> TlsOutcome:
    verdict = Verdict(DeliveryStatus.DEFERRED, dsn, text)
    return TlsOutcome(TlsResult.FAIL, level, verdict, feature=feature)


def _violation(target: str) -> TlsFeature:
    return TlsFeature(target).decide(FeatureState.VIOLATION)


def _plaintext(level: SecurityLevel, target: str) -> TlsOutcome:
    """Going on without TLS: "none" as asked, or "may:none" (STARTTLS unavailable)."""
    feature = TlsFeature(target).decide(FeatureState.COMPLIANT, SecurityLevel.NONE.value)
    return TlsOutcome(TlsResult.PLAINTEXT, level, feature=feature)


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
    half: bool = False  # an insecure MX host at "dane": matched, never "Verified"


def _dane_config_problem(job: TlsJob, level: SecurityLevel, text: str) -> _Dane:
    """Postfix NONDANE_CONFIG: the administrator's fault. "dane" warns and goes on as
    "may"; "dane-only" warns and defers (an invalid policy)."""
    job.warning(f"{job.destination}: {text}")
    if level is SecurityLevel.DANE_ONLY:
        return _Dane(level, failure=_fail(level, "4.7.5", "client TLS configuration problem"))
    return _Dane(SecurityLevel.MAY)


def _dane_incompatible(job: TlsJob, level: SecurityLevel, text: str, *, cantauth: bool) -> _Dane:
    """Postfix NONDANE_DEST/DANE_CANTAUTH: the destination's fault. "dane" goes on as
    "may" (or "encrypt" when TLSA records exist but cannot authenticate); "dane-only"
    defers with the reason."""
    if level is SecurityLevel.DANE_ONLY:
        return _Dane(level, failure=_fail(level, "4.7.5", text))
    return _Dane(SecurityLevel.ENCRYPT if cantauth else SecurityLevel.MAY)


async def _dane(job: TlsJob, level: SecurityLevel, peer: Peer) -> _Dane:
    """Per-server DANE decision (RFC 7672 2.2; Postfix dane_init(), see the module doc)."""
    name = level.value
    if peer.port == 0:
        return _dane_config_problem(
            job,
            SecurityLevel.DANE_ONLY,
            f'the "{name}" security level is invalid for delivery via unix-domain sockets',
        )
    dnssec = job.agent.settings.get_str("smtp_dns_support_level") == "dnssec"
    resolver = job.resolver() if dnssec else None
    if resolver is None:
        return _dane_config_problem(job, level, f"{name} configured with dnssec lookups disabled")
    if not job.agent.is_lmtp and job.agent.settings.get_bool("ignore_mx_lookup_error"):
        return _dane_config_problem(job, level, f"{name} configured with MX lookup errors ignored")
    insecure_mx = peer.mx_dnssec_valid is False
    mx_policy = job.agent.str("tls_dane_insecure_mx_policy").strip().lower() or "dane"
    if insecure_mx and (level is SecurityLevel.DANE_ONLY or mx_policy == "may"):
        return _dane_incompatible(job, level, "non DNSSEC destination", cantauth=False)
    records: tuple[TlsaRecord, ...] = ()
    if peer.dnssec_valid or job.agent.bool("tls_force_insecure_host_tlsa_lookup"):
        qname = f"_{peer.port}._tcp.{peer.hostname}"
        answer = await resolver.resolve(qname, "TLSA")
        if answer.outcome.temporary or answer.outcome is DnsOutcome.NO_RECOVERY:
            text = f"TLSA lookup error for {peer.hostname}:{peer.port}"
            return _Dane(level, failure=_fail(level, "4.7.5", text))
        if answer.outcome is DnsOutcome.OK and answer.ad:
            records = tuple(
                TlsaRecord(r.usage, r.selector, r.mtype, r.data)
                for r in answer.records
                if isinstance(r, TLSARecord)
            )
    # Else the host's address records are not DNSSEC-validated: its TLSA records, if
    # any, cannot be trusted (RFC 7672 2.2.2), and are not even looked up.
    if not records:
        return _dane_incompatible(job, level, "no TLSA records found", cantauth=False)
    if not usable(records):
        # RFC 7672 3.1.3: a secure RRset with no usable record still means mandatory TLS.
        return _dane_incompatible(job, level, "TLSA records unusable", cantauth=True)
    if insecure_mx:
        if mx_policy == "encrypt":
            return _Dane(SecurityLevel.ENCRYPT)  # "Verification not possible, MX RRset is insecure"
        return _Dane(SecurityLevel.DANE, usable(records), half=True)
    # "dane-only" becomes "dane" once the requisite TLSA records are found.
    return _Dane(SecurityLevel.DANE, usable(records))


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
        # RFC 7672 3.2.2: the TLSA base domain (the MX host name), not the next hop.
        names: tuple[str, ...] = (peer.hostname.lower().rstrip("."),)
    else:
        names = expand_matches(policy.matches, peer.hostname, job.nexthop)
    # Trust-anchor files replace CAfile/CApath, at the verify and secure levels (Postfix
    # loads them for those levels only).
    trust_anchors = job.factory.trust_anchors(policy) if level.must_trust else TrustAnchors()
    anchors = () if trust_anchors else job.factory.anchors(policy)
    return Expectations(
        level=level,
        names=names,
        fingerprints=policy.matches if level is SecurityLevel.FINGERPRINT else (),
        digest=job.agent.str("tls_fingerprint_digest"),
        anchors=anchors,
        depth=job.agent.int("tls_scert_verifydepth"),
        tlsa=tlsa,
        trust_anchors=trust_anchors,
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
    """Apply the destination's TLS policy to this server (see the module docstring).

    With smtp_tls_wrappermode (`session.conn.tls` before the session started) it only
    judges the certificate: call it before `Session.start()`, so that nothing is read or
    sent over an unverified connection."""
    policy = job.policy(peer)
    if policy.error:
        job.warning(f"{policy.source}: {policy.error}")
        return _fail(policy.level, "4.7.5", "client TLS configuration problem")
    level = policy.level
    target = level.value
    if peer.relay in job.plaintext_peers:
        # The retry in plaintext after a failed handshake at "may".
        job.plaintext_peers.discard(peer.relay)
        return _plaintext(SecurityLevel.NONE, target)
    tlsa: tuple[TlsaRecord, ...] = ()
    half = False
    if level.is_dane:
        dane = await _dane(job, level, peer)
        if dane.failure is not None:
            return dane.failure
        level, tlsa, half = dane.level, dane.records, dane.half
        target = HALF_DANE if half else level.value
    if session.conn.tls:  # smtp_tls_wrappermode: the handshake happened at connect time
        if level in (SecurityLevel.NONE, SecurityLevel.MAY):
            job.warning(
                f"{job.agent.name('tls_wrappermode')} requires "
                f'"{job.agent.name("tls_security_level")} = encrypt" (or stronger)'
            )
            level, target = SecurityLevel.ENCRYPT, SecurityLevel.ENCRYPT.value
        return _judge(job, session, peer, policy, level, tlsa, target, half=half)
    offered = session.proto.capabilities.starttls
    if level is SecurityLevel.NONE:
        if offered and job.agent.bool("tls_note_starttls_offer"):
            job.info(offered_line(peer.hostname))
        return _plaintext(level, target)
    if not offered:
        if level.mandatory:
            return _fail(
                level,
                "4.7.4",
                f"TLS is required, but was not offered by host {peer.namaddr}",
                _violation(target),
            )
        return _plaintext(level, target)
    return await _starttls(job, session, peer, policy, level, tlsa, target, half, soft_bounce)


async def _starttls(
    job: TlsJob,
    session: Session,
    peer: Peer,
    policy: TlsPolicy,
    level: SecurityLevel,
    tlsa: tuple[TlsaRecord, ...],
    target: str,
    half: bool,
    soft_bounce: bool,
) -> TlsOutcome:
    undecided = TlsFeature(target)
    sni = job.servername(policy, peer)
    key = f"{job.agent.transport}:{job.nexthop}:{peer.address}:{peer.port}:{sni}:{target}"
    try:
        ctx = job.factory.context(policy, key if job.cache is not None else "")
    except ValueError as exc:
        job.warning(f"TLS library problem: {exc}")
        if level.mandatory:
            return _fail(
                level,
                "4.7.5",
                "TLS is required, but our TLS engine is unavailable",
                _violation(target),
            )
        return _plaintext(level, target)
    if job.cache is not None:
        job.cache.offer(key, ctx)
    try:
        refused = await session.starttls(ctx, sni)
    except TransportError as exc:
        return _handshake_failed(job, level, peer, exc).with_feature(undecided)
    if refused is not None:
        if level.mandatory:
            verdict = _refused_verdict(peer.namaddr, refused, soft_bounce)
            return TlsOutcome(TlsResult.FAIL, level, verdict, feature=_violation(target))
        return _plaintext(level, target)  # opportunistic: go on in plaintext
    outcome = _judge(job, session, peer, policy, level, tlsa, target, half=half)
    if outcome.result is not TlsResult.TLS:
        return outcome
    try:
        refused_hello = await session.hello()
    except TransportError as exc:
        return TlsOutcome(TlsResult.FAIL, level, transport_verdict(exc), feature=outcome.feature)
    if refused_hello is not None:
        verdict = handshake_verdict(
            peer.namaddr,
            refused_hello.reply,
            refused_hello.stage,
            skip_5xx_greeting=False,
            soft_bounce=soft_bounce,
        )
        return TlsOutcome(TlsResult.FAIL, level, verdict, feature=outcome.feature)
    if job.cache is not None and session.conn.ssl_object is not None:
        job.cache.store(key, session.conn.ssl_object.session)
    return outcome


def _handshake_failed(
    job: TlsJob, level: SecurityLevel, peer: Peer, exc: TransportError
) -> TlsOutcome:
    """The TLS feature status stays undecided, as in Postfix."""
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
    target: str,
    *,
    half: bool = False,
) -> TlsOutcome:
    """Check the certificate after the handshake, log as Postfix does, decide."""
    try:
        wanted = _expectations(job, policy, level, peer, tlsa)
    except ValueError as exc:
        job.warning(f"cannot load trust anchors: {exc}")
        return _fail(level, "4.7.5", "client TLS configuration problem", _violation(target))
    check = check_peer(_chain(session), wanted, datetime.datetime.now(datetime.UTC))
    if half and check.trust is Trust.VERIFIED:
        # Postfix: "half-dane" is never "Verified", only "Trusted", but matching is enforced.
        check = dataclasses.replace(check, trust=Trust.TRUSTED)
    _log_established(job, session, peer, check)
    if level.must_match and not (check.matched and (check.trusted or not level.must_trust)):
        job.info(verification_failed_line(peer.relay, check.problem, check.purpose))
        return _fail(level, "4.7.5", "Server certificate not verified", _violation(target))
    feature = TlsFeature(target).decide(FeatureState.COMPLIANT)
    return TlsOutcome(TlsResult.TLS, level, trust=check.trust, feature=feature)

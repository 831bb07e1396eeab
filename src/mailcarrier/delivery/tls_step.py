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

Before connecting: `prepare_tls()` resolves what needs no connection, as Postfix resolves
the TLS policy of each server (smtp_tls_policy_cache_query() in smtp_connect.c) before it
connects: a broken policy table entry, and at ``dane`` and ``dane-only`` the DANE decision
(dane_step.py: from the DNSSEC status and the TLSA records, the level to apply and the
records to match). A deferral there ("TLSA lookup error", "non DNSSEC destination" or "no
TLSA records found" at ``dane-only``) means the server is never contacted; otherwise the
decision is kept on the `TlsJob` and `negotiate_tls()` applies it (no second lookup).

A message that asked for REQUIRETLS (RFC 8689) is checked here too, with
delivery/requiretls_step.py's wording: before connecting (the level and how the server was
found), STARTTLS not offered or refused, the certificate at ``enforce``; no plaintext retry.

Every outcome carries the TLS feature status of Postfix 3.11's ``tls=`` log field
(tls/features.py), printed when ``smtp_log_tls_feature_status`` is on.

The state objects (`TlsClient`, `TlsJob`) and the `TlsOutcome` returned here are
tls_job.py's, re-exported from this module.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import TYPE_CHECKING

from mailcarrier.delivery.dane_step import HALF_DANE, decide_dane
from mailcarrier.delivery.requiretls_step import check_before_connect, tls_failure
from mailcarrier.delivery.sts_step import (
    ascii_host,
    testing_feature,
    testing_line,
    webpki_problem,
)
from mailcarrier.delivery.tls_job import (
    TlsClient,
    TlsJob,
    TlsOutcome,
    TlsResult,
    deferred_outcome,
    plaintext_outcome,
    violation_feature,
)
from mailcarrier.delivery.tlsrpt_step import record_attempt
from mailcarrier.delivery.trouble import Verdict, handshake_verdict, soften, transport_verdict
from mailcarrier.errors import TransportError
from mailcarrier.protocol.reply import Reply
from mailcarrier.protocol.stages import Stage
from mailcarrier.status import DeliveryStatus
from mailcarrier.tls.dane import TlsaRecord
from mailcarrier.tls.features import FeatureState, TlsFeature
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.names import expand_matches
from mailcarrier.tls.policy import TlsPolicy
from mailcarrier.tls.requiretls import RequireTlsAction
from mailcarrier.tls.sts import mx_permitted
from mailcarrier.tls.tlslog import (
    established_line,
    offered_line,
    peer_certificate_line,
    verification_failed_line,
)
from mailcarrier.tls.tlsrpt import (
    HOST_MISMATCH,
    STARTTLS_NOT_SUPPORTED,
    VALIDATION_FAILURE,
    check_result_type,
    problem_result_type,
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

if TYPE_CHECKING:
    from cryptography import x509  # loaded when a certificate is first read (start-up)

__all__ = ["TlsClient", "TlsJob", "TlsOutcome", "TlsResult", "negotiate_tls", "prepare_tls"]


def _refused_verdict(namaddr: str, reply: Reply, soft_bounce: bool) -> Verdict:
    text = f"TLS is required, but host {namaddr} refused to start TLS: {reply.text}"
    status = DeliveryStatus.BOUNCED if reply.code // 100 == 5 else DeliveryStatus.DEFERRED
    dsn = reply.dsn
    wanted = "5" if status is DeliveryStatus.BOUNCED else "4"
    dsn = wanted + dsn[1:] if dsn and dsn[0] != wanted else (dsn or wanted + ".0.0")
    verdict = Verdict(status, dsn, text)
    return soften(verdict) if soft_bounce else verdict


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
    from cryptography import x509

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
        digest=job.agent.params.tls_fingerprint_digest,
        anchors=anchors,
        depth=job.agent.params.tls_scert_verifydepth,
        tlsa=tlsa,
        trust_anchors=trust_anchors,
    )


def _log_established(job: TlsJob, session: Session, peer: Peer, check: PeerCheck) -> None:
    obj = session.conn.ssl_object
    loglevel = job.agent.params.tls_loglevel
    chain = _chain(session)
    if loglevel >= 1 and chain:
        digest = job.agent.params.tls_fingerprint_digest
        from cryptography.x509 import NameOID

        leaf = chain[0]
        subject = leaf.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        issuer = leaf.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
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


def _policy_problem(job: TlsJob, policy: TlsPolicy) -> TlsOutcome:
    if policy.warnings:
        # A table that could not answer: its own warnings say what happened.
        for warning in policy.warnings:
            job.warning(warning)
    else:
        job.warning(f"{policy.source}: {policy.error}")
    if policy.dsn == "4.3.0":  # smtp_tls_per_site: tls_site_lookup()'s wording
        return deferred_outcome(policy.level, policy.dsn, policy.error)
    return deferred_outcome(policy.level, "4.7.5", "client TLS configuration problem")


async def prepare_tls(job: TlsJob, peer: Peer) -> TlsOutcome | None:
    """The TLS policy of `peer` before connecting to it (see the module docstring): a
    deferred outcome when the server must not be contacted, else None (the DANE decision,
    if any, is kept on `job` for `negotiate_tls()`)."""
    policy = job.policy(peer)
    if policy.error:
        return _policy_problem(job, policy)
    if policy.mx_patterns and not mx_permitted(policy.mx_patterns, ascii_host(peer.hostname)):
        refused = _mx_not_permitted(job, policy, peer)
        if refused is not None:
            record_attempt(job, peer, policy, refused)
            return refused
    requiretls = await check_before_connect(job, policy, peer)
    if requiretls is not None:
        return requiretls
    level = policy.level
    if not level.is_dane or peer.relay in job.plaintext_peers:
        return None
    key = job.dane_key(peer, level)
    decision = job.dane.get(key)
    if decision is None:  # one lookup per host and port, whatever its addresses
        decision = job.dane[key] = await decide_dane(job, level, peer)
    if decision.failure is not None:
        record_attempt(job, peer, policy, decision.failure)
    return decision.failure


def _mx_not_permitted(job: TlsJob, policy: TlsPolicy, peer: Peer) -> TlsOutcome | None:
    """An MX host that the MTA-STS policy's mx patterns do not list (RFC 8461 4.1; Postfix
    smtp_tls_authorize_mx_hostname()): refused under enforce (a deferral: never a bounce
    before the policy is fetched again), logged in testing mode (None: go on)."""
    host = ascii_host(peer.hostname)
    domain = policy.policy_domain
    if policy.sts_mode == "testing":
        _testing_failure(job, policy, peer, f"MX name '{host}' does not match the mx patterns")
        return None
    job.warning(f"MX name '{host}' does not match STS MX pattern for '{domain}'")
    if job.sts is not None and policy.sts_mode:
        job.sts.suspect(domain)
    return deferred_outcome(
        policy.level,
        "4.7.5",
        f"MX host {host} is not allowed by the MTA-STS policy of {domain}",
        violation_feature(policy.feature_name),
    ).reported(HOST_MISMATCH, "mx-not-allowed")


async def negotiate_tls(
    job: TlsJob, session: Session, peer: Peer, *, soft_bounce: bool = False
) -> TlsOutcome:
    """Apply the destination's TLS policy to this server (see the module docstring).

    With smtp_tls_wrappermode (`session.conn.tls` before the session started) it only
    judges the certificate: call it before `Session.start()`, so that nothing is read or
    sent over an unverified connection."""
    policy = job.policy(peer)
    outcome = await _negotiate(job, session, peer, policy, soft_bounce)
    record_attempt(job, peer, policy, outcome, _sending_ip(session))
    if policy.sts_mode == "testing":
        failed = peer.relay in job.sts_would_fail
        return dataclasses.replace(outcome, sts_report=testing_feature(failed))
    if policy.sts_mode == "enforce" and outcome.result is TlsResult.FAIL and job.sts is not None:
        # RFC 8461 5.1: before giving up on a message, check for a new policy.
        job.sts.suspect(policy.policy_domain)
    return outcome


def _sending_ip(session: Session) -> str:
    """Our address on this connection (RFC 8460 sending-mta-ip); "" for unix sockets."""
    try:
        name = session.conn.writer.get_extra_info("sockname")
    except (AttributeError, RuntimeError):
        return ""
    return str(name[0]) if isinstance(name, tuple) and name else ""


async def _negotiate(
    job: TlsJob, session: Session, peer: Peer, policy: TlsPolicy, soft_bounce: bool
) -> TlsOutcome:
    if policy.error:
        return _policy_problem(job, policy)
    requiretls = await check_before_connect(job, policy, peer)
    if requiretls is not None:
        return requiretls
    action = job.requiretls.action
    level = policy.level
    target = policy.feature_name
    if peer.relay in job.plaintext_peers:
        # The retry in plaintext after a failed handshake at "may".
        job.plaintext_peers.discard(peer.relay)
        return plaintext_outcome(SecurityLevel.NONE, target)
    tlsa: tuple[TlsaRecord, ...] = ()
    half = False
    if level.is_dane:
        key = job.dane_key(peer, level)
        dane = job.dane.get(key)
        if dane is None:  # prepare_tls() was not called: decide now
            dane = job.dane[key] = await decide_dane(job, level, peer)
        if dane.failure is not None:
            return dane.failure
        level, tlsa, half = dane.level, dane.records, dane.half
        target = HALF_DANE if half else level.value
        if action is RequireTlsAction.ENFORCE and not level.must_match:  # no usable TLSA
            return tls_failure(
                level,
                f"but my configured TLS security level '{level.value}' disables certificate "
                f"matching. The last attempted server was {peer.hostname}",
                TlsFeature(target),
                "nocertmatch",
            )
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
        if offered and job.agent.params.tls_note_starttls_offer:
            job.info(offered_line(peer.hostname))
        return plaintext_outcome(level, target)
    if not offered:
        if action.requires_tls:
            return tls_failure(
                level,
                f"but TLS service was not offered by host {peer.namaddr}",
                violation_feature(target) if level.mandatory else TlsFeature(target),
                "nostarttls",
            ).reported(STARTTLS_NOT_SUPPORTED, "starttls-not-offered")
        if level.mandatory:
            return deferred_outcome(
                level,
                "4.7.4",
                f"TLS is required, but was not offered by host {peer.namaddr}",
                violation_feature(target),
            ).reported(STARTTLS_NOT_SUPPORTED, "starttls-not-offered")
        _testing_failure(job, policy, peer, "STARTTLS was not offered")
        outcome = plaintext_outcome(level, target)
        return outcome.reported(STARTTLS_NOT_SUPPORTED, "starttls-not-offered")
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
    key = f"{job.agent.label}:{job.nexthop}:{peer.address}:{peer.port}:{sni}:{target}"
    try:
        ctx = job.factory.context(policy, key if job.cache is not None else "")
    except ValueError as exc:
        job.warning(f"TLS library problem: {exc}")
        if level.mandatory:
            return deferred_outcome(
                level,
                "4.7.5",
                "TLS is required, but our TLS engine is unavailable",
                violation_feature(target),
            )
        return plaintext_outcome(level, target)
    if job.cache is not None:
        job.cache.offer(key, ctx)
    try:
        refused = await session.starttls(ctx, sni)
    except TransportError as exc:
        _testing_failure(job, policy, peer, exc.reason)
        failed = _handshake_failed(job, level, peer, exc).with_feature(undecided)
        return failed.reported(VALIDATION_FAILURE, "tls-handshake-failure")
    if refused is not None:
        if job.requiretls.action.requires_tls:
            return tls_failure(
                level,
                f"but host {peer.namaddr} refused to start TLS: {refused.text}",
                violation_feature(target) if level.mandatory else undecided,
                "nostarttls",
            ).reported(STARTTLS_NOT_SUPPORTED, "starttls-refused")
        if level.mandatory:
            # MTA-STS: a failure defers (RFC 8461 5.1: never a bounce before a fresh policy).
            verdict = _refused_verdict(peer.namaddr, refused, soft_bounce or bool(policy.sts_mode))
            failed = TlsOutcome(TlsResult.FAIL, level, verdict, feature=violation_feature(target))
            return failed.reported(STARTTLS_NOT_SUPPORTED, "starttls-refused")
        _testing_failure(job, policy, peer, f"STARTTLS refused: {refused.code} {refused.text}")
        outcome = plaintext_outcome(level, target)  # opportunistic: go on in plaintext
        return outcome.reported(STARTTLS_NOT_SUPPORTED, "starttls-refused")
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


def _testing_failure(job: TlsJob, policy: TlsPolicy, peer: Peer, problem: str) -> None:
    """MTA-STS in testing mode: log what enforce would have refused, deliver anyway."""
    if policy.sts_mode == "testing":
        job.info(testing_line(policy, peer, problem))
        job.sts_would_fail.add(peer.relay)
        job.sts_failures.setdefault(peer.relay, (problem_result_type(problem), ""))


def _handshake_failed(
    job: TlsJob, level: SecurityLevel, peer: Peer, exc: TransportError
) -> TlsOutcome:
    """The TLS feature status stays undecided, as in Postfix."""
    if exc.stage is not Stage.STARTTLS or not exc.reason.startswith("TLS handshake failed"):
        # Lost connection, timeout, or plaintext injected after the 220.
        return TlsOutcome(TlsResult.FAIL, level, transport_verdict(exc))
    job.info(f"SSL_connect error to {peer.relay}: {exc.reason}")
    backoff = job.agent.settings.params.minimal_backoff_time
    if (
        level is SecurityLevel.MAY
        and job.preactive_delay >= backoff
        and not job.agent.params.sasl_auth_enable
        and not job.requiretls.action.requires_tls  # never plaintext for REQUIRETLS
    ):
        job.plaintext_peers.add(peer.relay)
        return TlsOutcome(TlsResult.RETRY_PLAINTEXT, level)
    return deferred_outcome(level, "4.7.5", "Cannot start TLS: handshake failure")


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
        return deferred_outcome(
            level, "4.7.5", "client TLS configuration problem", violation_feature(target)
        )
    chain = _chain(session)
    check = check_peer(chain, wanted, datetime.datetime.now(datetime.UTC))
    if policy.policy_failure and level.must_match:
        # An STS plugin's policy_failure: Postfix forces the verification to fail.
        check = dataclasses.replace(
            check,
            trust=Trust.UNTRUSTED if check.trust is Trust.VERIFIED else check.trust,
            matched=False,
            problem=f"MTA-STS policy failure: {policy.policy_failure}",
        )
    if policy.sts_mode == "testing":
        obj = session.conn.ssl_object
        version = (obj.version() if obj is not None else "") or ""
        problem = webpki_problem(job, policy, peer, chain, version)
        if problem:
            _testing_failure(job, policy, peer, problem)
    if half and check.trust is Trust.VERIFIED:
        # Postfix: "half-dane" is never "Verified", only "Trusted", but matching is enforced.
        check = dataclasses.replace(check, trust=Trust.TRUSTED)
    _log_established(job, session, peer, check)
    if level.must_match and not (check.matched and (check.trusted or not level.must_trust)):
        job.info(verification_failed_line(peer.relay, check.problem, check.purpose))
        result = check_result_type(check, dane=level.is_dane)
        if job.requiretls.action is RequireTlsAction.ENFORCE:
            found = "matching" if check.trusted or not level.must_trust else "trusted"
            return tls_failure(
                level,
                f"but no {found} server certificate was found. The last attempted server "
                f"was {peer.namaddr}",
                violation_feature(target),
                "nocertmatch",
            ).reported(result)
        return deferred_outcome(
            level, "4.7.5", "Server certificate not verified", violation_feature(target)
        ).reported(result)
    feature = TlsFeature(target).decide(FeatureState.COMPLIANT)
    return TlsOutcome(TlsResult.TLS, level, trust=check.trust, feature=feature)

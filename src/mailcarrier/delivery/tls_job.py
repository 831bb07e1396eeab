"""The TLS state of deliveries, and what the TLS step returns.

`TlsClient` is the per-agent TLS state that outlives requests (SSL contexts, the TLS session
cache); `TlsJob` is its view of one destination of one request (policy lookup per server,
SNI, the ``tls=`` log field, the servers to retry in plaintext, the DANE decisions made
before connecting, `DaneDecision`, which the TLS step then applies without a second TLSA
lookup, and the destination's MTA-STS policy, which sts_step.py applies through the injected
`Refiner`). `TlsOutcome` is the answer of the TLS step for one server: go on in plaintext, go
on over TLS, give up with a `Verdict`, or reconnect in plaintext; `deferred_outcome()`,
`plaintext_outcome()` and `violation_feature()` build the common ones. No decision is made
here: the TLS step is tls_step.py (its DANE part dane_step.py), the policy tables are
tls/policy.py's.
"""

from __future__ import annotations

import dataclasses
import enum
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

from mailcarrier.config.settings import AgentSettings
from mailcarrier.delivery.sts_cache import CachedPolicy, StsPolicies
from mailcarrier.delivery.trouble import Verdict
from mailcarrier.idn import domain_to_ascii
from mailcarrier.log import LogSink
from mailcarrier.routing.resolver import Resolver
from mailcarrier.status import DeliveryStatus
from mailcarrier.tls.context import ContextFactory, TlsSessionCache
from mailcarrier.tls.dane import TlsaRecord
from mailcarrier.tls.features import FeatureState, TlsFeature, feature_field
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.policy import (
    TlsPolicy,
    nexthop_domain,
    resolve_not_required,
    resolve_policy,
    resolve_policy_async,
)
from mailcarrier.tls.requiretls import (
    NOT_REQUESTED,
    RequireTlsAction,
    RequireTlsDecision,
    requiretls_action,
)
from mailcarrier.tls.tlsrpt import Attempt
from mailcarrier.tls.verify import Trust
from mailcarrier.transport.connection import Peer

__all__ = [
    "DaneDecision",
    "Refiner",
    "TlsClient",
    "TlsJob",
    "TlsOutcome",
    "TlsResult",
    "TlsrptRecorder",
    "deferred_outcome",
    "plaintext_outcome",
    "violation_feature",
]


class TlsrptRecorder(Protocol):
    """delivery/tlsrpt_store.TlsrptStore, as the TLS step sees it."""

    def record(self, attempt: Attempt, count: int = 1) -> None: ...

    async def aclose(self) -> None: ...


# delivery/sts_step.refine_policy(): a server's resolved policy with MTA-STS applied.
Refiner = Callable[["TlsJob", Peer, TlsPolicy], Awaitable[TlsPolicy]]


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
    # The security-level feature of the tls= log field; None: no TLS policy was applied.
    feature: TlsFeature | None = None
    # A REQUIRETLS failure (5.7.30): the next server is still tried, the recipients are
    # marked only after the last (Postfix's SMTP_MISC_FAIL_SOFT_NON_FINAL).
    next_server: bool = False
    # The REQUIRETLS feature of the tls= log field (delivery/requiretls_step.py), if decided.
    requiretls_feature: TlsFeature | None = None
    # An MTA-STS policy in testing mode: "(sts)", or "!(sts)" when enforce would have failed.
    sts_report: TlsFeature | None = None
    # TLSRPT (RFC 8460 4.3): the result type of a failed TLS attempt, and a reason code.
    report: str = ""
    report_reason: str = ""

    @property
    def retry_plaintext(self) -> bool:
        return self.result is TlsResult.RETRY_PLAINTEXT

    def with_feature(self, feature: TlsFeature | None) -> TlsOutcome:
        return dataclasses.replace(self, feature=feature)

    def reported(self, result_type: str, reason: str = "") -> TlsOutcome:
        """This outcome with its TLSRPT result type (delivery/tlsrpt_step.py counts it)."""
        return dataclasses.replace(self, report=result_type, report_reason=reason)


@dataclass(frozen=True, slots=True)
class DaneDecision:
    """What dane_step.decide_dane() made of a ``dane``/``dane-only`` policy for one server:
    the level to apply and the TLSA records to match, or a deferral (`failure`)."""

    level: SecurityLevel
    records: tuple[TlsaRecord, ...] = ()
    failure: TlsOutcome | None = None
    half: bool = False  # an insecure MX host at "dane": matched, never "Verified"


def deferred_outcome(
    level: SecurityLevel, dsn: str, text: str, feature: TlsFeature | None = None
) -> TlsOutcome:
    """Give up on this server: the recipients are deferred (or go to the next server)."""
    verdict = Verdict(DeliveryStatus.DEFERRED, dsn, text)
    return TlsOutcome(TlsResult.FAIL, level, verdict, feature=feature)


def violation_feature(target: str) -> TlsFeature:
    return TlsFeature(target).decide(FeatureState.VIOLATION)


def plaintext_outcome(level: SecurityLevel, target: str) -> TlsOutcome:
    """Going on without TLS: "none" as asked, or "may:none" (STARTTLS unavailable)."""
    feature = TlsFeature(target).decide(FeatureState.COMPLIANT, SecurityLevel.NONE.value)
    return TlsOutcome(TlsResult.PLAINTEXT, level, feature=feature)


class TlsClient:
    """Per-agent TLS state that outlives requests: contexts and the session cache."""

    def __init__(self) -> None:
        # Per transport: the context factory of the current settings, and the TLS session
        # cache when smtp_tls_session_cache_database asks for one (looked up once per
        # settings, since every destination of every request asks).
        self._factories: dict[str, tuple[ContextFactory, TlsSessionCache | None]] = {}
        self._caches: dict[str, TlsSessionCache] = {}

    def job(
        self,
        agent: AgentSettings,
        destination: str,
        *,
        log: LogSink,
        resolver: Callable[[], Resolver | None],
        preactive_delay: float,
        requiretls: bool = False,
        tls_required_no: bool = False,
        sts: StsPolicies | None = None,
        refine: Refiner | None = None,
        tlsrpt: TlsrptRecorder | None = None,
    ) -> TlsJob:
        """The TLS view of one destination of one request; `requiretls` and
        `tls_required_no` are the request's RFC 8689 flags."""
        # By service: each master.cf service has its own TLS settings (-o overrides).
        label = agent.label
        known = self._factories.get(label)
        if known is None or known[0].agent.settings is not agent.settings:
            cache = None
            if agent.params.tls_session_cache_database:
                cache = self._caches.get(label)
                if cache is None:
                    timeout = agent.params.tls_session_cache_timeout
                    cache = self._caches[label] = TlsSessionCache(timeout)
            known = self._factories[label] = (ContextFactory(agent), cache)
        factory, cache = known
        main = agent.settings.params
        requested = requiretls and main.requiretls_enable
        job = TlsJob(
            agent, destination, factory, cache, log, resolver, preactive_delay, sts, refine
        )
        job.requiretls_requested = requested
        job.tlsrpt = tlsrpt
        # Postfix's STATE_TLS_NOT_REQUIRED: the header counts unless REQUIRETLS is asked.
        job.tls_not_required = tls_required_no and main.tls_required_enable and not requested
        return job


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
    # MTA-STS (delivery/sts_step.py): the agent's policies, and the step that applies them
    # to a server's resolved policy (injected: sts_step.py imports this module).
    sts: StsPolicies | None = None
    refine: Refiner | None = None
    sts_looked_up: bool = False
    sts_policy: CachedPolicy | None = None
    # Servers for which an MTA-STS policy in testing mode would have failed (by relay).
    sts_would_fail: set[str] = field(default_factory=set)
    # TLSRPT: what testing mode found per server (result type, reason), and the store.
    sts_failures: dict[str, tuple[str, str]] = field(default_factory=dict)
    tlsrpt: TlsrptRecorder | None = None
    plaintext_peers: set[str] = field(default_factory=set)
    # DANE decisions made before connecting (tls_step.prepare_tls()), by `dane_key()`.
    dane: dict[tuple[str, int, bool, bool | None, str], DaneDecision] = field(default_factory=dict)
    # Policies resolved for this destination, by server host name: the tables are asked
    # once per request (smtp(8)'s policy cache lives for one delivery, smtp_state_free()).
    policies: dict[str, TlsPolicy] = field(default_factory=dict)
    # RFC 8689 (tls/requiretls.py): the message asked for REQUIRETLS (and requiretls_enable
    # is on), and the action decided for this destination by `decide_requiretls()`.
    requiretls_requested: bool = False
    requiretls: RequireTlsDecision = NOT_REQUESTED
    requiretls_decided: bool = False
    # "TLS-Required: No" applies: no policy lookup, the level capped at may.
    tls_not_required: bool = False

    @property
    def nexthop(self) -> str:
        return nexthop_domain(self.destination)

    def policy(self, peer: Peer) -> TlsPolicy:
        """The policy for `peer`: resolved by `resolve()` before connecting, or now."""
        key = peer.hostname.lower()
        known = self.policies.get(key)
        if known is None:
            known = self.policies[key] = (
                resolve_not_required(self.agent)
                if self.tls_not_required
                else resolve_policy(self.agent, self.destination, peer.hostname)
            )
        return known

    async def decide_requiretls(self) -> RequireTlsDecision:
        """The REQUIRETLS action for this destination (once per request), DISABLE when the
        message did not ask for REQUIRETLS; a configuration problem is logged here."""
        if not self.requiretls_decided:
            self.requiretls_decided = True
            if self.requiretls_requested:
                self.requiretls = await requiretls_action(self.agent, self.destination)
                if self.requiretls.warning:
                    self.warning(self.requiretls.warning)
        return self.requiretls

    async def resolve(self, peer: Peer) -> TlsPolicy:
        """Resolve `peer`'s policy with the tables asked on the loop without blocking it
        (pgsql:, mysql:, ...); the warnings of a table that worked are logged here, those
        of one that failed by the TLS step that defers."""
        key = peer.hostname.lower()
        known = self.policies.get(key)
        if known is not None:
            return known
        if self.tls_not_required:
            # TLS-Required: No (RFC 8689): no policy table, and no MTA-STS either.
            known = self.policies[key] = resolve_not_required(self.agent)
            return known
        known = await resolve_policy_async(self.agent, self.destination, peer.hostname)
        if self.refine is not None:
            known = await self.refine(self, peer, known)
        self.policies[key] = known
        if not known.error:
            for warning in known.warnings:
                self.warning(warning)
        return known

    @staticmethod
    def dane_key(peer: Peer, level: SecurityLevel) -> tuple[str, int, bool, bool | None, str]:
        """What a DANE decision depends on: the TLSA base domain and port (Postfix's
        policy cache key, host and port), the DNSSEC status of the way there, the level."""
        return (
            peer.hostname.lower(),
            peer.port,
            peer.dnssec_valid,
            peer.mx_dnssec_valid,
            level.value,
        )

    def info(self, text: str) -> None:
        self.log.info(self.agent.transport, text)

    def warning(self, text: str) -> None:
        self.log.warning(self.agent.transport, text)

    def servername(self, policy: TlsPolicy, peer: Peer) -> str | None:
        """SNI: smtp_tls_servername / servername=; by default only with DANE (the TLSA
        base domain, RFC 7672 8.1). In A-labels (RFC 6066 3), converted here as DNS names
        are (idn.py): the ssl module would otherwise apply IDNA 2003."""
        choice = policy.servername.strip()
        if not choice:
            name = peer.hostname if policy.level.is_dane else None
        elif choice.lower() == "hostname":
            name = peer.hostname
        elif choice.lower() == "nexthop":
            name = self.nexthop
        else:
            name = choice
        # A name IDNA refuses cannot be sent as SNI at all: then none is sent.
        return None if name is None else domain_to_ascii(name)

    def status_text(self, outcome: TlsOutcome) -> str:
        """The tls= field for marks after this outcome ("" when logging is off)."""
        if not self.agent.params.log_tls_feature_status:
            return ""
        feature, requiretls = outcome.feature, outcome.requiretls_feature
        if feature is None or feature.target == SecurityLevel.NONE.value:
            # No TLS policy, nothing to report: the line keeps the classic Postfix form
            # (log tools that predate 3.11 parse it unchanged), unless REQUIRETLS was asked.
            return "" if requiretls is None else f"none/{requiretls.text}"
        parts = [feature]
        if outcome.sts_report is not None:
            parts.append(outcome.sts_report)  # MTA-STS in testing mode
        if requiretls is not None:
            parts.append(requiretls)
        return feature_field(tuple(parts))

    def undecided_text(self, peer: Peer) -> str:
        """The tls= field while a session with `peer` has not reached its TLS decision
        (greeting refused, connection lost): the policy level with "?" ("may?")."""
        if not self.agent.params.log_tls_feature_status:
            return ""
        policy = self.policy(peer)
        if policy.error:
            return ""
        level = policy.level
        if self.agent.params.tls_wrappermode and level is SecurityLevel.NONE:
            level = SecurityLevel.ENCRYPT
        if level is SecurityLevel.DANE_ONLY:
            level = SecurityLevel.DANE
        # Under an MTA-STS policy in enforce mode the level is named "sts" (tls=sts).
        name = policy.feature_name if policy.sts_mode == "enforce" else level.value
        undecided = TlsFeature(name).text
        if self.requiretls.action is not RequireTlsAction.DISABLE:
            return f"{undecided}/{TlsFeature('requiretls').text}"
        if level is SecurityLevel.NONE:
            return ""
        return undecided

    def wrapper_context(self, peer: Peer) -> tuple[ssl.SSLContext, str | None] | None:
        """The context for smtp_tls_wrappermode (implicit TLS), or None when not used or
        unusable (the connection then fails in negotiate_tls, never goes plaintext)."""
        if not self.agent.params.tls_wrappermode:
            return None
        policy = self.policy(peer)
        if policy.error:
            return None
        # Postfix 3.10.6: wrapper mode never goes plaintext; "none" and "may" mean encrypt.
        try:
            return self.factory.context(policy), self.servername(policy, peer)
        except ValueError:
            return None

"""MTA-STS in the TLS step: which policy applies to one MX host, and what testing mode reports.

`refine_policy(job, peer, base)` runs when a server's TLS policy is resolved (TlsJob.resolve,
before connecting). Precedence, as issue 18 and RFC 8461 2 set it: an explicit
``smtp_tls_policy_maps`` (or ``smtp_tls_per_site``) entry wins over everything, and when
it is the answer of a Postfix STS policy plugin (``policy_type=sts``) only its MX host
patterns are checked here; DANE wins over MTA-STS where the MX host has usable TLSA records
(and a failing DANE check is never overridden: a ``dane-only`` deferral stays one); else
our own MTA-STS policy of the next-hop domain (sts_cache.py) applies to servers that came
from its MX records, over SMTP, when ``smtp_mta_sts_enable`` is on:

* ``enforce``: the policy becomes mandatory TLS 1.2 or newer, a WebPKI-trusted certificate
  matching the MX host name (SNI set to it), and only MX hosts that match the policy's
  ``mx`` patterns (tls_step.prepare_tls() turns the others away with a deferral). Logged
  as ``tls=sts``.
* ``testing``: delivery goes on under the usual policy (at least ``may``: STARTTLS is
  tried); what enforce would have refused is logged, one line per server
  (`testing_line()`), and the tls= field gets ``(sts)``, or ``!(sts)`` after a failure.
* ``none``, no policy, or a fetch that failed without a valid cached policy: the usual policy.

`destination_policy()` is the same lookup for a destination before its servers are known:
the agent puts the policy's mode and id in the connection cache's destination key.
`settled_policy()` is the policy of a destination where neither MTA-STS nor a table can
change it (nor the message's RFC 8689 flags): found without the destination's TLS state.

The resolved policy records `mx_authenticated_by_sts` per server (RFC 8689's "MX from
DNSSEC or MTA-STS"). `webpki_problem()` is the check testing mode makes after a handshake
at the opportunistic level.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import TYPE_CHECKING

from mailcarrier.config.settings import AgentSettings
from mailcarrier.delivery.dane_step import decide_dane
from mailcarrier.delivery.sts_cache import CachedPolicy, StsPolicies, fetch_settings
from mailcarrier.delivery.tls_job import TlsJob
from mailcarrier.idn import domain_to_ascii
from mailcarrier.log import LogSink
from mailcarrier.tls.features import FeatureState, TlsFeature
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.policy import (
    TlsPolicy,
    level_defaults,
    resolve_policy_async,
    untabled_policy,
)
from mailcarrier.tls.sts import mx_permitted
from mailcarrier.tls.verify import Expectations, check_peer
from mailcarrier.transport.connection import Peer

if TYPE_CHECKING:
    from cryptography import x509  # loaded with the first certificate (tls_step.py)

__all__ = [
    "STS_SOURCE",
    "ascii_host",
    "destination_policy",
    "may_apply",
    "plain_policy",
    "refine_policy",
    "settled_policy",
    "table_policy",
    "testing_feature",
    "testing_line",
    "webpki_problem",
]

STS_SOURCE = "mta-sts"


def ascii_host(name: str) -> str:
    return domain_to_ascii(name) or name.lower()


def may_apply(agent: AgentSettings, sts: StsPolicies | None, destination: str) -> bool:
    """Whether an MTA-STS policy could apply to some server of `destination`: the agent has
    MTA-STS policies, smtp_mta_sts_enable is on, it is SMTP without wrapper mode, and the
    next hop is a domain (not a [literal])."""
    return (
        sts is not None
        and agent.params.mta_sts_enable
        and not agent.is_lmtp
        and not agent.params.tls_wrappermode
        and not destination.strip().startswith("[")
    )


def _applicable(job: TlsJob, peer: Peer, base: TlsPolicy) -> bool:
    return (
        may_apply(job.agent, job.sts, job.destination)
        and base.source == job.agent.name("tls_security_level")
        and peer.mx_dnssec_valid is not None  # the server came from the domain's MX records
    )


def settled_policy(
    agent: AgentSettings,
    destination: str,
    *,
    sts: StsPolicies | None,
    requiretls: bool,
    tls_required_no: bool,
) -> TlsPolicy | None:
    """The policy `TlsJob.resolve()` gives every server of `destination` when it is known
    without the destination's TLS state: no policy table (the global policy,
    `tls.policy.untabled_policy`), no RFC 8689 flag on the message (`requiretls`,
    `tls_required_no`: the request's) and no MTA-STS policy that could apply. None: the
    TLS state decides (`Hop.tls`). A plaintext session taken from the cache then needs
    no TLS state at all (reuse.py), as before tables could be asked on the loop."""
    if not plain_policy(
        agent, destination, sts=sts, requiretls=requiretls, tls_required_no=tls_required_no
    ):
        return None
    return untabled_policy(agent)


def plain_policy(
    agent: AgentSettings,
    destination: str,
    *,
    sts: StsPolicies | None,
    requiretls: bool,
    tls_required_no: bool,
) -> bool:
    """Whether the policy of `destination`'s servers is the settings' or the policy table's
    answer alone: no RFC 8689 flag on the message and no MTA-STS policy that could apply.
    With a table, `table_policy()` then gives what `TlsJob.resolve()` would."""
    return not (requiretls or tls_required_no or may_apply(agent, sts, destination))


async def table_policy(
    agent: AgentSettings, destination: str, peer: Peer, *, sts: bool, log: LogSink
) -> TlsPolicy:
    """`TlsJob.resolve(peer)` where `plain_policy()` holds, without the TLS state: the
    table's answer (a Postfix STS plugin's MX match applied when the agent has MTA-STS
    policies, `sts`, as `refine_policy` does), its warnings logged as `resolve` logs them."""
    policy = await resolve_policy_async(agent, destination, peer.hostname)
    if sts:
        policy = _plugin_match(peer, policy)
    if not policy.error:
        for warning in policy.warnings:
            log.warning(agent.transport, warning)
    return policy


def _plugin_match(peer: Peer, base: TlsPolicy) -> TlsPolicy:
    """A Postfix STS policy plugin's answer (a table's) with `peer` matched against its MX
    patterns; any other policy as it is."""
    if not base.error and base.policy_type == "sts" and base.mx_patterns:
        matched = mx_permitted(base.mx_patterns, ascii_host(peer.hostname))
        return dataclasses.replace(base, mx_authenticated_by_sts=matched)
    return base


async def _lookup(job: TlsJob) -> CachedPolicy | None:
    """The MTA-STS policy of the next-hop domain, once per destination of a request."""
    if not job.sts_looked_up:
        job.sts_looked_up = True
        resolver = job.resolver()
        if job.sts is not None and resolver is not None:
            job.sts_policy = await job.sts.policy_for(
                job.nexthop, resolver, fetch_settings(job.agent)
            )
    return job.sts_policy


async def destination_policy(job: TlsJob) -> CachedPolicy | None:
    """The MTA-STS policy of the destination when MTA-STS may apply to its servers (before
    they are known: the connection cache's destination key carries it, so a session opened
    under one policy is never taken under another); None otherwise, or without a policy."""
    if job.tls_not_required or not may_apply(job.agent, job.sts, job.destination):
        return None
    return await _lookup(job)


async def refine_policy(job: TlsJob, peer: Peer, base: TlsPolicy) -> TlsPolicy:
    """The policy for `peer` with MTA-STS applied (see the module docstring)."""
    if base.error:
        return base
    if base.policy_type == "sts" and base.mx_patterns:  # a policy plugin's answer
        return _plugin_match(peer, base)
    if not _applicable(job, peer, base):
        return base
    entry = await _lookup(job)
    if entry is None or entry.mode == "none":
        return base
    level = base.level
    if level.is_dane:
        key = job.dane_key(peer, level)
        decision = job.dane.get(key)
        if decision is None:
            decision = job.dane[key] = await decide_dane(job, level, peer)
        if decision.failure is not None or decision.level is not SecurityLevel.MAY:
            return base  # DANE applies (or defers): MTA-STS does not override it
        base = level_defaults(job.agent, SecurityLevel.MAY, base.source)
    return _compose(job, peer, base, entry)


def _compose(job: TlsJob, peer: Peer, base: TlsPolicy, entry: CachedPolicy) -> TlsPolicy:
    matched = mx_permitted(entry.mx, ascii_host(peer.hostname))
    if entry.mode == "enforce":
        strict = level_defaults(job.agent, SecurityLevel.SECURE, STS_SOURCE)
        return dataclasses.replace(
            strict,
            matches=("hostname",),
            protocols=(">=TLSv1.2",),
            tafile=(),  # WebPKI (RFC 8461 4.2): CAs, not DANE-style trust anchors
            servername="hostname",
            connection_reuse=base.connection_reuse,
            policy_type="sts",
            policy_domain=entry.domain,
            mx_patterns=entry.mx,
            sts_mode="enforce",
            mx_authenticated_by_sts=matched,
        )
    if base.level is SecurityLevel.NONE:
        base = level_defaults(job.agent, SecurityLevel.MAY, base.source)
    return dataclasses.replace(
        base,
        policy_type="sts",
        policy_domain=entry.domain,
        mx_patterns=entry.mx,
        sts_mode="testing",
    )


def testing_line(policy: TlsPolicy, peer: Peer, problem: str) -> str:
    """What testing mode logs instead of deferring (one line per server)."""
    return (
        f"MTA-STS policy of {policy.policy_domain} in testing mode: delivery to "
        f"{peer.relay} would fail under enforce: {problem}"
    )


def testing_feature(failed: bool) -> TlsFeature:
    """``(sts)``: the policy was checked but not enforced; ``!(sts)``: it would have failed."""
    state = FeatureState.VIOLATION if failed else FeatureState.COMPLIANT
    return TlsFeature("sts").decide(state, relaxed=True)


def webpki_problem(
    job: TlsJob,
    policy: TlsPolicy,
    peer: Peer,
    chain: tuple[x509.Certificate, ...],
    version: str,
) -> str:
    """What enforce would refuse in a session made at the opportunistic level: TLS older
    than 1.2, a certificate not trusted under WebPKI or not valid for the MX host name."""
    if version in ("TLSv1", "TLSv1.1", "SSLv3"):
        return f"{version} is older than TLSv1.2"
    enforced = dataclasses.replace(policy, sts_mode="enforce", tafile=())
    try:
        anchors = job.factory.anchors(enforced)
    except ValueError as exc:
        return f"cannot load CA certificates: {exc}"
    wanted = Expectations(
        level=SecurityLevel.SECURE,
        names=(ascii_host(peer.hostname).rstrip("."),),
        anchors=anchors,
        depth=job.agent.params.tls_scert_verifydepth,
    )
    check = check_peer(chain, wanted, datetime.datetime.now(datetime.UTC))
    if check.matched and check.trusted:
        return ""
    return f"certificate verification failed: {check.problem}"

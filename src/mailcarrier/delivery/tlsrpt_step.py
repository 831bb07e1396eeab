"""TLSRPT in the TLS step: turn the outcome of one TLS attempt into an `Attempt` and count it.

`record_attempt()` is called by tls_step.py once per server it decides on (and once per
deferral made before connecting, such as a ``dane-only`` destination without TLSA records),
when ``smtp_tlsrpt_enable`` is on and the agent has a store (delivery/tlsrpt_store.py). It
names the policy that applied (RFC 8460 4.4): ``sts`` with the MTA-STS policy's lines and
``mx`` patterns, ``tlsa`` with the TLSA records matched, else ``no-policy-found``; and the
result: a session over TLS is a success, unless MTA-STS in testing mode found what enforce
would refuse; a failure carries the result type that tls_step.py put on the `TlsOutcome`
(``report``). A session that never tried TLS (level ``none``, a plaintext retry already
counted as a failure, a lost connection) is not counted. The report that counts an attempt
is the next-hop domain's (its ``_smtp._tls`` record says where it goes), as in Postfix's
smtp_tlsrpt.c; the policy domain in it is the MTA-STS policy's domain, for DANE the TLSA base
domain (RFC 8460 1.3: the MX host name, Postfix's ``dane->base_domain``), else the next hop.
Names are in A-labels (RFC 8460 4.4). The store batches its writes (tlsrpt_store.py); one that
cannot be written is logged, never a reason to stop a delivery.
"""

from __future__ import annotations

import datetime
import sqlite3

from mailcarrier.delivery.sts_step import ascii_host
from mailcarrier.delivery.tls_job import TlsJob, TlsOutcome, TlsResult
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.policy import TlsPolicy
from mailcarrier.tls.tlsrpt import Attempt
from mailcarrier.transport.connection import Peer

__all__ = ["record_attempt"]


def _policy(job: TlsJob, peer: Peer, policy: TlsPolicy) -> tuple[str, str, tuple[str, ...]]:
    """(policy-type, policy-domain, policy-string lines)."""
    if policy.policy_type == "sts" or policy.sts_mode:
        domain = (policy.policy_domain or job.nexthop).lower()
        lines = ["version: STSv1"]
        cached = job.sts_policy
        mode = policy.sts_mode or (cached.mode if cached is not None else "enforce")
        lines.append(f"mode: {mode}")
        lines.extend(f"mx: {pattern}" for pattern in policy.mx_patterns)
        if cached is not None and cached.domain.lower() == domain:
            lines.append(f"max_age: {cached.max_age}")
        return "sts", domain, tuple(lines)
    if policy.level.is_dane:
        decision = job.dane.get(job.dane_key(peer, policy.level))
        if decision is not None and decision.records and decision.level.is_dane:
            records = tuple(
                f"{r.usage} {r.selector} {r.mtype} {r.data.hex()}" for r in decision.records
            )
            # RFC 8460 1.3: the DANE policy domain is the TLSA base domain (RFC 7672
            # 2.2.3), the MX host name here; Postfix's smtp_tlsrpt.c gives base_domain.
            return "tlsa", ascii_host(peer.hostname).rstrip("."), records
    return "no-policy-found", job.nexthop.lower(), ()


def _result(job: TlsJob, peer: Peer, outcome: TlsOutcome) -> tuple[str, str] | None:
    """(result type, reason code): ("", "") for a success, None when nothing is counted."""
    testing = job.sts_failures.get(peer.relay)
    if testing is not None:
        return testing
    if outcome.report:
        return outcome.report, outcome.report_reason
    if outcome.result is TlsResult.TLS:
        return "", ""
    return None


def record_attempt(
    job: TlsJob, peer: Peer, policy: TlsPolicy, outcome: TlsOutcome, sending_ip: str = ""
) -> None:
    """Count this attempt (see the module docstring)."""
    if job.tlsrpt is None or not job.agent.params.tlsrpt_enable or policy.error:
        return
    if policy.level is SecurityLevel.NONE and not outcome.report:
        return
    result = _result(job, peer, outcome)
    if result is None:
        return
    policy_type, domain, strings = _policy(job, peer, policy)
    attempt = Attempt(
        day=datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d"),
        policy_domain=domain,
        policy_type=policy_type,
        policy_strings=strings,
        mx_hosts=policy.mx_patterns if policy_type == "sts" else (),
        result_type=result[0],
        sending_ip=sending_ip if result[0] else "",
        receiving_mx=peer.hostname.lower().rstrip(".") if result[0] else "",
        receiving_ip=peer.address if result[0] else "",
        reason_code=result[1],
        # The next hop's report counts it (its _smtp._tls record), as in Postfix.
        report_domain=ascii_host(job.nexthop).rstrip("."),
    )
    try:
        job.tlsrpt.record(attempt)
    except (OSError, sqlite3.Error) as exc:
        job.warning(f"cannot record the TLSRPT result for {domain}: {exc}")

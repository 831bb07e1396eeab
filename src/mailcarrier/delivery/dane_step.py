"""The DANE part of the TLS step: what Postfix's smtp_tls_policy.c dane_init() decides.

`decide_dane()` turns a ``dane`` or ``dane-only`` policy into the level to apply to one
server and the TLSA records to match (RFC 7672), with the DNSSEC status that routing
recorded on the `Peer`, or into a deferral. An MX host named by an insecure MX RRset (no
AD bit) is handled per ``smtp_tls_dane_insecure_mx_policy`` (default: ``dane`` when
``smtp_tls_security_level`` is ``dane``, else ``may``, as in Postfix 3.6 and later):
``may`` (and always at ``dane-only``): "non DNSSEC destination" (``dane`` goes on as
``may``, ``dane-only`` defers); ``encrypt``: mandatory unauthenticated TLS; ``dane``: the
TLSA records are used ("half-dane": matched, but logged as Trusted, never Verified). A host
whose A/AAAA answer was not validated has no usable TLSA records (no TLSA lookup is made
unless ``smtp_tls_force_insecure_host_tlsa_lookup``). Then the TLSA RRset of
``_port._tcp.host`` decides: a validated usable RRset authenticates, a validated unusable
one still makes TLS mandatory ("TLSA records unusable"; ``dane-only`` defers), an unsigned
or missing one means ``may`` ("no TLSA records found"; ``dane-only`` defers 4.7.5); a
failed lookup defers 4.7.5 "TLSA lookup error for host:port".

It sends nothing, and runs before the connection is made: as Postfix resolves the TLS
policy of each server, TLSA records included, before connecting (smtp_connect.c),
tls_step.prepare_tls() calls it and keeps the decision on the `TlsJob`, so a deferral
never opens a connection. tls_step.py then runs STARTTLS and checks the certificate
against the records (tls/verify.py, tls/dane.py); the MX and address DNSSEC status comes
from routing/.
"""

from __future__ import annotations

from mailcarrier.delivery.tls_job import DaneDecision, TlsJob, deferred_outcome
from mailcarrier.routing.localhost import is_localhost, localhost_answer
from mailcarrier.routing.resolver import DnsOutcome, TLSARecord
from mailcarrier.tls.dane import TlsaRecord, usable
from mailcarrier.tls.levels import SecurityLevel
from mailcarrier.tls.tlsrpt import DANE_REQUIRED, DNSSEC_INVALID, TLSA_INVALID
from mailcarrier.transport.connection import Peer

__all__ = ["HALF_DANE", "DaneDecision", "decide_dane"]

HALF_DANE = "half-dane"  # Postfix's TLS_LEV_HALF_DANE name: DANE for an insecure MX host


def _dane_config_problem(job: TlsJob, level: SecurityLevel, text: str) -> DaneDecision:
    """Postfix NONDANE_CONFIG: the administrator's fault. "dane" warns and goes on as
    "may"; "dane-only" warns and defers (an invalid policy)."""
    job.warning(f"{job.destination}: {text}")
    if level is SecurityLevel.DANE_ONLY:
        failure = deferred_outcome(level, "4.7.5", "client TLS configuration problem")
        return DaneDecision(level, failure=failure)
    return DaneDecision(SecurityLevel.MAY)


def _dane_incompatible(
    job: TlsJob, level: SecurityLevel, text: str, *, cantauth: bool, report: str
) -> DaneDecision:
    """Postfix NONDANE_DEST/DANE_CANTAUTH: the destination's fault. "dane" goes on as
    "may" (or "encrypt" when TLSA records exist but cannot authenticate); "dane-only"
    defers with the reason."""
    if level is SecurityLevel.DANE_ONLY:
        failure = deferred_outcome(level, "4.7.5", text)
        reason = text.replace(" ", "-").replace("DNSSEC", "dnssec").replace("TLSA", "tlsa")
        return DaneDecision(level, failure=failure.reported(report, reason))
    return DaneDecision(SecurityLevel.ENCRYPT if cantauth else SecurityLevel.MAY)


async def decide_dane(job: TlsJob, level: SecurityLevel, peer: Peer) -> DaneDecision:
    """Per-server DANE decision (RFC 7672 2.2; Postfix dane_init(), see the module doc)."""
    name = level.value
    if peer.port == 0:
        return _dane_config_problem(
            job,
            SecurityLevel.DANE_ONLY,
            f'the "{name}" security level is invalid for delivery via unix-domain sockets',
        )
    dnssec = job.agent.settings.params.smtp_dns_support_level == "dnssec"
    resolver = job.resolver() if dnssec else None
    if resolver is None:
        return _dane_config_problem(job, level, f"{name} configured with dnssec lookups disabled")
    if not job.agent.is_lmtp and job.agent.settings.params.ignore_mx_lookup_error:
        return _dane_config_problem(job, level, f"{name} configured with MX lookup errors ignored")
    insecure_mx = peer.mx_dnssec_valid is False
    mx_policy = job.agent.params.tls_dane_insecure_mx_policy.strip().lower() or "may"
    if insecure_mx and (level is SecurityLevel.DANE_ONLY or mx_policy == "may"):
        return _dane_incompatible(
            job, level, "non DNSSEC destination", cantauth=False, report=DANE_REQUIRED
        )
    records: tuple[TlsaRecord, ...] = ()
    if peer.dnssec_valid or job.agent.params.tls_force_insecure_host_tlsa_lookup:
        qname = f"_{peer.port}._tcp.{peer.hostname}"
        if is_localhost(qname):  # RFC 6761 6.3: no TLSA, and no question to a name server
            answer = localhost_answer(qname, "TLSA")
        else:
            answer = await resolver.resolve(qname, "TLSA")
        if answer.outcome.temporary or answer.outcome is DnsOutcome.NO_RECOVERY:
            text = f"TLSA lookup error for {peer.hostname}:{peer.port}"
            failure = deferred_outcome(level, "4.7.5", text).reported(
                DNSSEC_INVALID, "tlsa-lookup-error"
            )
            return DaneDecision(level, failure=failure)
        if answer.outcome is DnsOutcome.OK and answer.ad:
            records = tuple(
                TlsaRecord(r.usage, r.selector, r.mtype, r.data)
                for r in answer.records
                if isinstance(r, TLSARecord)
            )
    # Else the host's address records are not DNSSEC-validated: its TLSA records, if
    # any, cannot be trusted (RFC 7672 2.2.2), and are not even looked up.
    if not records:
        return _dane_incompatible(
            job, level, "no TLSA records found", cantauth=False, report=DANE_REQUIRED
        )
    if not usable(records):
        # RFC 7672 3.1.3: a secure RRset with no usable record still means mandatory TLS.
        return _dane_incompatible(
            job, level, "TLSA records unusable", cantauth=True, report=TLSA_INVALID
        )
    if insecure_mx:
        if mx_policy == "encrypt":
            # "Verification not possible, MX RRset is insecure"
            return DaneDecision(SecurityLevel.ENCRYPT)
        return DaneDecision(SecurityLevel.DANE, usable(records), half=True)
    # "dane-only" becomes "dane" once the requisite TLSA records are found.
    return DaneDecision(SecurityLevel.DANE, usable(records))

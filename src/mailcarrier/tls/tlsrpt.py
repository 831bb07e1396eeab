"""TLSRPT (RFC 8460) values: what one TLS attempt contributes to a report, and the DNS record.

`Attempt` is one TLS attempt as a report counts it: the UTC day, the domain whose report
counts it, the policy (type, strings, domain, MX host patterns) and, for a failure, the
RFC's result type with the sending and receiving addresses and a reason code.
`check_result_type()` and `problem_result_type()` name the result type of a failed
certificate check (tls/verify.py's `PeerCheck`) or of the problem text that MTA-STS testing
mode logs. `parse_record()` reads a ``_smtp._tls`` TXT
record (RFC 8460 3). Pure values: the counting store is delivery/tlsrpt_store.py, the step
that records an attempt delivery/tlsrpt_step.py, the report itself tls/tlsrpt_report.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mailcarrier.tls.verify import HOSTNAME_MISMATCH, NO_TLSA_MATCH, PeerCheck

__all__ = [
    "POLICY_TYPES",
    "RESULT_TYPES",
    "Attempt",
    "check_result_type",
    "parse_record",
    "problem_result_type",
]

# RFC 8460 4.4 policy-type, and 4.3 result-type (4.3.1 negotiation, 4.3.2 policy failures).
POLICY_TYPES: Final = ("sts", "tlsa", "no-policy-found")
STARTTLS_NOT_SUPPORTED: Final = "starttls-not-supported"
HOST_MISMATCH: Final = "certificate-host-mismatch"
EXPIRED: Final = "certificate-expired"
NOT_TRUSTED: Final = "certificate-not-trusted"
VALIDATION_FAILURE: Final = "validation-failure"
TLSA_INVALID: Final = "tlsa-invalid"
DNSSEC_INVALID: Final = "dnssec-invalid"
DANE_REQUIRED: Final = "dane-required"
RESULT_TYPES: Final = (
    STARTTLS_NOT_SUPPORTED,
    HOST_MISMATCH,
    EXPIRED,
    NOT_TRUSTED,
    VALIDATION_FAILURE,
    TLSA_INVALID,
    DNSSEC_INVALID,
    DANE_REQUIRED,
    "sts-policy-fetch-error",
    "sts-policy-invalid",
    "sts-webpki-invalid",
)


@dataclass(frozen=True, slots=True)
class Attempt:
    """One TLS attempt; `result_type` is "" for a successful session."""

    day: str  # YYYY-MM-DD, UTC
    policy_domain: str
    policy_type: str
    policy_strings: tuple[str, ...] = ()
    mx_hosts: tuple[str, ...] = ()
    result_type: str = ""
    sending_ip: str = ""
    receiving_mx: str = ""
    receiving_ip: str = ""
    reason_code: str = ""
    # The domain whose report counts it (its ``_smtp._tls`` record says where the report
    # goes): the next-hop domain, as Postfix's smtp_tlsrpt.c; "" when it is the policy
    # domain. They differ for DANE, whose policy domain is the TLSA base domain (RFC 8460
    # 1.3 "Policy Domain", 4.4 "policy-domain"; Postfix's dane->base_domain).
    report_domain: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.result_type)

    @property
    def reported_by(self) -> str:
        """The domain whose report counts this attempt."""
        return self.report_domain or self.policy_domain


def check_result_type(check: PeerCheck, *, dane: bool) -> str:
    """The result type of a failed certificate check (RFC 8460 4.3.1): with DANE a chain
    that matched no TLSA record is a "validation-failure" (4.3.1 names no better one)."""
    if "expired" in check.problem or "not yet valid" in check.problem:
        return EXPIRED
    if dane or check.problem == NO_TLSA_MATCH:
        return VALIDATION_FAILURE
    if check.trusted and (not check.matched or check.problem == HOSTNAME_MISMATCH):
        return HOST_MISMATCH
    return NOT_TRUSTED


def problem_result_type(problem: str) -> str:
    """The result type of what MTA-STS testing mode found (sts_step.testing_line() texts)."""
    if "STARTTLS" in problem:
        return STARTTLS_NOT_SUPPORTED
    if "expired" in problem or "not yet valid" in problem:
        return EXPIRED
    if HOSTNAME_MISMATCH in problem:
        return HOST_MISMATCH
    if "certificate verification failed" in problem:
        return NOT_TRUSTED
    return VALIDATION_FAILURE


def parse_record(text: str) -> tuple[str, ...] | None:
    """The ``rua`` URIs of a TLSRPT TXT record (RFC 8460 3: ``v=TLSRPTv1`` first, then
    ``rua=`` with comma-separated ``mailto:`` or ``https:`` URIs); None when it is not one."""
    fields = [part.strip() for part in text.split(";")]
    if not fields or fields[0].replace(" ", "") != "v=TLSRPTv1":
        return None
    for item in fields[1:]:
        name, sep, value = item.partition("=")
        if sep and name.strip().lower() == "rua":
            uris = tuple(u.strip() for u in value.split(",") if u.strip())
            good = tuple(u for u in uris if u.lower().startswith(("mailto:", "https:")))
            return good or None
    return None

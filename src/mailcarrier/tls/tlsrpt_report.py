"""The TLSRPT report (RFC 8460 4): one UTC day of counts for one policy domain, as JSON.

`build_report()` groups the counted `Attempt`s of one domain and day by policy (4.4:
policy-type, policy-string, policy-domain, mx-host) and gives each its summary (successful
and failed sessions) and its failure-details (one per result type, sending and receiving
address and reason code, with its failed-session-count). The date-range is the whole day,
in RFC 3339 UTC; the report-id is derived from organisation, domain and day, so a report
built twice is the same report. `report_bytes()` is its JSON, `gzip_report()` the gzip'd
form (5.3: ``application/tlsrpt+gzip``, no file name or time stamp inside, so the bytes
are reproducible), `report_filename()` the file name of 5.3 and `report_subject()` the
Subject of 5.3. Pure: the counts are delivery/tlsrpt_store.py's, discovery of where to send
routing/tlsrpt.py's, sending queue/tlsrpt_send.py's.
"""

from __future__ import annotations

import calendar
import datetime
import gzip
import json
import uuid
from collections.abc import Iterable
from typing import Any, Final

from mailcarrier.tls.tlsrpt import Attempt

__all__ = [
    "MEDIA_TYPE",
    "build_report",
    "gzip_report",
    "report_bytes",
    "report_filename",
    "report_subject",
]

MEDIA_TYPE: Final = "application/tlsrpt+gzip"
_NAMESPACE: Final = uuid.UUID("0b1e7c2e-6a57-4c1a-9d0f-7f4f6c9d2a18")


def _day_bounds(day: str) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=datetime.UTC)
    return start, start + datetime.timedelta(days=1) - datetime.timedelta(seconds=1)


def _rfc3339(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def report_id(organization: str, domain: str, day: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{organization}\0{domain}\0{day}"))


def _failure_detail(attempt: Attempt, count: int) -> dict[str, Any]:
    detail: dict[str, Any] = {"result-type": attempt.result_type}
    for key, value in (
        ("sending-mta-ip", attempt.sending_ip),
        ("receiving-mx-hostname", attempt.receiving_mx),
        ("receiving-ip", attempt.receiving_ip),
    ):
        if value:
            detail[key] = value
    detail["failed-session-count"] = count
    if attempt.reason_code:
        detail["failure-reason-code"] = attempt.reason_code
    return detail


def _policies(rows: Iterable[tuple[Attempt, int]]) -> list[dict[str, Any]]:
    grouped: dict[tuple[str, tuple[str, ...], str, tuple[str, ...]], list[tuple[Attempt, int]]]
    grouped = {}
    for attempt, count in rows:
        key = (attempt.policy_type, attempt.policy_strings, attempt.policy_domain, attempt.mx_hosts)
        grouped.setdefault(key, []).append((attempt, count))
    policies = []
    for (kind, strings, domain, mx), found in sorted(grouped.items()):
        policy: dict[str, Any] = {"policy-type": kind}
        if strings:
            policy["policy-string"] = list(strings)
        policy["policy-domain"] = domain
        if mx:
            policy["mx-host"] = list(mx)
        failures = [_failure_detail(a, c) for a, c in found if a.failed]
        entry: dict[str, Any] = {
            "policy": policy,
            "summary": {
                "total-successful-session-count": sum(c for a, c in found if not a.failed),
                "total-failure-session-count": sum(c for a, c in found if a.failed),
            },
        }
        if failures:
            entry["failure-details"] = failures
        policies.append(entry)
    return policies


def build_report(
    rows: Iterable[tuple[Attempt, int]],
    *,
    domain: str,
    day: str,
    organization: str,
    contact: str,
) -> dict[str, Any]:
    """The report of `domain` (the next hop whose ``_smtp._tls`` record asks for it) for
    `day` from the store's rows (others are left out); each policy names its own
    policy-domain (for DANE the TLSA base domain)."""
    start, end = _day_bounds(day)
    mine = [(a, c) for a, c in rows if a.reported_by == domain and a.day == day]
    return {
        "organization-name": organization,
        "date-range": {"start-datetime": _rfc3339(start), "end-datetime": _rfc3339(end)},
        "contact-info": contact,
        "report-id": report_id(organization, domain, day),
        "policies": _policies(mine),
    }


def report_bytes(report: dict[str, Any]) -> bytes:
    return json.dumps(report, indent=2, ensure_ascii=False).encode() + b"\n"


def gzip_report(report: dict[str, Any]) -> bytes:
    return gzip.compress(report_bytes(report), mtime=0)


def report_filename(submitter: str, domain: str, day: str) -> str:
    """RFC 8460 5.3: ``sender!policy-domain!begin!end[!unique-id].json.gz`` (seconds since
    the epoch, UTC) for the gzip'd report."""
    start, end = _day_bounds(day)
    begin, finish = calendar.timegm(start.timetuple()), calendar.timegm(end.timetuple())
    return f"{submitter}!{domain}!{begin}!{finish}.json.gz"


def report_subject(submitter: str, domain: str, identifier: str) -> str:
    """RFC 8460 5.3's Subject."""
    return f"Report Domain: {domain} Submitter: {submitter} Report-ID: <{identifier}>"

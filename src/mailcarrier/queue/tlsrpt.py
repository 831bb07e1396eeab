"""The TLSRPT reports of one day (RFC 8460): which domains get one, where, and what it says.

`day_reports(settings, day)` reads the counts of `day` (delivery/tlsrpt_store.py in
``$data_directory``), asks each policy domain's ``_smtp._tls`` record (routing/tlsrpt.py,
through the resolver of the smtp transport: ``dns_nameservers`` and the rest), and builds each
domain's report (tls/tlsrpt_report.py) with ``tlsrpt_organization_name`` and
``tlsrpt_contact_info``. A domain without a record gets no report (RFC 8460 3) but is listed,
with the reason, so that ``mailcarrier tlsrpt show`` says why. `format_reports()` is that
command's text form. Sending the reports is a later step of this module's neighbours.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mailcarrier.config.settings import Settings
from mailcarrier.delivery.tlsrpt_store import TlsrptStore
from mailcarrier.routing.options import RoutingOptions
from mailcarrier.routing.resolver import DnspythonResolver, Resolver
from mailcarrier.routing.tlsrpt import discover_rua
from mailcarrier.tls.tlsrpt_report import build_report

__all__ = ["DayReport", "day_reports", "format_reports", "yesterday"]


@dataclass(frozen=True, slots=True)
class DayReport:
    """One policy domain's report of one day; `uris` empty: nowhere to send it (`problem`
    says why, "" when the domain publishes no TLSRPT record)."""

    domain: str
    day: str
    uris: tuple[str, ...]
    report: dict[str, Any]
    problem: str = ""

    def to_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {"policy-domain": self.domain, "day": self.day}
        found["rua"] = list(self.uris)
        if self.problem:
            found["problem"] = self.problem
        found["report"] = self.report
        return found


def yesterday(now: datetime.datetime | None = None) -> str:
    """The last complete UTC day, the one a report is made for."""
    moment = now or datetime.datetime.now(datetime.UTC)
    return (moment.astimezone(datetime.UTC) - datetime.timedelta(days=1)).strftime("%Y-%m-%d")


def default_resolver(settings: Settings) -> Resolver:
    options = RoutingOptions.from_settings(settings.for_transport("smtp"))
    return DnspythonResolver(options.resolver_config())


async def day_reports(
    settings: Settings, day: str, *, resolver: Resolver | None = None
) -> list[DayReport]:
    """The reports of `day`, one per policy domain counted that day, by domain."""
    params = settings.params
    store = TlsrptStore(Path(params.data_directory))
    try:
        rows = store.rows(day)
    finally:
        store.close()
    resolver = resolver if resolver is not None else default_resolver(settings)
    reports = []
    for domain in sorted({attempt.reported_by for attempt, _ in rows}):
        found = await discover_rua(resolver, domain)
        problem = found.problem or ("" if found.uris else "no TLSRPT record")
        report = build_report(
            rows,
            domain=domain,
            day=day,
            organization=params.tlsrpt_organization_name,
            contact=params.tlsrpt_contact_info,
        )
        reports.append(DayReport(domain, day, found.uris, report, problem))
    return reports


def format_reports(reports: list[DayReport]) -> list[str]:
    """The text of ``mailcarrier tlsrpt show``: per domain, where its report goes, then per
    policy its counts and failure details."""
    lines = []
    for item in reports:
        where = " ".join(item.uris) if item.uris else f"not sent: {item.problem}"
        lines.append(f"{item.domain} {item.day} report-id {item.report['report-id']}: {where}")
        for entry in item.report["policies"]:
            policy, summary = entry["policy"], entry["summary"]
            mx = " ".join(policy.get("mx-host", []))
            lines.append(
                f"  policy {policy['policy-type']}" + (f" mx {mx}" if mx else "") + ": "
                f"{summary['total-successful-session-count']} successful, "
                f"{summary['total-failure-session-count']} failed"
            )
            lines.extend(f"    {text}" for text in policy.get("policy-string", []))
            for detail in entry.get("failure-details", []):
                receiver = detail.get("receiving-mx-hostname", "")
                if "receiving-ip" in detail:
                    receiver += f"[{detail['receiving-ip']}]"
                reason = detail.get("failure-reason-code", "")
                lines.append(
                    f"    {detail['result-type']}: {detail['failed-session-count']} from "
                    f"{detail.get('sending-mta-ip') or '-'} to {receiver or '-'}"
                    + (f" ({reason})" if reason else "")
                )
    return lines

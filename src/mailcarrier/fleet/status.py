"""``mailcarrier fleet status``: what the fleet's Redis says, as a table or as JSON.

`read_status(settings, recent)` asks Redis (engine.py's `status`) for the nodes seen in the
last `recent` seconds and, for each destination used in that time, the leases held now,
this node's idea of its limits (limits.py) and how far its rate is ahead of the steady
rate (seconds of sending already spent: 0 when the burst is all there). `format_table()`
and `to_json()` present it. Redis unreachable: `FleetUnavailable`, which cli.py reports
as one line with exit 75. Neighbours: engine.py, limits.py; cli.py calls this.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailcarrier.config.settings import Settings
from mailcarrier.fleet.client import make_client, servers
from mailcarrier.fleet.engine import FleetStatus, RedisEngine
from mailcarrier.fleet.limits import FleetLimits, Limits

__all__ = ["StatusReport", "format_table", "read_status", "to_json"]


@dataclass(frozen=True, slots=True)
class StatusReport:
    status: FleetStatus
    limits: dict[str, Limits]  # per destination, as this node's configuration has them


async def read_status(settings: Settings, recent: float) -> StatusReport:
    limits = FleetLimits.load(settings)
    timeout = settings.params.fleet_timeout
    engine = RedisEngine(make_client(settings, timeout), timeout=timeout)
    try:
        status = await engine.status(recent)
    finally:
        await engine.close()
    known = {}
    for row in status.destinations:
        transport, _, nexthop = row.destination.partition(":")
        known[row.destination] = limits.for_destination(transport, nexthop)[0]
    return StatusReport(status, known)


def _rate(limits: Limits | None) -> str:
    if limits is None or limits.rate is None:
        return "-"
    return f"{limits.rate.count}/{limits.rate.period:g}s burst {limits.rate.burst}"


def format_table(report: StatusReport, settings: Settings) -> str:
    lines = [f"shared_state_server: {' '.join(servers(settings))}", ""]
    lines.append(f"{'NODE':<32} LAST SEEN")
    for node, age in report.status.nodes:
        lines.append(f"{node:<32} {age:.0f}s ago")
    if not report.status.nodes:
        lines.append("(none)")
    lines += ["", f"{'DESTINATION':<40} {'LEASES':>6} {'LIMIT':>6}  {'RATE':<24} AHEAD"]
    for row in report.status.destinations:
        limits = report.limits.get(row.destination)
        limit = str(limits.connections) if limits and limits.connections else "-"
        lines.append(
            f"{row.destination:<40} {row.leases:>6} {limit:>6}  {_rate(limits):<24} "
            f"{row.rate_backlog:.1f}s"
        )
    if not report.status.destinations:
        lines.append("(none)")
    return "\n".join(lines) + "\n"


def to_json(report: StatusReport) -> dict[str, object]:
    destinations = []
    for row in report.status.destinations:
        limits = report.limits.get(row.destination)
        rate = limits.rate if limits else None
        destinations.append(
            {
                "destination": row.destination,
                "leases": row.leases,
                "connection_limit": limits.connections if limits else 0,
                "rate": None if rate is None else {"count": rate.count, "period": rate.period},
                "burst": None if rate is None else rate.burst,
                "rate_ahead": round(row.rate_backlog, 3),
            }
        )
    nodes = [{"node_id": n, "last_seen": round(age, 3)} for n, age in report.status.nodes]
    return {"nodes": nodes, "destinations": destinations}

"""Fleet leases of open connections: which destination each connection's lease counts for.

In fleet mode the agent takes a lease (fleet/gate.py) for the request's destination before it
opens a connection, and `hold()`s it here with the connection: the lease is released when
the connection is gone (closed, dropped, or evicted from the cache). A cached session may be
taken by another destination's request (reuse.py finds it by server address); `rebind()`
then moves the connection's lease to that destination before the session is used, so that
each destination's fleet count is the connections actually serving it: a lease of the new
destination is taken first (refused: `Busy` or `DeadDestination`, and the session is not
used for that request), then the old one is released. One node (LocalGate): nothing is
asked. Neighbours: agent.py (connects and holds), reuse.py (rebinds), fleet/gate.py.
"""

from __future__ import annotations

from mailcarrier.fleet import Busy, DeadDestination, FleetGate, Lease
from mailcarrier.transport.connection import Connection

__all__ = ["ConnectionLeases"]


class ConnectionLeases:
    def __init__(self, gate: FleetGate) -> None:
        self.gate = gate
        self._held: dict[Connection, tuple[str, Lease]] = {}

    def hold(self, conn: Connection, destination: str, lease: Lease) -> None:
        """`conn` holds `lease` (of `destination`, ``transport:nexthop``) until it is gone."""
        self._held[conn] = (destination, lease)
        conn.when_lost(lambda: self._lost(conn))

    def destination(self, conn: Connection) -> str | None:
        """The destination whose lease `conn` holds (None: none held here)."""
        entry = self._held.get(conn)
        return None if entry is None else entry[0]

    def _lost(self, conn: Connection) -> None:
        entry = self._held.pop(conn, None)
        if entry is not None:
            entry[1].release()

    async def rebind(
        self, conn: Connection, transport: str, nexthop: str
    ) -> Busy | DeadDestination | None:
        """Before `conn` serves ``transport:nexthop``: None when its lease counts for that
        destination now (already did, or moved), else why not."""
        entry = self._held.get(conn)
        destination = f"{transport}:{nexthop}"
        if entry is None or entry[0] == destination:
            return None
        answer = await self.gate.lease(transport, nexthop)
        if isinstance(answer, Busy | DeadDestination):
            return answer
        current = self._held.get(conn)
        if current is None:  # gone while we asked: nothing to hold the new lease
            answer.release()
            return None
        self._held[conn] = (destination, answer)
        current[1].release()
        return None

    def statistics(self) -> dict[str, int]:
        """Connections holding a lease, per destination."""
        counts: dict[str, int] = {}
        for destination, _ in self._held.values():
            counts[destination] = counts.get(destination, 0) + 1
        return counts

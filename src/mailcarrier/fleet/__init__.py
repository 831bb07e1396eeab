"""Fleet mode (issue 19): several mailcarrier nodes share destination limits through Redis.

Each node keeps its own queue; what must hold for the fleet as a whole lives in Redis:
connection leases per destination, message rates (GCRA), and shared memories (dead hosts,
entries of shared caches). gate.py is what delivery/ uses (`FleetGate`, and `LocalGate`
for a single node); engine.py and scripts.py talk to Redis; client.py makes the client from
`shared_state_server`; limits.py resolves a destination's limits; node.py names the node;
status.py is ``mailcarrier fleet status``. Uses config/ and tables/; used by delivery/,
queue/ and cli.py.
"""

from __future__ import annotations

from mailcarrier.fleet.gate import Busy, DeadDestination, FleetGate, Lease, LocalGate, make_gate

__all__ = ["Busy", "DeadDestination", "FleetGate", "Lease", "LocalGate", "make_gate"]

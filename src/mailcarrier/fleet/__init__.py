"""Fleet mode (issue 19): several mailcarrier nodes share destination limits through Redis.

Each node keeps its own queue; what must hold for the fleet as a whole lives in Redis:
connection leases per destination, message rates (GCRA), and shared memories (dead hosts,
entries of shared caches). gate.py is what delivery/ uses (`FleetGate`, and `LocalGate`
for a single node); engine.py and scripts.py talk to Redis; client.py makes the client from
`shared_state_server`; limits.py resolves a destination's limits; node.py names the node;
status.py is ``mailcarrier fleet status``. Uses config/ and tables/; used by delivery/,
queue/ and cli.py. The names below load on first use (PEP 562): naming the node (node.py,
for the event records of every command) does not load the Redis engine.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailcarrier.lazy import lazy_names

if TYPE_CHECKING:
    from mailcarrier.fleet.gate import (
        Busy,
        DeadDestination,
        FleetGate,
        Lease,
        LocalGate,
        make_gate,
    )

__all__ = ["Busy", "DeadDestination", "FleetGate", "Lease", "LocalGate", "make_gate"]


__getattr__, __dir__ = lazy_names(__name__, {"gate": __all__}, globals())

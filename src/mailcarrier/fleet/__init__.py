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

import importlib
from typing import TYPE_CHECKING, Any

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


def __getattr__(name: str) -> Any:
    """A public name, imported from gate.py on first use (then kept here); a submodule as
    Python's import system gives it."""
    if name in __all__:
        value = getattr(importlib.import_module(f"{__name__}.gate"), name)
        globals()[name] = value
        return value
    try:
        return importlib.import_module(f"{__name__}.{name}")
    except ModuleNotFoundError as exc:
        if exc.name != f"{__name__}.{name}":
            raise
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})

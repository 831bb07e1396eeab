"""The declarative parameter table: every main.cf parameter mailcarrier knows, in `PARAMS`.

Each `Param` has a Postfix name, a type, and a default written in main.cf syntax (it may refer
to other parameters with ``$name``). `smtp_` parameters with an LMTP twin are declared with
`mirror=True` (or an explicit ``lmtp_`` name) and get an ``lmtp_`` entry of the same type. The
declarations are split by subject across `params_smtp.py`, `params_tls.py`,
`params_system.py`, `params_fleet.py` and `params_observe.py`; the vocabulary (`Param`,
`ParamType`, `declare`) is in `paramtype.py`. This module only assembles; `settings.py`
validates values and `parser.py` reads main.cf.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Final

from mailcarrier.config.params_fleet import FLEET
from mailcarrier.config.params_observe import OBSERVE
from mailcarrier.config.params_smtp import PROTOCOL
from mailcarrier.config.params_system import SYSTEM
from mailcarrier.config.params_tls import TLS_SASL
from mailcarrier.config.paramtype import Param, ParamType, declare

__all__ = ["PARAMS", "PER_TRANSPORT", "Param", "ParamType", "declare"]


def _assemble() -> dict[str, Param]:
    table: dict[str, Param] = {}
    for group in (*SYSTEM, *PROTOCOL, *TLS_SASL, *FLEET, *OBSERVE):
        for param in group:
            # A duplicate declaration would silently shadow another default: refuse it.
            if param.name in table:
                raise RuntimeError(f"parameter {param.name} declared twice")
            table[param.name] = param
    return table


PARAMS: Final[dict[str, Param]] = _assemble()

# Scheduler parameters that exist per transport, as Postfix derives them from master.cf
# service names: "<transport>_<suffix>" falls back to the parameter named here. The smtp_ and
# lmtp_ forms of the first two are also declared in PARAMS; any other transport name (relay,
# a transport_maps target) is recognised by this table.
PER_TRANSPORT: Final[Mapping[str, str]] = MappingProxyType(
    {
        "destination_concurrency_limit": "default_destination_concurrency_limit",
        "destination_recipient_limit": "default_destination_recipient_limit",
        "initial_destination_concurrency": "initial_destination_concurrency",
        "destination_rate_delay": "default_destination_rate_delay",
        "destination_concurrency_failed_cohort_limit": (
            "default_destination_concurrency_failed_cohort_limit"
        ),
        "destination_concurrency_positive_feedback": (
            "default_destination_concurrency_positive_feedback"
        ),
        "destination_concurrency_negative_feedback": (
            "default_destination_concurrency_negative_feedback"
        ),
    }
)

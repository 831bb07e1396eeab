"""Configuration: main.cf parsing, the declarative parameter table, and the frozen settings.

`Settings` is parsed once (every known parameter expanded and validated eagerly, so nothing
half-parsed is ever used) and passed down; `Settings.for_transport("smtp"|"lmtp")` gives the
view an agent reads, where ``smtp_`` names resolve to their ``lmtp_`` mirrors for LMTP as in
Postfix. Module map: `params` (the table, declared in `params_smtp`, `params_tls`,
`params_system`), `parser` (main.cf syntax), `expand` (``$name``), `convert` (types),
`defaults` (machine- and user-dependent defaults), `settings`, `edit` and `postconf`
(``mailcarrier conf``). Lookup tables are one layer down, in `mailcarrier.tables`.
"""

from __future__ import annotations

from mailcarrier.config.params import PARAMS, PER_TRANSPORT, Param, ParamType
from mailcarrier.config.settings import AgentSettings, Settings

__all__ = ["PARAMS", "PER_TRANSPORT", "AgentSettings", "Param", "ParamType", "Settings"]

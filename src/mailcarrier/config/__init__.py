"""Configuration: main.cf parsing, the declarative parameter table, and the frozen settings.

`Settings` is parsed once (every known parameter validated eagerly, so nothing half-parsed is
ever used) and passed down; `Settings.for_transport("smtp"|"lmtp")` gives the view an agent
reads, where ``smtp_`` names resolve to their ``lmtp_`` mirrors for LMTP as in Postfix.
"""

from __future__ import annotations

from mailcarrier.config.params import PARAMS, Param, ParamType
from mailcarrier.config.settings import AgentSettings, Settings

__all__ = ["PARAMS", "AgentSettings", "Param", "ParamType", "Settings"]

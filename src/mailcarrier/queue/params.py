"""The queue's view of the configuration: the typed parameters (`main`, config/views.py) and
the few values the queue derives from them.

`transport_int` / `transport_str` read the per-transport scheduler parameters that Postfix
derives from master.cf service names (``smtp_destination_concurrency_limit``, else
``default_destination_concurrency_limit``); the names are dynamic, so they go through
`Settings.get_transport`. Everything else is an attribute of `main`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from mailcarrier.config.defaults import default_queue_directory
from mailcarrier.config.settings import Settings
from mailcarrier.config.views import MainParams

__all__ = ["QueueParams"]


@dataclass(frozen=True, slots=True)
class QueueParams:
    settings: Settings
    main: MainParams = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "main", self.settings.params)

    def transport_int(self, transport: str, suffix: str) -> int:
        """``<transport>_<suffix>``, else ``default_<suffix>`` (Settings.get_transport)."""
        value = self.settings.get_transport(transport, suffix)
        assert isinstance(value, int) and not isinstance(value, bool), suffix
        return value

    def transport_str(self, transport: str, suffix: str) -> str:
        """``<transport>_<suffix>``, else ``default_<suffix>`` (Settings.get_transport)."""
        value = self.settings.get_transport(transport, suffix)
        assert isinstance(value, str), suffix
        return value

    def queue_directory(self) -> Path:
        text = self.main.queue_directory
        return Path(text).expanduser() if text else default_queue_directory()

    def myorigin(self) -> str:
        return self.main.myorigin or self.main.myhostname or "localhost"

    def myhostname(self) -> str:
        return self.main.myhostname or "localhost"

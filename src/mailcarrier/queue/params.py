"""The queue's view of the configuration: one accessor per value, with Postfix's defaults.

Every parameter the queue reads goes through `QueueParams`, so a parameter that the running
configuration does not (yet) declare falls back to Postfix's default instead of failing, and
so the scheduler reads values once per (re)load rather than reaching into settings everywhere.
"""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailcarrier.config.convert import parse_time
from mailcarrier.config.defaults import default_queue_directory
from mailcarrier.config.settings import Settings

__all__ = ["QueueParams"]

# Postfix defaults, used only when the parameter table lacks the name.
_FALLBACK: Final[dict[str, str]] = {
    "maximal_queue_lifetime": "5d",
    "bounce_queue_lifetime": "5d",
    "minimal_backoff_time": "300s",
    "maximal_backoff_time": "4000s",
    "queue_run_delay": "300s",
    "delay_warning_time": "0h",
    "default_destination_concurrency_limit": "20",
    "initial_destination_concurrency": "5",
    "default_destination_recipient_limit": "50",
    "default_destination_concurrency_failed_cohort_limit": "1",
    "default_process_limit": "100",
    "bounce_size_limit": "50000",
    "header_size_limit": "102400",
    "message_size_limit": "10240000",
    "notify_classes": "resource, software",
    "bounce_notice_recipient": "postmaster",
    "2bounce_notice_recipient": "postmaster",
    "delay_notice_recipient": "postmaster",
    "error_notice_recipient": "postmaster",
    "double_bounce_sender": "double-bounce",
    "default_transport": "smtp",
    "mail_name": "Postfix",
}


@dataclass(frozen=True, slots=True)
class QueueParams:
    settings: Settings

    def _known(self, name: builtins.str) -> bool:
        try:
            self.settings.value(name)
        except KeyError:
            return False
        return True

    def str(self, name: builtins.str) -> builtins.str:
        if self._known(name):
            return self.settings.get_str(name)
        return _FALLBACK.get(name, "")

    def int(self, name: builtins.str) -> builtins.int:
        if self._known(name):
            return self.settings.get_int(name)
        return int(_FALLBACK[name])

    def time(self, name: builtins.str) -> float:
        if self._known(name):
            return self.settings.get_time(name)
        return parse_time(_FALLBACK[name], "s") if name in _FALLBACK else 0.0

    def list(self, name: builtins.str) -> tuple[builtins.str, ...]:
        if self._known(name):
            return self.settings.get_list(name)
        text = _FALLBACK.get(name, "")
        return tuple(x for x in text.replace(",", " ").split() if x)

    def transport_int(self, transport: builtins.str, suffix: builtins.str) -> builtins.int:
        """``smtp_<suffix>`` / ``lmtp_<suffix>``, else ``default_<suffix>``."""
        name = f"{transport}_{suffix}"
        if self._known(name):
            return self.settings.get_int(name)
        return self.int(f"default_{suffix}")

    def transport_str(self, transport: builtins.str, suffix: builtins.str) -> builtins.str:
        """``smtp_<suffix>`` / ``lmtp_<suffix>``, else ``default_<suffix>``."""
        name = f"{transport}_{suffix}"
        if self._known(name):
            return self.settings.get_str(name)
        return self.str(f"default_{suffix}")

    def queue_directory(self) -> Path:
        text = self.str("queue_directory")
        return Path(text).expanduser() if text else default_queue_directory()

    def myorigin(self) -> builtins.str:
        return self.str("myorigin") or self.str("myhostname") or "localhost"

    def myhostname(self) -> builtins.str:
        return self.str("myhostname") or "localhost"

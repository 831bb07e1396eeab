"""smtp_delivery_status_filter (postconf(5), default_delivery_status_filter): rewrite the
status code and text of a recipient's verdict just before it is recorded and logged.

The search string is the enhanced status code, a space, and the explanatory text
(``5.1.1 host h[a] said: ...``); a result of the same form replaces both. A result that is
not ``X.Y.Z text``, or that turns success (2.X.X) into failure or back, is ignored with a
warning, as Postfix's dsn_filter does. Changing 4.X.X into 5.X.X (or back) changes the verdict
from deferred to bounced (or back). recipients.py calls this for every mark.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Final

from mailcarrier.delivery.trouble import Verdict
from mailcarrier.status import DeliveryStatus
from mailcarrier.tables.maps import Maps

__all__ = ["StatusFilter"]

_RESULT: Final = re.compile(r"([245]\.\d{1,3}\.\d{1,3})\s+(.*)", re.ASCII | re.DOTALL)
_STATUS: Final = {
    "2": DeliveryStatus.SENT,
    "4": DeliveryStatus.DEFERRED,
    "5": DeliveryStatus.BOUNCED,
}


class StatusFilter:
    """Apply a delivery status filter table to verdicts; `warning` gets Postfix's warnings."""

    def __init__(self, maps: Maps, name: str, warning: Callable[[str], None]) -> None:
        self.maps = maps
        self.name = name
        self.warning = warning

    def __call__(self, verdict: Verdict) -> Verdict:
        found = self.maps.find(f"{verdict.dsn} {verdict.diagnostic}")
        if found is None:
            return verdict
        m = _RESULT.fullmatch(found.value.strip())
        if m is None:
            self.warning(f"{self.name}: bad status code: {found.value}")
            return verdict
        dsn, text = m.group(1), m.group(2)
        # The class of the verdict (success or failure) is not the filter's to change.
        if (dsn[0] == "2") != (verdict.dsn[:1] == "2"):
            self.warning(
                f"{self.name}: status code class change is not allowed: {verdict.dsn} -> {dsn}"
            )
            return verdict
        return replace(verdict, status=_STATUS[dsn[0]], dsn=dsn, diagnostic=text)

"""Postfix process names the queue logs under (``postfix/qmgr[pid]: ...``)."""

from __future__ import annotations

from typing import Final

QMGR: Final = "qmgr"
BOUNCE: Final = "bounce"
PICKUP: Final = "pickup"
CLEANUP: Final = "cleanup"
POSTSUPER: Final = "postsuper"
POSTQUEUE: Final = "postqueue"
ERROR: Final = "error"
RETRY: Final = "retry"

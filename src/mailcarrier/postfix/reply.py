"""What a delivery agent writes to qmgr(8), sans-IO (global/deliver_request.c, dsn_print.c):
the `HELLO` right after accept, and the `final_reply` after the delivery, which carries the
hop status (a `Dsn`: empty unless the whole destination failed) and the request status,
`DEL_STAT_FINAL` (every recipient delivered, bounced or otherwise final: qmgr then removes
the queue file) or `DEL_STAT_DEFER`. `dsn_pairs` is dsn_print(), which the bounce, defer
and trace requests use too. Neighbours: request.py (what qmgr sends), attr.py (framing).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

from mailcarrier.errors import UsageError
from mailcarrier.postfix.attr import Value, encode
from mailcarrier.status import fast_init

__all__ = [
    "DEL_STAT_DEFER",
    "DEL_STAT_FINAL",
    "DSN_ATTRIBUTES",
    "HELLO",
    "Dsn",
    "dsn_pairs",
    "final_reply",
]

# The request status of the final reply: every recipient final, or not.
DEL_STAT_FINAL: Final = 0
DEL_STAT_DEFER: Final = -1

# The agent speaks first, right after accept (deliver_request_initial).
HELLO: Final = b"protocol\0delivery_request_protocol\0\0"


DSN_ATTRIBUTES: Final = (
    "status",
    "diag_type",
    "diag_text",
    "mta_type",
    "mta_mname",
    "action",
    "reason",
)


@fast_init
@dataclass(frozen=True, slots=True)
class Dsn:
    """A DSN as dsn_print() sends it; all "" is the empty hop status."""

    status: str = ""  # X.Y.Z
    diag_type: str = ""  # "smtp" when diag_text is a server reply
    diag_text: str = ""
    mta_type: str = ""  # "dns"
    mta_mname: str = ""  # the server's name
    action: str = ""  # failed, delayed, delivered, relayed, expanded
    reason: str = ""


def dsn_pairs(dsn: Dsn) -> list[tuple[str, Value]]:
    """dsn_print()'s attributes, in its order."""
    values = (
        dsn.status,
        dsn.diag_type,
        dsn.diag_text,
        dsn.mta_type,
        dsn.mta_mname,
        dsn.action,
        dsn.reason,
    )
    return list(zip(DSN_ATTRIBUTES, values, strict=True))


def final_reply(hop: Dsn | None, status: int) -> bytes:
    """deliver_request_final(): the hop status (None: empty) and the request status,
    `DEL_STAT_FINAL` (0) or `DEL_STAT_DEFER` (-1, sent as 4294967295)."""
    if status not in (DEL_STAT_FINAL, DEL_STAT_DEFER):
        raise UsageError(f"bad delivery request status {status} (want 0 or -1)")
    if hop is None:
        return _PLAIN[status]
    return encode([*dsn_pairs(hop), ("status", status)])


# The replies with the empty hop status, made once (almost every request ends with one).
_PLAIN: Final = {s: encode([*dsn_pairs(Dsn()), ("status", s)]) for s in (0, -1)}

"""Queue IDs in Postfix's long form: sortable by time, unique, safe as file names.

Postfix's enable_long_queue_ids format: 10 base-52 digits of seconds and microseconds,
"z", then a base-51 random part. We keep the same alphabet and the property that matters to
operators: IDs sort by arrival time and never repeat. Used by the queue and by `deliver`.
"""

from __future__ import annotations

import os
import time
from typing import Final

__all__ = ["new_queue_id"]

_DIGITS: Final = "0123456789BCDFGHJKLMNPQRSTVWXYbcdfghjklmnpqrstvwxy"  # no vowels, no z


def _encode(value: int, width: int) -> str:
    out = []
    base = len(_DIGITS)
    for _ in range(width):
        value, rem = divmod(value, base)
        out.append(_DIGITS[rem])
    return "".join(reversed(out))


def new_queue_id(now: float | None = None) -> str:
    t = time.time() if now is None else now
    micros = int(t * 1_000_000)
    # 40 random bits from os.urandom(), as secrets.randbits(40) takes them (without loading
    # hashlib and OpenSSL for it: a submission makes one ID).
    return _encode(micros, 10) + "z" + _encode(int.from_bytes(os.urandom(5), "big"), 5)

"""Postfix's MSG_STATS, the ``time`` attribute of a delivery request (global/msg_stats.h,
msg_stats_print.c, msg_stats_scan.c): when the message arrived, entered the active queue,
reached the agent, got a connection and was delivered, and how often the connection had been
used. Postfix sends the C struct's raw memory in base64; both ends refuse any other size.
Times here are float seconds (0: not set); a struct timeval of a time before 2106 comes back
as the same seconds and microseconds. Pure values: request.py parses the attribute with it,
the log line (delay=, delays=, conn_use=) is computed elsewhere from these.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass
from typing import Final

from mailcarrier.postfix.attr import AttrError
from mailcarrier.status import fast_init

__all__ = ["MSG_STATS_SIZE", "MsgStats"]

# Five struct timevals (incoming_arrival, active_arrival, agent_handoff, conn_setup_done,
# deliver_done) and an int reuse_count, padded: 88 bytes on Linux LP64, sent as raw memory.
_MSG_STATS: Final = struct.Struct("=10qi4x")
MSG_STATS_SIZE: Final = _MSG_STATS.size  # 88


def _timeval(seconds: float) -> tuple[int, int]:
    sec = math.floor(seconds)
    usec = round((seconds - sec) * 1e6)
    if usec >= 1_000_000:
        sec, usec = sec + 1, usec - 1_000_000
    return sec, usec


@fast_init
@dataclass(frozen=True, slots=True)
class MsgStats:
    """Postfix's MSG_STATS, times in seconds since the epoch (0: not set)."""

    incoming_arrival: float = 0.0
    active_arrival: float = 0.0
    agent_handoff: float = 0.0
    conn_setup_done: float = 0.0
    deliver_done: float = 0.0
    reuse_count: int = 0

    @classmethod
    def unpack(cls, blob: bytes) -> MsgStats:
        """The struct's raw bytes; any other length is refused, as msg_stats_scan does."""
        if len(blob) != _MSG_STATS.size:
            raise AttrError(f"msg_stats_scan: size mis-match: {len(blob)} != {_MSG_STATS.size}")
        f = _MSG_STATS.unpack(blob)
        return cls(
            f[0] + f[1] / 1e6,  # incoming_arrival
            f[2] + f[3] / 1e6,  # active_arrival
            f[4] + f[5] / 1e6,  # agent_handoff
            f[6] + f[7] / 1e6,  # conn_setup_done
            f[8] + f[9] / 1e6,  # deliver_done
            f[10],  # reuse_count
        )

    def pack(self) -> bytes:
        times = (
            self.incoming_arrival,
            self.active_arrival,
            self.agent_handoff,
            self.conn_setup_done,
            self.deliver_done,
        )
        return _MSG_STATS.pack(*(n for t in times for n in _timeval(t)), self.reuse_count)

    @classmethod
    def from_attr(cls, value: bytes) -> MsgStats:
        """The base64 value of the ``time`` attribute."""
        try:
            blob = binascii.a2b_base64(value, strict_mode=True)
        except (binascii.Error, ValueError) as exc:
            raise AttrError(f"malformed base64 data in attribute time: {value[:100]!r}") from exc
        return cls.unpack(blob)

    def to_attr(self) -> str:
        return base64.b64encode(self.pack()).decode("ascii")

"""postfix/msgstats.py: the `time` attribute, the raw MSG_STATS struct in base64."""

from __future__ import annotations

import base64
import struct
from pathlib import Path
from typing import Final

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.postfix.attr import AttrError
from mailcarrier.postfix.msgstats import MSG_STATS_SIZE, MsgStats

# The time attribute of the request qmgr(8) sent (tests/postfix/data/).
_REQUEST: Final = (Path(__file__).parent / "data" / "deliver-request-2rcpt.bin").read_bytes()
CAPTURED: Final = _REQUEST.split(b"\0time\0", 1)[1].split(b"\0", 1)[0]


def test_captured_value() -> None:
    stats = MsgStats.from_attr(CAPTURED)
    assert stats == MsgStats(incoming_arrival=1796224095.174043, active_arrival=1796224105.365566)
    assert stats.to_attr().encode() == CAPTURED
    assert MSG_STATS_SIZE == 88


def test_layout() -> None:
    stats = MsgStats(1.5, 2.25, 3.000001, 4.999999, 5.0, 7)
    fields = struct.unpack("=10qi4x", stats.pack())
    assert fields == (1, 500000, 2, 250000, 3, 1, 4, 999999, 5, 0, 7)
    assert stats.pack()[-4:] == b"\0\0\0\0"  # padding


def test_microseconds_that_round_up_carry() -> None:
    assert struct.unpack("=10qi4x", MsgStats(9.9999996).pack())[:2] == (10, 0)


@pytest.mark.parametrize("size", [0, 80, 87, 89, 96])
def test_other_sizes_are_refused(size: int) -> None:
    with pytest.raises(AttrError) as info:
        MsgStats.from_attr(base64.b64encode(bytes(size)))
    assert str(info.value) == f"msg_stats_scan: size mis-match: {size} != 88"


@pytest.mark.parametrize("value", [b"!!!!", b"AAA", b"AA AA===", "é".encode()])
def test_malformed_base64(value: bytes) -> None:
    with pytest.raises(AttrError, match=r"^malformed base64 data in attribute time: "):
        MsgStats.from_attr(value)


@given(
    st.lists(st.tuples(st.integers(0, 2**32 - 1), st.integers(0, 999_999)), min_size=5, max_size=5),
    st.integers(-(2**31), 2**31 - 1),
)
def test_struct_round_trip(times: list[tuple[int, int]], reuse: int) -> None:
    # Every timeval before 2106 survives the float seconds exactly.
    blob = struct.pack("=10qi4x", *(n for tv in times for n in tv), reuse)
    stats = MsgStats.unpack(blob)
    assert stats.pack() == blob
    assert MsgStats.from_attr(stats.to_attr().encode()) == stats

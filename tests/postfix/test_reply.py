"""postfix/reply.py: what the agent writes to qmgr(8), byte for byte as Postfix wrote it."""

from __future__ import annotations

from pathlib import Path
from typing import Final

import pytest

from mailcarrier.errors import UsageError
from mailcarrier.postfix.attr import AttrParser, encode
from mailcarrier.postfix.reply import (
    DEL_STAT_DEFER,
    DEL_STAT_FINAL,
    DSN_ATTRIBUTES,
    HELLO,
    Dsn,
    dsn_pairs,
    final_reply,
)

DATA: Final = Path(__file__).parent / "data"


def test_hello() -> None:
    assert HELLO == b"protocol\0delivery_request_protocol\0\0"
    assert encode([("protocol", "delivery_request_protocol")]) == HELLO


def test_final_reply_ok_as_captured() -> None:
    assert final_reply(None, DEL_STAT_FINAL) == (DATA / "final-reply-ok.bin").read_bytes()
    assert final_reply(Dsn(), 0) == (DATA / "final-reply-ok.bin").read_bytes()


def test_final_reply_defer_as_captured() -> None:
    assert final_reply(None, DEL_STAT_DEFER) == (DATA / "final-reply-defer.bin").read_bytes()


def test_final_reply_with_a_hop_status() -> None:
    # Real smtp(8) after "connection refused" (postfix-native.md 2.4): 147 bytes.
    reply = final_reply(
        Dsn(status="4.4.1", reason="connect to 127.0.0.1[127.0.0.1]:2599: Connection refused"),
        DEL_STAT_DEFER,
    )
    assert reply == (
        b"status\x004.4.1\0diag_type\0\0diag_text\0\0mta_type\0\0mta_mname\0\0action\0\0"
        b"reason\0connect to 127.0.0.1[127.0.0.1]:2599: Connection refused\0"
        b"status\x004294967295\0\0"
    )
    assert len(reply) == 147


def test_dsn_pairs_in_dsn_print_order() -> None:
    dsn = Dsn("5.3.0", "smtp", "550 no", "dns", "mx.example", "failed", "host said")
    assert dsn_pairs(dsn) == [
        ("status", "5.3.0"),
        ("diag_type", "smtp"),
        ("diag_text", "550 no"),
        ("mta_type", "dns"),
        ("mta_mname", "mx.example"),
        ("action", "failed"),
        ("reason", "host said"),
    ]
    parser = AttrParser()
    parser.feed(final_reply(dsn, 0))
    parsed = parser.next_list()
    assert parsed is not None
    assert [n for n, _ in parsed] == [n.encode() for n in (*DSN_ATTRIBUTES, "status")]


@pytest.mark.parametrize("status", [1, 4294967295, -2])
def test_only_final_or_defer(status: int) -> None:
    with pytest.raises(UsageError, match=r"^bad delivery request status .* \(want 0 or -1\)$"):
        final_reply(None, status)

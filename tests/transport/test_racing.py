"""RFC 8305 connection racing, with connects controlled by events: no network, no timing
assumptions beyond "a stalled attempt never finishes"."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mailcarrier.errors import TransportError
from mailcarrier.transport.connection import Connection, Peer
from mailcarrier.transport.racing import race_connect

V6 = Peer("mx.example", "2001:db8::1", 25, socket.AF_INET6)
V4 = Peer("mx.example", "192.0.2.1", 25, socket.AF_INET)
V6B = Peer("mx.example", "2001:db8::2", 25, socket.AF_INET6)


class _FakeConnection:
    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.aborted = False

    def abort(self) -> None:
        self.aborted = True


class _Connector:
    """connect() outcomes per peer: "ok", "refused" or "stall" (never completes)."""

    def __init__(self, plan: dict[Peer, str]) -> None:
        self.plan = plan
        self.started: list[Peer] = []
        self.cancelled: list[Peer] = []
        self.made: list[_FakeConnection] = []

    async def connect(self, peer: Peer) -> Connection:
        self.started.append(peer)
        outcome = self.plan[peer]
        if outcome == "refused":
            raise TransportError(f"connect to {peer.namaddr}:25: Connection refused")
        if outcome == "stall":
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled.append(peer)
                raise
        conn = _FakeConnection(peer)
        self.made.append(conn)
        return conn  # type: ignore[return-value]


async def test_stalled_first_family_loses_to_the_second() -> None:
    c = _Connector({V6: "stall", V4: "ok", V6B: "ok"})
    result = await race_connect([V6, V4, V6B], c.connect, delay=0.01)
    assert result.peer == V4
    assert c.started == [V6, V4]
    assert c.cancelled == [V6]
    assert result.untried == [V6B]
    assert result.failed == []


async def test_failure_starts_the_next_attempt_at_once() -> None:
    c = _Connector({V6: "refused", V4: "ok"})
    # A delay far longer than any test: only the failure can have started V4.
    result = await race_connect([V6, V4], c.connect, delay=3600)
    assert result.peer == V4
    assert [e.reason for e in result.failed] == [
        "connect to mx.example[2001:db8::1]:25: Connection refused"
    ]


async def test_first_success_wins_without_racing() -> None:
    c = _Connector({V6: "ok", V4: "ok"})
    result = await race_connect([V6, V4], c.connect, delay=3600)
    assert result.peer == V6
    assert c.started == [V6]
    assert result.untried == [V4]


async def test_all_fail() -> None:
    c = _Connector({V6: "refused", V4: "refused"})
    result = await race_connect([V6, V4], c.connect, delay=0.01)
    assert result.connection is None and result.peer is None
    assert len(result.failed) == 2
    assert result.untried == []


async def test_unexpected_errors_propagate_and_nothing_leaks() -> None:
    async def broken(peer: Peer) -> Connection:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        await race_connect([V6], broken, delay=0.01)

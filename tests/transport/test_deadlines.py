"""Deadlines that hold: each reply is read with the limit of the command it answers, in both
pipelining modes, and with smtp_per_request_deadline a trickling server cannot stretch a
reply past its stage's limit (transport/deadlines.py).

The stage limits here are a second or two apart from the server's pauses, and the ceilings
generous: the tests show which limit applied, not how fast anything is.
"""

from __future__ import annotations

import time
from typing import cast

import pytest

from mailcarrier import DeliveryStatus
from mailcarrier.protocol.stages import Stage
from mailcarrier.transport.connection import Connection, Peer
from mailcarrier.transport.deadlines import ContentDeadline, ReplyDeadline
from mailcarrier.transport.options import SessionOptions
from tests.support.clock import FakeClock
from tests.support.deliver import deliver_to
from tests.support.scripted import (
    Expect,
    Pause,
    ReadRest,
    ReadUntil,
    Send,
    Stall,
    StartScripted,
    Step,
    Trickle,
)
from tests.support.settings import CLIENT, client_settings, make_settings
from tests.support.wire import (
    BATCH1,
    DATA,
    EHLO,
    LMTP_START,
    LOCKSTEP_START,
    PIPELINED_START,
    PIPELINING,
    RCPT1,
    WIRE_BODY,
    mail,
    rcpt,
)

SENT, DEFERRED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED
CEILING = 15.0
TIMED_OUT = "conversation with 127.0.0.1[127.0.0.1] timed out while "
DOT_PHRASE = "sending end of data -- message may be sent more than once"

# Every stage but the one under test gets a short limit: a wrong choice shows.
SHORT = {
    "smtp_helo_timeout": "1s",
    "smtp_mail_timeout": "1s",
    "smtp_rcpt_timeout": "1s",
    "smtp_data_init_timeout": "1s",
    "smtp_data_xfer_timeout": "1s",
    "smtp_data_done_timeout": "1s",
}


def _envelope(pipelined: bool, *, data_reply: list[Step]) -> list[Step]:
    """MAIL and RCPT answered at once; `data_reply` answers DATA."""
    if pipelined:
        return [*PIPELINED_START, Expect(BATCH1), Send(b"250 Ok\r\n250 Ok\r\n"), *data_reply]
    return [
        *LOCKSTEP_START,
        Expect(mail()),
        Send(b"250 Ok\r\n"),
        Expect(rcpt(RCPT1)),
        Send(b"250 Ok\r\n"),
        Expect(DATA),
        *data_reply,
    ]


MODES = pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "lockstep"])


# --- the limit of the command a reply answers ----------------------------------------------


@MODES
async def test_data_reply_has_the_data_init_limit(scripted: StartScripted, pipelined: bool) -> None:
    """354 comes 2.5 s after the RCPT reply: within smtp_data_init_timeout (10 s), far past
    the RCPT and MAIL limits (1 s) that a pipelined read might wrongly apply."""
    script = _envelope(pipelined, data_reply=[Pause(2.5), Send(b"354 go\r\n")])
    server = await scripted(
        [*script, ReadUntil(b"\r\n.\r\n"), Send(b"250 2.0.0 queued\r\n"), ReadRest()]
    )
    result, _ = await deliver_to(
        server, config=make_settings(CLIENT, SHORT, smtp_data_init_timeout="10s")
    )
    (r,) = result.recipients
    assert (r.status, r.diagnostic) == (SENT, "250 2.0.0 queued")


@MODES
async def test_data_reply_times_out_with_the_data_init_limit(
    scripted: StartScripted, pipelined: bool
) -> None:
    script = _envelope(pipelined, data_reply=[Stall()])
    server = await scripted(script)
    limits = {**SHORT, "smtp_mail_timeout": "300s", "smtp_rcpt_timeout": "300s"}
    started = time.monotonic()
    result, _ = await deliver_to(server, config=client_settings(**limits))
    (r,) = result.recipients
    assert (r.status, r.diagnostic) == (DEFERRED, TIMED_OUT + "sending DATA command")
    assert time.monotonic() - started < CEILING


@MODES
async def test_dot_reply_has_the_data_done_limit(scripted: StartScripted, pipelined: bool) -> None:
    script = _envelope(pipelined, data_reply=[Send(b"354 go\r\n")])
    server = await scripted(
        [*script, Expect(WIRE_BODY), Pause(2.5), Send(b"250 2.0.0 queued\r\n"), ReadRest()]
    )
    result, _ = await deliver_to(
        server, config=make_settings(CLIENT, SHORT, smtp_data_done_timeout="10s")
    )
    (r,) = result.recipients
    assert (r.status, r.diagnostic) == (SENT, "250 2.0.0 queued")


async def test_lmtp_replies_after_the_dot_have_the_data_done_limit(
    scripted: StartScripted,
) -> None:
    server = await scripted(
        [
            *LMTP_START,
            Expect(mail() + rcpt("b@example.net") + rcpt("c@example.net") + DATA),
            Send(b"250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 b ok\r\n"),
            Stall(),
        ]
    )
    limits = {"lmtp_data_done_timeout": "1s", "lmtp_rcpt_timeout": "300s"}
    started = time.monotonic()
    result, _ = await deliver_to(
        server,
        recipients=["b@example.net", "c@example.net"],
        transport="lmtp",
        config=client_settings(**limits),
    )
    b, c = result.recipients
    assert (b.status, b.diagnostic) == (SENT, "250 2.0.0 b ok")
    assert (c.status, c.diagnostic) == (DEFERRED, TIMED_OUT + DOT_PHRASE)
    assert time.monotonic() - started < CEILING


# --- a server that trickles --------------------------------------------------------------------

GREETING_SLOW = b"220 mx ESMTP\r\n"  # 14 bytes, 0.2 s apart: 2.8 s in all


def _trickled_greeting() -> list[Step]:
    return [
        Trickle(GREETING_SLOW, 0.2),
        Expect(EHLO),
        Send(PIPELINING),
        Expect(BATCH1),
        Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
        ReadUntil(b"\r\n.\r\n"),
        Send(b"250 2.0.0 queued\r\n"),
        ReadRest(),
    ]


async def test_trickle_passes_limits_per_read(scripted: StartScripted) -> None:
    """Postfix's default: every read has the whole limit, and each byte comes in time."""
    server = await scripted(_trickled_greeting())
    result, _ = await deliver_to(server, smtp_helo_timeout="1s")
    (r,) = result.recipients
    assert r.status is SENT


@pytest.mark.parametrize(
    "switch", ["smtp_per_request_deadline", "smtp_per_record_deadline"], ids=["request", "record"]
)
async def test_trickle_is_cut_off_per_request(scripted: StartScripted, switch: str) -> None:
    """With per-request deadlines the greeting must be complete within its limit; the
    older per-record switch turns the same deadline on (Postfix 3.7's default)."""
    server = await scripted(_trickled_greeting())
    started = time.monotonic()
    result, _ = await deliver_to(
        server, config=make_settings(CLIENT, {"smtp_helo_timeout": "1s", switch: "yes"})
    )
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.4.2")
    assert r.diagnostic == TIMED_OUT + "receiving the initial server greeting"
    assert time.monotonic() - started < CEILING


async def test_trickled_rcpt_reply_is_cut_off_per_request(scripted: StartScripted) -> None:
    server = await scripted(
        [
            *LOCKSTEP_START,
            Expect(mail()),
            Send(b"250 Ok\r\n"),
            Expect(rcpt(RCPT1)),
            Trickle(b"250 2.1.5 Ok, eventually\r\n", 0.2),
            ReadRest(),
        ]
    )
    limits = {"smtp_rcpt_timeout": "1s", "smtp_per_request_deadline": "yes"}
    result, _ = await deliver_to(server, config=client_settings(**limits))
    (r,) = result.recipients
    assert (r.status, r.diagnostic) == (DEFERRED, TIMED_OUT + "sending RCPT TO")


async def test_lmtp_has_its_own_switch(scripted: StartScripted) -> None:
    server = await scripted(
        [Trickle(b"220 lmtp ready\r\n", 0.2), Expect(b"LHLO client.example\r\n"), ReadRest()]
    )
    limits = {"lmtp_lhlo_timeout": "1s", "lmtp_per_request_deadline": "yes"}
    result, _ = await deliver_to(server, transport="lmtp", config=client_settings(**limits))
    (r,) = result.recipients
    assert (r.status, r.diagnostic) == (
        DEFERRED,
        TIMED_OUT + "receiving the initial server greeting",
    )


# --- the budgets, with a fake clock ---------------------------------------------------------


class _FakeConn:
    """Takes `cost` seconds of the fake clock per read or drain; records the limit given."""

    def __init__(self, clock: FakeClock, cost: float) -> None:
        self.clock = clock
        self.cost = cost
        self.limits: list[float] = []
        self.peer = Peer("mx.example", "192.0.2.1", 25)

    async def read(self, timeout: float, stage: Stage) -> bytes:
        self.limits.append(timeout)
        self.clock.now += self.cost
        return b"x"

    async def drain(self, timeout: float, stage: Stage) -> None:
        self.limits.append(timeout)
        self.clock.now += self.cost

    timeout_error = Connection.timeout_error


def _options(per_request: bool, **timeouts: float) -> SessionOptions:
    return SessionOptions(
        timeouts=dict(timeouts), per_request_deadline=per_request, min_data_rate=1000
    )


async def _reads(deadline: ReplyDeadline, conn: _FakeConn, awaited: list[object]) -> None:
    for command in awaited:
        await deadline.read(cast(Connection, conn), command, Stage.RCPT)


async def test_reply_budget_adds_up_per_command_and_restarts_for_the_next() -> None:
    clock = FakeClock(100.0)
    conn = _FakeConn(clock, 0.75)
    deadline = ReplyDeadline(_options(True, rcpt_timeout=2.0), clock)
    first, second = object(), object()
    await _reads(deadline, conn, [first, first])
    await _reads(deadline, conn, [second])
    assert conn.limits == [2.0, 1.25, 2.0]


async def test_reply_budget_spent_raises_timeout() -> None:
    clock = FakeClock(100.0)
    conn = _FakeConn(clock, 1.0)
    deadline = ReplyDeadline(_options(True, rcpt_timeout=2.0), clock)
    awaited = object()
    await _reads(deadline, conn, [awaited, awaited])
    with pytest.raises(Exception, match="timed out while sending RCPT TO"):
        await _reads(deadline, conn, [awaited])


async def test_per_call_limits_never_shrink() -> None:
    clock = FakeClock(100.0)
    conn = _FakeConn(clock, 5.0)
    deadline = ReplyDeadline(_options(False, rcpt_timeout=2.0), clock)
    awaited = object()
    await _reads(deadline, conn, [awaited] * 3)
    assert conn.limits == [2.0, 2.0, 2.0]


async def test_content_budget_is_earned_by_bytes_and_capped() -> None:
    clock = FakeClock(100.0)
    conn = _FakeConn(clock, 1.5)
    deadline = ContentDeadline(_options(True, data_xfer_timeout=4.0), clock)

    async def drain() -> None:
        await deadline.drain(cast(Connection, conn), Stage.BODY)

    await drain()  # 4.0 - 1.5
    deadline.sent(1000)  # +1 s at 1000 bytes/s
    await drain()  # 3.5 - 1.5
    deadline.sent(10_000_000)  # capped at the limit
    assert deadline.left == 4.0
    await drain()
    await drain()
    await drain()  # 4.0 - 4.5 < 0
    with pytest.raises(Exception, match="timed out while sending message body"):
        await drain()
    assert conn.limits == [4.0, 3.5, 4.0, 2.5, 1.0]

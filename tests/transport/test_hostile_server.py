"""Servers that break the protocol: garbage, over-long lines, endless replies, stalls.

Each must end in a clean deferral with a clear diagnostic, in bounded time (a short configured
timeout, generous ceilings) and bounded memory (the client stops reading early; tracemalloc
shows its peak stays small while the server would have sent tens of megabytes). Also here:
replies nobody asked for, and envelope values that try to inject commands.
"""

from __future__ import annotations

import time
import tracemalloc

import pytest

import mailcarrier
from mailcarrier import DeliveryStatus, UsageError
from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.printable import printable
from tests.support.deliver import deliver_request, deliver_to
from tests.support.scripted import (
    Expect,
    Hold,
    ReadRest,
    ReadUntil,
    Send,
    SendForever,
    Stall,
    StartScripted,
    Step,
)
from tests.support.settings import CLIENT, make_settings
from tests.support.wire import DATA, EHLO, GREETING, PIPELINING, WIRE_BODY, mail, rcpt

DEFERRED = DeliveryStatus.DEFERRED
START: list[Step] = [Send(GREETING), Expect(EHLO), Send(PIPELINING)]
BATCH = mail() + rcpt("b@example.net") + DATA
# Generous: a stalled stage is limited to 1s; anything near this ceiling is a hang.
CEILING = 15.0


DOT_PHRASE = "sending end of data -- message may be sent more than once"


def protocol_error(namaddr: str, phrase: str) -> str:
    return f"remote protocol error from {namaddr} while {phrase}: "


# --- garbage ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "phrase"),
    [
        ([Send(b"hello there, I am not SMTP\r\n")], "receiving the initial server greeting"),
        ([Send(b"\x00\xff\xfe binary\r\n")], "receiving the initial server greeting"),
        ([Send(GREETING), Expect(EHLO), Send(b"25O-oops\r\n")], "performing the EHLO handshake"),
        ([*START, Expect(BATCH), Send(b"250 Ok\r\nOK THEN\r\n")], "sending RCPT TO"),
        (
            [
                *START,
                Expect(BATCH),
                Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
                Expect(WIRE_BODY),
                Send(b"2500 Ok\r\n"),
            ],
            "sending end of data -- message may be sent more than once",
        ),
    ],
    ids=["greeting-text", "greeting-binary", "ehlo", "rcpt", "dot"],
)
async def test_garbage_reply_defers(
    scripted: StartScripted, script: list[Step], phrase: str
) -> None:
    server = await scripted([*script, ReadRest()])
    started = time.monotonic()
    result, log = await deliver_to(server)
    assert time.monotonic() - started < CEILING
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert r.status is DEFERRED
    assert r.dsn.startswith("4.")
    assert r.diagnostic.startswith(protocol_error(server.namaddr, phrase))
    assert "malformed reply line" in r.diagnostic
    # After a protocol error nothing more is said: no QUIT into a desynchronised stream.
    assert server.conn.captured["rest"] == b""
    # The log line shows the diagnostic with non-printable bytes replaced (log.py).
    assert log.lines[-1].endswith(f"status=deferred ({printable(r.diagnostic)})")


# --- unbounded input --------------------------------------------------------------------------


async def _bounded_delivery(
    scripted: StartScripted, script: list[Step]
) -> tuple[mailcarrier.DeliveryResult, int, int]:
    """Deliver; return the result, the client's peak traced memory and bytes the server sent."""
    server = await scripted(script)
    tracemalloc.start()
    try:
        started = time.monotonic()
        result, _ = await deliver_to(server)
        elapsed = time.monotonic() - started
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    await server.wait_done(CEILING)
    server.check()
    assert elapsed < CEILING
    return result, peak, server.conn.sent_forever


@pytest.mark.parametrize(
    ("prefix", "phrase"),
    [
        (b"220 ", "receiving the initial server greeting"),
        (GREETING, "receiving the initial server greeting"),
    ],
    ids=["greeting-line", "after-greeting"],
)
async def test_over_long_line_in_greeting(
    scripted: StartScripted, prefix: bytes, phrase: str
) -> None:
    # "after-greeting": a complete greeting, then a line that never ends (no command in
    # flight for it: either way the client must give up on it quickly).
    script: list[Step] = [SendForever(b"x" * 1024, prefix=prefix)]
    result, peak, sent = await _bounded_delivery(scripted, script)
    (r,) = result.recipients
    assert r.status is DEFERRED
    assert r.diagnostic.startswith("remote protocol error from 127.0.0.1[127.0.0.1] while ")
    if prefix == b"220 ":
        assert r.diagnostic.startswith(protocol_error("127.0.0.1[127.0.0.1]", phrase))
        assert "reply line longer than" in r.diagnostic
    assert peak < 8 * 1024 * 1024
    assert sent < 64 * 1024 * 1024


async def test_over_long_line_in_rcpt_reply(scripted: StartScripted) -> None:
    script: list[Step] = [
        *START,
        Expect(BATCH),
        SendForever(b"y" * 1024, prefix=b"250 2.1.0 Ok\r\n550 5.1.1 "),
    ]
    result, peak, _ = await _bounded_delivery(scripted, script)
    (r,) = result.recipients
    assert r.status is DEFERRED
    assert r.diagnostic.startswith(protocol_error("127.0.0.1[127.0.0.1]", "sending RCPT TO"))
    assert "reply line longer than" in r.diagnostic
    assert peak < 8 * 1024 * 1024


@pytest.mark.parametrize(
    ("script", "phrase"),
    [
        (
            [Send(GREETING), Expect(EHLO), SendForever(b"250-SOMETHING\r\n")],
            "performing the EHLO handshake",
        ),
        (
            [
                *START,
                Expect(BATCH),
                Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
                Expect(WIRE_BODY),
                SendForever(b"250-still going\r\n"),
            ],
            "sending end of data -- message may be sent more than once",
        ),
    ],
    ids=["ehlo", "dot"],
)
async def test_endless_multiline_reply(
    scripted: StartScripted, script: list[Step], phrase: str
) -> None:
    result, peak, sent = await _bounded_delivery(scripted, script)
    (r,) = result.recipients
    assert r.status is DEFERRED
    assert r.diagnostic.startswith(protocol_error("127.0.0.1[127.0.0.1]", phrase))
    assert "multi-line reply longer than" in r.diagnostic
    assert peak < 8 * 1024 * 1024
    assert sent < 64 * 1024 * 1024


# --- stalls -----------------------------------------------------------------------------------

STALLS: dict[str, tuple[list[Step], str, str]] = {
    "greeting": ([], "smtp_helo_timeout", "receiving the initial server greeting"),
    "ehlo": ([Send(GREETING), Expect(EHLO)], "smtp_helo_timeout", "performing the EHLO handshake"),
    "mail": ([*START, Expect(BATCH)], "smtp_mail_timeout", "sending MAIL FROM"),
    "rcpt": ([*START, Expect(BATCH), Send(b"250 Ok\r\n")], "smtp_rcpt_timeout", "sending RCPT TO"),
    "data": (
        [*START, Expect(BATCH), Send(b"250 Ok\r\n250 Ok\r\n")],
        "smtp_data_init_timeout",
        "sending DATA command",
    ),
    "dot": (
        [*START, Expect(BATCH), Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n"), Expect(WIRE_BODY)],
        "smtp_data_done_timeout",
        "sending end of data -- message may be sent more than once",
    ),
}


@pytest.mark.parametrize("stage", list(STALLS))
async def test_stalled_server_times_out_per_stage(scripted: StartScripted, stage: str) -> None:
    """Only the stage's own timeout is short: the deadline comes from the right parameter."""
    script, parameter, phrase = STALLS[stage]
    server = await scripted([*script, Stall()])
    started = time.monotonic()
    result, log = await deliver_to(server, config=make_settings(CLIENT, {parameter: "1s"}))
    elapsed = time.monotonic() - started
    await server.wait_done()
    server.check()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.4.2")
    assert r.diagnostic == f"conversation with 127.0.0.1[127.0.0.1] timed out while {phrase}"
    assert 0.9 < elapsed < CEILING
    # A timed-out session is abandoned: no QUIT (nor anything else) after the stall began.
    assert server.conn.captured["stall"] == b""
    assert log.lines[-1].endswith(f"dsn=4.4.2, status=deferred ({r.diagnostic})")


async def test_server_that_stops_reading_the_body_times_out(scripted: StartScripted) -> None:
    body = b"Subject: big\n\n" + (b"z" * 100 + b"\n") * (48 * 1024 * 1024 // 101)
    server = await scripted(
        [
            *START,
            Expect(BATCH),
            Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
            ReadUntil(b"zzz\r\n", keep=False),
            # Stop reading: the client's writes fill the socket buffers and block.
            Hold(),
        ]
    )
    started = time.monotonic()
    result, _ = await deliver_to(server, body=body, smtp_data_xfer_timeout="1s")
    elapsed = time.monotonic() - started
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.4.2")
    assert r.diagnostic == (
        "conversation with 127.0.0.1[127.0.0.1] timed out while sending message body"
    )
    assert elapsed < CEILING


# --- replies nobody asked for -----------------------------------------------------------------


async def test_reply_with_no_command_in_flight_defers_cleanly(scripted: StartScripted) -> None:
    """An extra reply after the EHLO reply would desynchronise the pipeline."""
    server = await scripted(
        [Send(GREETING), Expect(EHLO), Send(PIPELINING + b"250 2.0.0 surprise\r\n"), ReadRest()]
    )
    result, _ = await deliver_to(server)
    await server.wait_done()
    (r,) = result.recipients
    assert r.status is DEFERRED
    assert r.diagnostic.startswith("remote protocol error from 127.0.0.1[127.0.0.1]")
    # Not a single MAIL FROM went out into the desynchronised stream.
    assert b"MAIL FROM" not in server.conn.received


async def test_unsolicited_reply_after_final_dot_reply_defers(scripted: StartScripted) -> None:
    """A second reply behind the reply to the dot makes the verdict ambiguous: the same
    bytes are what a server sends that answered early (during the content) and then gave
    its real verdict. The attempt is deferred (the message may be sent twice, never lost)
    and the connection is dropped without QUIT."""
    server = await scripted(
        [
            *START,
            Expect(BATCH),
            Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 Ok: queued\r\n250 2.0.0 and again\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server)
    await server.wait_done()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.4.2")
    assert r.diagnostic == (
        protocol_error("127.0.0.1[127.0.0.1]", DOT_PHRASE)
        + "unexpected data from server after its last reply"
    )
    assert server.conn.captured["rest"] == b""


# --- command injection through the envelope ---------------------------------------------------


@pytest.mark.parametrize(
    "field",
    ["recipient", "sender", "orig_address", "envid", "nexthop"],
)
async def test_envelope_with_crlf_is_refused_before_connecting(
    scripted: StartScripted, field: str
) -> None:
    server = await scripted([Send(GREETING), ReadRest()])
    evil = "x@example.net>\r\nRCPT TO:<evil@example.com"
    values = {
        "recipient": "b@example.net",
        "sender": "a@example.org",
        "orig_address": "",
        "envid": "",
        "nexthop": server.nexthop,
    }
    values[field] = values[field] + evil if field == "nexthop" else evil
    with pytest.raises(UsageError, match="CR, LF or NUL"):
        request = DeliveryRequest(
            queue_id="4ABCDEF123",
            nexthop=values["nexthop"],
            sender=values["sender"],
            recipients=(Recipient(values["recipient"], orig_address=values["orig_address"]),),
            content=__import__("io").BytesIO(b"x\n"),
            dsn_envid=values["envid"],
        )
        await deliver_request(request)
    assert server.connections == []


async def test_nul_in_recipient_is_refused(scripted: StartScripted) -> None:
    server = await scripted([Send(GREETING), ReadRest()])
    with pytest.raises(UsageError):
        mailcarrier.make_request(
            b"x\n", sender="a@example.org", recipients=["b\0@example.net"], nexthop=server.nexthop
        )
    assert server.connections == []


async def test_helo_name_with_crlf_injects_nothing(scripted: StartScripted) -> None:
    """CR/LF in smtp_helo_name is a configuration error naming the parameter (exit 78 from
    the CLI); the server never sees the would-be injected command."""
    server = await scripted([Send(GREETING), ReadRest()])
    with pytest.raises(mailcarrier.ConfigError, match="smtp_helo_name"):
        await deliver_to(server, smtp_helo_name="client.example\r\nMAIL FROM:<evil@example.com>")
    await server.stop()
    assert b"evil" not in b"".join(c.received for c in server.connections)

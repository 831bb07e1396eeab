"""Replies that arrive early or unasked: never a verdict, always a deferral without reuse.

A reply the server sends while the message content is still going out is not the verdict on
the message (RFC 5321 4.1.1.4: the reply to the final dot is); bytes from the server with no
command in flight, at any stage and in both pipelining modes, are a remote protocol error.
The attempt is deferred with the stage's wording, nothing more is written to the server (no
final dot after an early reply, no QUIT into a desynchronised stream), the connection is not
reused, and the API returns values while the CLI prints its JSON and exits 75.
"""

from __future__ import annotations

import asyncio
import io
import json

import pytest

import mailcarrier
from mailcarrier.cli import run
from mailcarrier.status import DeliveryStatus
from tests.support.deliver import BODY, caching_agent, deliver_to, deliver_via
from tests.support.scripted import Expect, Pause, ReadRest, ReadUntil, Send, StartScripted, Step
from tests.support.settings import HELO_NAME, make_settings
from tests.support.wire import (
    BATCH1,
    DATA,
    EHLO,
    GREETING,
    LHLO,
    LMTP_START,
    LOCKSTEP_START,
    PIPELINED_START,
    PIPELINING,
    QUIT,
    RCPT1,
    RSET,
    WIRE_BODY,
    ehlo_reply,
    mail,
    rcpt,
)

DEFERRED, SENT = DeliveryStatus.DEFERRED, DeliveryStatus.SENT
NAMADDR = "127.0.0.1[127.0.0.1]"
UNASKED = "unexpected data from server with no command in flight"
AFTER_LAST = "unexpected data from server after its last reply"
BODY_PHRASE = "sending message body"
DOT_PHRASE = "sending end of data -- message may be sent more than once"


def diagnostic(phrase: str, problem: str = UNASKED) -> str:
    return f"remote protocol error from {NAMADDR} while {phrase}: {problem}"


def assert_deferred(result: mailcarrier.DeliveryResult, text: str) -> None:
    for r in result.recipients:
        assert (r.status, r.dsn, r.diagnostic) == (DEFERRED, "4.4.2", text)


# --- a reply before the final dot -----------------------------------------------------------


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "lockstep"])
async def test_reply_behind_354_is_not_the_verdict(
    scripted: StartScripted, pipelined: bool
) -> None:
    """354 and an early 250 in one segment: no content and no dot go out."""
    early = b"354 go ahead\r\n250 2.0.0 Ok: queued early\r\n"
    if pipelined:
        script = [*PIPELINED_START, Expect(BATCH1), Send(b"250 Ok\r\n250 Ok\r\n" + early)]
    else:
        script = [
            *LOCKSTEP_START,
            Expect(mail()),
            Send(b"250 Ok\r\n"),
            Expect(rcpt(RCPT1)),
            Send(b"250 Ok\r\n"),
            Expect(DATA),
            Send(early),
        ]
    server = await scripted([*script, ReadRest()])
    result, log = await deliver_to(server)
    await server.wait_done()
    server.check()
    assert_deferred(result, diagnostic(BODY_PHRASE))
    # Nothing after DATA: not the content, not the dot, not QUIT.
    assert server.conn.captured["rest"] == b""
    assert log.lines[-1].endswith(f"dsn=4.4.2, status=deferred ({diagnostic(BODY_PHRASE)})")


async def test_early_reply_while_streaming_keeps_the_dot_back(scripted: StartScripted) -> None:
    """A 250 sent while a large message is still being written, then a 554 after the dot:
    the 250 is seen before the dot would go out, so the dot never does."""
    line = b"y" * 100 + b"\n"
    body = b"Subject: big\n\n" + line * (24 * 1024 * 1024 // len(line))
    server = await scripted(
        [
            *PIPELINED_START,
            Expect(BATCH1),
            Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n"),
            ReadUntil(b"yyy\r\n", keep=False),
            Send(b"250 2.0.0 Ok: queued early\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, body=body)
    await server.wait_done()
    assert_deferred(result, diagnostic(BODY_PHRASE))
    assert not server.conn.captured["rest"].endswith(b"\r\n.\r\n")


@pytest.mark.parametrize("pipelined", [True, False], ids=["pipelined", "lockstep"])
async def test_second_reply_after_the_dot_reply_defers(
    scripted: StartScripted, pipelined: bool
) -> None:
    start = PIPELINED_START if pipelined else LOCKSTEP_START
    if pipelined:
        envelope: list[Step] = [Expect(BATCH1), Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n")]
    else:
        envelope = [
            Expect(mail()),
            Send(b"250 Ok\r\n"),
            Expect(rcpt(RCPT1)),
            Send(b"250 Ok\r\n"),
            Expect(DATA),
            Send(b"354 go\r\n"),
        ]
    server = await scripted(
        [
            *start,
            *envelope,
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 Ok: queued early\r\n554 5.7.1 rejected after all\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server)
    await server.wait_done()
    server.check()
    assert_deferred(result, diagnostic(DOT_PHRASE, AFTER_LAST))
    assert server.conn.captured["rest"] == b""


# --- unasked data at the other stages --------------------------------------------------------


@pytest.mark.parametrize(
    ("script", "phrase", "sent_last"),
    [
        ([Send(GREETING + b"250 2.0.0 hello again\r\n")], "performing the EHLO handshake", b""),
        (
            [Send(GREETING), Expect(EHLO), Send(PIPELINING + b"250 extra\r\n")],
            "sending MAIL FROM",
            EHLO,
        ),
        (
            [*LOCKSTEP_START, Expect(mail()), Send(b"250 Ok\r\n250 Ok too\r\n")],
            "sending RCPT TO",
            mail(),
        ),
        (
            [
                *LOCKSTEP_START,
                Expect(mail()),
                Send(b"250 Ok\r\n"),
                Expect(rcpt(RCPT1)),
                Send(b"250 Ok\r\n354 go\r\n"),
            ],
            "sending DATA command",
            rcpt(RCPT1),
        ),
    ],
    ids=["after-greeting", "after-ehlo", "after-mail", "after-rcpt"],
)
async def test_unasked_reply_at_every_stage(
    scripted: StartScripted, script: list[Step], phrase: str, sent_last: bytes
) -> None:
    server = await scripted([*script, ReadRest()])
    result, _ = await deliver_to(server)
    await server.wait_done()
    server.check()
    assert_deferred(result, diagnostic(phrase))
    # The command that would follow the unasked bytes was never sent.
    received = server.conn.received
    assert received.endswith(sent_last) if sent_last else received == b""


async def test_lmtp_extra_reply_after_per_recipient_replies(scripted: StartScripted) -> None:
    """Two recipients, two replies after the dot, and a third nobody asked for: the
    replies may be off by one, so none of them is a verdict."""
    server = await scripted(
        [
            *LMTP_START,
            Expect(mail() + rcpt("b@example.net") + rcpt("c@example.net") + DATA),
            Send(b"250 Ok\r\n250 Ok\r\n250 Ok\r\n354 go\r\n"),
            Expect(WIRE_BODY),
            Send(b"250 2.0.0 b ok\r\n250 2.0.0 c ok\r\n550 5.1.1 surprise\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(
        server, recipients=["b@example.net", "c@example.net"], transport="lmtp"
    )
    await server.wait_done()
    server.check()
    assert_deferred(result, diagnostic(DOT_PHRASE, AFTER_LAST))
    assert server.conn.captured["rest"] == b""


async def test_bdat_lockstep_unasked_reply_between_chunks(scripted: StartScripted) -> None:
    body = b"Subject: chunks\n\n" + b"x" * 300_000 + b"\n"
    server = await scripted(
        [
            Send(GREETING),
            Expect(EHLO),
            Send(ehlo_reply("CHUNKING", "ENHANCEDSTATUSCODES")),
            Expect(mail()),
            Send(b"250 Ok\r\n"),
            Expect(rcpt(RCPT1)),
            Send(b"250 Ok\r\n"),
            ReadUntil(b"xxxx", keep=False),
            ReadUntil(b"x" * 64, keep=False),
            Send(b"250 2.0.0 chunk ok\r\n250 2.0.0 and more\r\n"),
            ReadRest(),
        ]
    )
    result, _ = await deliver_to(server, body=body, smtp_use_chunking="yes")
    await server.wait_done()
    (r,) = result.recipients
    assert (r.status, r.dsn) == (DEFERRED, "4.4.2")
    assert r.diagnostic.startswith(f"remote protocol error from {NAMADDR} while ")
    assert r.diagnostic.endswith(UNASKED)
    assert b"BDAT" not in server.conn.captured["rest"]


# --- an idle cached session that talks -------------------------------------------------------


async def test_cached_session_with_unasked_data_is_dropped(scripted: StartScripted) -> None:
    """Junk arrives while the session is parked: it is seen before RSET goes out, the
    session is dropped without failing anyone, and a new connection delivers."""
    ok_group = b"250 Ok\r\n250 Ok\r\n354 go\r\n"
    first: list[Step] = [
        *PIPELINED_START,
        Expect(BATCH1),
        Send(ok_group),
        ReadUntil(b"\r\n.\r\n"),
        Send(b"250 2.0.0 Ok: queued\r\n"),
        # Not a reply to anything: the client is idle, the session parked.
        Pause(0.1),
        Send(b"250 2.0.0 psst\r\n"),
        ReadRest(),
    ]
    second: list[Step] = [
        *PIPELINED_START,
        Expect(BATCH1),
        Send(ok_group),
        ReadUntil(b"\r\n.\r\n"),
        Send(b"250 2.0.0 Ok: queued again\r\n"),
        Expect(QUIT),
        ReadRest(),
    ]
    server = await scripted(first, second)
    agent, cache, _ = caching_agent(make_settings(smtp_helo_name=HELO_NAME))

    async def send() -> mailcarrier.RecipientStatus:
        (status,) = (await deliver_via(agent, server, BODY, recipients=[RCPT1])).recipients
        return status

    one = await send()
    await asyncio.sleep(0.3)  # the junk reaches the parked connection
    two = await send()
    await cache.close_all()
    await server.wait_done()
    server.check()
    assert (one.status, two.status) == (SENT, SENT)
    assert two.diagnostic == "250 2.0.0 Ok: queued again"
    assert two.conn_use == 1  # a new connection, not the parked one
    assert RSET not in server.connections[0].captured["rest"]
    assert len(server.connections) == 2


# --- the command line and the API ------------------------------------------------------------


async def test_cli_prints_json_and_exits_75(scripted: StartScripted) -> None:
    server = await scripted(
        [*PIPELINED_START, Expect(BATCH1), Send(b"250 Ok\r\n250 Ok\r\n354 go\r\n250 early\r\n")]
    )
    out, err = io.StringIO(), io.StringIO()
    argv = ["-o", f"smtp_helo_name={HELO_NAME}", "deliver", "--nexthop", server.nexthop]
    argv += ["-f", "a@example.org", "-r", RCPT1, "--json"]
    code = await asyncio.to_thread(run, argv, stdin=io.BytesIO(BODY), stdout=out, stderr=err)
    assert code == 75, err.getvalue()
    (entry,) = json.loads(out.getvalue())["recipients"]
    assert (entry["status"], entry["dsn"]) == ("deferred", "4.4.2")
    assert entry["diagnostic"] == diagnostic(BODY_PHRASE)
    assert "Traceback" not in err.getvalue()
    (line,) = [x for x in err.getvalue().splitlines() if ": to=<" in x]
    assert line.endswith(f"dsn=4.4.2, status=deferred ({diagnostic(BODY_PHRASE)})")


async def test_api_returns_values(scripted: StartScripted) -> None:
    server = await scripted([Send(GREETING), Expect(LHLO), Send(b"250 Ok\r\n250 extra\r\n")])
    request = mailcarrier.make_request(
        BODY,
        sender="a@example.org",
        recipients=[RCPT1, "c@example.net"],
        nexthop=f"inet:{server.nexthop}",
        transport="lmtp",
    )
    settings = make_settings(lmtp_lhlo_name=HELO_NAME)
    result = await mailcarrier.deliver(request, config=settings)
    assert [r.status for r in result.recipients] == [DEFERRED, DEFERRED]
    assert result.recipients[0].diagnostic == diagnostic("sending MAIL FROM")
    assert result.exit_code == 75
    assert WIRE_BODY not in server.conn.received

"""Address probes (`DeliveryRequest.probe`, Postfix's trace-only request) on the wire.

A probe is MAIL, the RCPTs and RSET (Postfix smtp_proto.c: the sender goes to its ABORT state
instead of DATA after the last RCPT), never DATA or BDAT, and each recipient's verdict is its
RCPT reply: a 2xx is its success with the reply as the diagnostic, logged ``deliverable``; a
4xx or 5xx the failure it would be for a message, logged ``undeliverable``. Both ends run in
this process (transport/memory.py), so every byte and how the client batched it into writes is
checked; a lost connection uses the socket scripted server (it can hang up), and one probe
goes to a real server (aiosmtpd)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import BinaryIO, cast

import pytest

from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.log import MemoryLog
from mailcarrier.status import DeliveryResult, DeliveryStatus
from mailcarrier.transport.memory import Expect, MemoryConnector, ScriptServer
from tests.support.deliver import deliver_request
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.scripted import Close, Send, StartScripted
from tests.support.scripted import Expect as SocketExpect
from tests.support.settings import CLIENT, make_settings

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED
NEXTHOP = "[198.51.100.1]"
RELAY = "198.51.100.1[198.51.100.1]:25"
HOST = "198.51.100.1[198.51.100.1]"
GREETING = b"220 mx.example ESMTP\r\n"
EHLO = b"EHLO client.example\r\n"
PIPELINING = b"250-mx.example\r\n250-DSN\r\n250 PIPELINING\r\n"
LOCKSTEP = b"250 mx.example\r\n"
MAIL = b"MAIL FROM:<a@example.org>\r\n"
RSET = b"RSET\r\n"
QUIT = b"QUIT\r\n"
# The request's arrival, and the agent's clocks, fixed: every delays= field is 0.
ARRIVAL = 1_700_000_000.0


def rcpt(address: str) -> bytes:
    return f"RCPT TO:<{address}>\r\n".encode()


class Untouchable(io.RawIOBase):
    """Content that fails the test if anything reads, seeks or measures it."""

    def readable(self) -> bool:
        raise AssertionError("a probe asked whether its content is readable")

    def seekable(self) -> bool:
        raise AssertionError("a probe asked whether its content is seekable")

    def readinto(self, buffer: object) -> int:
        raise AssertionError("a probe read its content")

    def fileno(self) -> int:
        raise AssertionError("a probe looked at its content's file")


def _probe(
    *recipients: str | Recipient,
    sender: str = "a@example.org",
    transport: str = "smtp",
    nexthop: str = NEXTHOP,
    content: Path | BinaryIO | None = None,
    size: int | None = None,
) -> DeliveryRequest:
    return DeliveryRequest(
        queue_id="4PROBE",
        nexthop=nexthop,
        sender=sender,
        recipients=tuple(r if isinstance(r, Recipient) else Recipient(r) for r in recipients),
        content=content if content is not None else Path("/nonexistent/probe-content"),
        transport=transport,
        size=size,
        arrival_time=ARRIVAL,
        probe=True,
    )


def _agent(
    server: ScriptServer, *, cache: ConnectionCache | None = None, **params: str
) -> tuple[DeliveryAgent, MemoryLog]:
    log = MemoryLog()
    agent = DeliveryAgent(
        make_settings(CLIENT, params),
        log=log,
        connector=MemoryConnector(lambda peer: server),
        cache=cache,
        clock=lambda: 0.0,
        wallclock=lambda: ARRIVAL,
    )
    return agent, log


def _accepting_server(*, ehlo: bytes = PIPELINING, mail: bytes = MAIL) -> ScriptServer:
    return ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            ehlo,
            Expect(mail + rcpt("b@example.net") + RSET),
            b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n",
            Expect(QUIT),
        ]
    )


def _line(address: str, dsn: str, word: str, diagnostic: str, conn_use: int = 1) -> str:
    use = f"conn_use={conn_use}, " if conn_use > 1 else ""
    return (
        f"4PROBE: to=<{address}>, relay={RELAY}, {use}delay=0, delays=0/0/0/0, dsn={dsn}, "
        f"status={word} ({diagnostic})"
    )


def _verdicts(result: DeliveryResult) -> list[tuple[str, DeliveryStatus, str, str]]:
    return [(r.address, r.status, r.dsn, r.diagnostic) for r in result.recipients]


# --- the two conversations --------------------------------------------------------------------


async def test_pipelined_probe_is_mail_rcpt_rset_in_one_write() -> None:
    """The conversation of Postfix's smtp(8) for a verify(8) probe (strace): MAIL, RCPT with
    the ORCPT the server's DSN asks for, RSET, then QUIT; no DATA and no content."""
    server = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            PIPELINING,
            Expect(
                b"MAIL FROM:<double-bounce@test.local>\r\n"
                b"RCPT TO:<probe@real.test> ORCPT=rfc822;probe@real.test\r\n"
                b"RSET\r\n"
            ),
            b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n",
            Expect(QUIT),
            b"221 2.0.0 Bye\r\n",
        ]
    )
    agent, log = _agent(server)
    request = _probe(
        Recipient("probe@real.test", orig_address="probe@real.test"),
        sender="double-bounce@test.local",
    )
    result = await agent.deliver(request)
    assert server.failures == [] and server.done
    assert server.writes == [
        EHLO,
        b"MAIL FROM:<double-bounce@test.local>\r\n"
        b"RCPT TO:<probe@real.test> ORCPT=rfc822;probe@real.test\r\n"
        b"RSET\r\n",
        QUIT,
    ]
    assert _verdicts(result) == [("probe@real.test", SENT, "2.1.5", "250 2.1.5 Ok")]
    assert log.lines == [_line("probe@real.test", "2.1.5", "deliverable", "250 2.1.5 Ok")]


async def test_lockstep_probe_waits_for_each_reply_then_rsets() -> None:
    """Without PIPELINING each command waits for the reply before it; RSET follows the
    last RCPT reply (Postfix's ABORT state), whatever the RCPT replies were."""
    server = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            LOCKSTEP,
            Expect(MAIL),
            b"250 2.1.0 Ok\r\n",
            Expect(rcpt("b@example.net")),
            b"250 2.1.5 Ok\r\n",
            Expect(rcpt("c@example.net")),
            b"550 5.1.1 <c@example.net>: Recipient address rejected\r\n",
            Expect(RSET),
            b"250 2.0.0 Ok\r\n",
            Expect(QUIT),
            b"221 2.0.0 Bye\r\n",
        ]
    )
    agent, log = _agent(server)
    result = await agent.deliver(_probe("b@example.net", "c@example.net"))
    assert server.failures == [] and server.done
    assert server.writes == [EHLO, MAIL, rcpt("b@example.net"), rcpt("c@example.net"), RSET, QUIT]
    refusal = (
        f"host {HOST} said: 550 5.1.1 <c@example.net>: Recipient address rejected "
        "(in reply to RCPT TO command)"
    )
    assert _verdicts(result) == [
        ("b@example.net", SENT, "2.1.5", "250 2.1.5 Ok"),
        ("c@example.net", BOUNCED, "5.1.1", refusal),
    ]
    assert log.lines == [
        _line("b@example.net", "2.1.5", "deliverable", "250 2.1.5 Ok"),
        _line("c@example.net", "5.1.1", "undeliverable", refusal),
    ]


# --- verdicts -----------------------------------------------------------------------------------


async def test_each_rcpt_reply_is_its_recipients_verdict() -> None:
    """2xx sent (its DSN from the reply, X.0.0 from the code without one), 4xx deferred,
    5xx bounced: the words of a message's RCPT refusals."""
    server = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            PIPELINING,
            Expect(
                MAIL
                + rcpt("ok@example.net")
                + rcpt("plain@example.net")
                + rcpt("busy@example.net")
                + rcpt("gone@example.net")
                + RSET
            ),
            b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 Accepted\r\n"
            b"450 4.2.0 <busy@example.net>: greylisted\r\n550 5.1.1 no such user\r\n"
            b"250 2.0.0 Ok\r\n",
            Expect(QUIT),
        ]
    )
    agent, log = _agent(server)
    result = await agent.deliver(
        _probe("ok@example.net", "plain@example.net", "busy@example.net", "gone@example.net")
    )
    assert server.failures == [] and server.done
    greylisted = (
        f"host {HOST} said: 450 4.2.0 <busy@example.net>: greylisted (in reply to RCPT TO command)"
    )
    gone = f"host {HOST} said: 550 5.1.1 no such user (in reply to RCPT TO command)"
    assert _verdicts(result) == [
        ("ok@example.net", SENT, "2.1.5", "250 2.1.5 Ok"),
        ("plain@example.net", SENT, "2.0.0", "250 Accepted"),
        ("busy@example.net", DEFERRED, "4.2.0", greylisted),
        ("gone@example.net", BOUNCED, "5.1.1", gone),
    ]
    assert [line.rsplit("status=", 1)[1] for line in log.lines] == [
        "deliverable (250 2.1.5 Ok)",
        "deliverable (250 Accepted)",
        f"undeliverable ({greylisted})",
        f"undeliverable ({gone})",
    ]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_refused_mail_fails_every_recipient(pipelining: bool) -> None:
    """A 5xx to MAIL bounces everyone with the MAIL reply, as for a message. Pipelined, the
    RCPT and RSET went with MAIL; in lock-step nothing follows MAIL but QUIT."""
    if pipelining:
        steps: list[bytes | Expect] = [
            PIPELINING,
            Expect(MAIL + rcpt("b@example.net") + rcpt("c@example.net") + RSET),
            b"553 5.7.1 <a@example.org>: Sender address rejected\r\n"
            b"503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need MAIL command\r\n"
            b"250 2.0.0 Ok\r\n",
        ]
    else:
        steps = [LOCKSTEP, Expect(MAIL), b"553 5.7.1 <a@example.org>: Sender address rejected\r\n"]
    server = ScriptServer([GREETING, Expect(EHLO), *steps, Expect(QUIT)])
    agent, log = _agent(server)
    result = await agent.deliver(_probe("b@example.net", "c@example.net"))
    assert server.failures == [] and server.done
    refusal = (
        f"host {HOST} said: 553 5.7.1 <a@example.org>: Sender address rejected "
        "(in reply to MAIL FROM command)"
    )
    assert _verdicts(result) == [
        ("b@example.net", BOUNCED, "5.7.1", refusal),
        ("c@example.net", BOUNCED, "5.7.1", refusal),
    ]
    assert log.lines == [
        _line("b@example.net", "5.7.1", "undeliverable", refusal),
        _line("c@example.net", "5.7.1", "undeliverable", refusal),
    ]
    assert not any(b"DATA" in write for write in server.writes)


async def test_refused_final_rset_changes_no_verdict() -> None:
    server = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            PIPELINING,
            Expect(MAIL + rcpt("b@example.net") + RSET),
            b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n502 5.5.2 RSET not implemented\r\n",
            Expect(QUIT),
        ]
    )
    agent, log = _agent(server)
    result = await agent.deliver(_probe("b@example.net"))
    assert server.failures == [] and server.done
    assert _verdicts(result) == [("b@example.net", SENT, "2.1.5", "250 2.1.5 Ok")]
    assert log.lines == [_line("b@example.net", "2.1.5", "deliverable", "250 2.1.5 Ok")]


async def test_soft_mail_refusal_moves_on_to_the_next_server() -> None:
    """A 4xx to MAIL leaves the recipients for the next server, as for a message."""
    first = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            PIPELINING,
            Expect(MAIL + rcpt("b@example.net") + RSET),
            b"451 4.3.0 try later\r\n503 5.5.1 need MAIL\r\n250 2.0.0 Ok\r\n",
            Expect(QUIT),
        ]
    )
    second = _accepting_server()
    servers = {"198.51.100.1": first, "198.51.100.2": second}
    log = MemoryLog()
    agent = DeliveryAgent(
        make_settings(CLIENT),
        log=log,
        connector=MemoryConnector(lambda peer: servers[peer.address]),
        clock=lambda: 0.0,
        wallclock=lambda: ARRIVAL,
    )
    result = await agent.deliver(_probe("b@example.net", nexthop="[198.51.100.1], [198.51.100.2]"))
    assert first.failures == second.failures == [] and first.done and second.done
    (status,) = result.recipients
    assert (status.status, status.relay) == (SENT, "198.51.100.2[198.51.100.2]:25")
    assert log.lines[0] == (
        f"4PROBE: host {HOST} said: 451 4.3.0 try later (in reply to MAIL FROM command)"
    )
    assert log.lines[1].endswith("status=deliverable (250 2.1.5 Ok)")


async def test_421_to_rcpt_defers_the_rest_and_keeps_earlier_verdicts() -> None:
    server = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            PIPELINING,
            Expect(MAIL + rcpt("b@example.net") + rcpt("c@example.net") + RSET),
            b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n421 4.3.2 Shutting down\r\n",
        ]
    )
    agent, _ = _agent(server)
    result = await agent.deliver(_probe("b@example.net", "c@example.net"))
    shutdown = f"host {HOST} said: 421 4.3.2 Shutting down (in reply to RCPT TO command)"
    assert _verdicts(result) == [
        ("b@example.net", SENT, "2.1.5", "250 2.1.5 Ok"),
        ("c@example.net", DEFERRED, "4.3.2", shutdown),
    ]
    # After 421 nothing more is said on that connection.
    assert server.writes[-1].endswith(RSET)


async def test_lost_connection_after_the_rcpt_replies_changes_no_verdict(
    scripted: StartScripted,
) -> None:
    """The RCPT replies were the verdicts; a server that hangs up instead of answering the
    final RSET costs nobody anything, and nothing else is logged (Postfix reports a lost
    connection only while it is still sending mail)."""
    server = await scripted(
        [
            Send(GREETING),
            SocketExpect(EHLO),
            Send(PIPELINING),
            SocketExpect(MAIL + rcpt("b@example.net") + RSET),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
            Close(),
        ]
    )
    request = _probe("b@example.net", nexthop=server.nexthop)
    result, log = await deliver_request(request, config=make_settings(CLIENT))
    await server.wait_done()
    server.check()
    assert _verdicts(result) == [("b@example.net", SENT, "2.1.5", "250 2.1.5 Ok")]
    assert len(log.lines) == 1 and log.lines[0].endswith(", status=deliverable (250 2.1.5 Ok)")


async def test_lost_connection_before_an_rcpt_reply_defers_that_recipient(
    scripted: StartScripted,
) -> None:
    server = await scripted(
        [
            Send(GREETING),
            SocketExpect(EHLO),
            Send(PIPELINING),
            SocketExpect(MAIL + rcpt("b@example.net") + rcpt("c@example.net") + RSET),
            Send(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"),
            Close(),
        ]
    )
    request = _probe("b@example.net", "c@example.net", nexthop=server.nexthop)
    result, _ = await deliver_request(request, config=make_settings(CLIENT))
    await server.wait_done()
    server.check()
    (sent, lost) = result.recipients
    assert (sent.status, sent.diagnostic) == (SENT, "250 2.1.5 Ok")
    assert (lost.status, lost.dsn) == (DEFERRED, "4.4.2")
    assert lost.diagnostic.startswith("lost connection with ")
    assert lost.diagnostic.endswith(" while sending RCPT TO")


# --- content ------------------------------------------------------------------------------------


@pytest.mark.parametrize("content", ["missing path", "unreadable stream"])
async def test_probe_never_reads_its_content(content: str) -> None:
    server = _accepting_server()
    agent, _ = _agent(server)
    source = (
        Path("/nonexistent/probe") if content == "missing path" else cast(BinaryIO, Untouchable())
    )
    result = await agent.deliver(_probe("b@example.net", content=source))
    assert server.failures == [] and server.done
    assert _verdicts(result) == [("b@example.net", SENT, "2.1.5", "250 2.1.5 Ok")]


async def test_size_is_announced_from_the_request_and_no_bdat() -> None:
    """smtp(8) sends SIZE= with a probe as with a message (the request's size; 0 when it
    gives none, the content is not measured); CHUNKING changes nothing, no content goes."""
    ehlo = b"250-mx.example\r\n250-SIZE 10240000\r\n250-CHUNKING\r\n250 PIPELINING\r\n"
    for size, mail in ((4321, b"MAIL FROM:<a@example.org> SIZE=4321\r\n"), (None, None)):
        mail = mail or b"MAIL FROM:<a@example.org> SIZE=0\r\n"
        server = _accepting_server(ehlo=ehlo, mail=mail)
        agent, _ = _agent(server, smtp_use_chunking="yes")
        result = await agent.deliver(_probe("b@example.net", size=size))
        assert server.failures == [] and server.done
        assert result.recipients[0].status is SENT


async def test_size_over_the_server_limit_bounces_without_mail() -> None:
    """As for a message (Postfix smtp_xfer() checks the request's size first)."""
    server = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            b"250-mx.example\r\n250-SIZE 1000\r\n250 PIPELINING\r\n",
            Expect(QUIT),
        ]
    )
    agent, _ = _agent(server)
    result = await agent.deliver(_probe("b@example.net", size=5000))
    assert server.failures == [] and server.done
    assert _verdicts(result) == [
        (
            "b@example.net",
            BOUNCED,
            "5.3.4",
            f"message size 5000 exceeds size limit 1000 of server {HOST}",
        )
    ]


# --- the session afterwards, and LMTP -------------------------------------------------------------


async def test_probe_session_is_cached_and_reused() -> None:
    """After the answered RSET the session is as after any transaction: parked, and the next
    request checks it with RSET in the same write as its own commands."""
    server = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            PIPELINING,
            Expect(MAIL + rcpt("b@example.net") + RSET),
            b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n",
            Expect(RSET + MAIL + rcpt("c@example.net") + RSET),
            b"250 2.0.0 Ok\r\n250 2.1.0 Ok\r\n550 5.1.1 no such user\r\n250 2.0.0 Ok\r\n",
            Expect(QUIT),
        ]
    )
    cache = ConnectionCache(CacheLimits())
    agent, log = _agent(server, cache=cache)
    first = await agent.deliver(_probe("b@example.net"))
    second = await agent.deliver(_probe("c@example.net"))
    await cache.close_all()
    assert server.failures == [] and server.done
    assert [(r.status, r.conn_use) for r in (*first.recipients, *second.recipients)] == [
        (SENT, 1),
        (BOUNCED, 2),
    ]
    assert server.writes[1:] == [
        MAIL + rcpt("b@example.net") + RSET,
        RSET + MAIL + rcpt("c@example.net") + RSET,
        QUIT,
    ]
    assert "conn_use=2" in log.lines[1]


@pytest.mark.parametrize("pipelining", [True, False])
async def test_lmtp_probe_is_the_same_conversation(pipelining: bool) -> None:
    """lmtp(8) probes as smtp(8) does: the RCPT replies are the verdicts, no DATA, so none
    of LMTP's per-recipient replies to the end of the content."""
    ehlo = b"250-lmtp.example\r\n250 PIPELINING\r\n" if pipelining else b"250 lmtp.example\r\n"
    commands = [MAIL, rcpt("b@example.net"), rcpt("c@example.net"), RSET]
    replies = [
        b"250 2.1.0 Ok\r\n",
        b"250 2.1.5 Ok\r\n",
        b"550 5.1.1 unknown user\r\n",
        b"250 Ok\r\n",
    ]
    if pipelining:
        exchange: list[bytes | Expect] = [Expect(b"".join(commands)), b"".join(replies)]
    else:
        exchange = [
            step
            for command, reply in zip(commands, replies, strict=True)
            for step in (Expect(command), reply)
        ]
    server = ScriptServer(
        [
            b"220 lmtp.example LMTP\r\n",
            Expect(b"LHLO client.example\r\n"),
            ehlo,
            *exchange,
            Expect(QUIT),
        ]
    )
    agent, log = _agent(server)
    request = _probe(
        "b@example.net", "c@example.net", transport="lmtp", nexthop="inet:[198.51.100.1]:24"
    )
    result = await agent.deliver(request)
    assert server.failures == [] and server.done
    expected_writes = [b"".join(commands)] if pipelining else commands
    assert server.writes == [b"LHLO client.example\r\n", *expected_writes, QUIT]
    assert [(r.status, r.dsn) for r in result.recipients] == [(SENT, "2.1.5"), (BOUNCED, "5.1.1")]
    assert [record[1] for record in log.records] == ["lmtp", "lmtp"]
    assert log.lines[0].endswith("status=deliverable (250 2.1.5 Ok)")


# --- a real server ------------------------------------------------------------------------------


async def test_probe_against_aiosmtpd(smtp_server: AiosmtpdServer) -> None:
    """aiosmtpd answers the RCPTs and the RSET; it receives no message."""
    smtp_server.handler.reject["nobody@"] = "550 5.1.1 <nobody@example.net>: unknown user"
    request = _probe("b@example.net", "nobody@example.net", nexthop=smtp_server.nexthop)
    result, log = await deliver_request(request)
    assert smtp_server.messages == []
    assert [(r.address, r.status, r.dsn) for r in result.recipients] == [
        ("b@example.net", SENT, "2.1.5"),
        ("nobody@example.net", BOUNCED, "5.1.1"),
    ]
    assert result.recipients[0].diagnostic == "250 2.1.5 Ok"
    assert [line.rsplit(", status=", 1)[1].split(" ", 1)[0] for line in log.lines] == [
        "deliverable",
        "undeliverable",
    ]


# --- smtp_address_verify_target = data -----------------------------------------------------------


async def test_data_target_probe_ends_at_354_and_drops_the_connection() -> None:
    """smtp_address_verify_target = data (smtp_proto.c): DATA instead of RSET; the accepted
    recipient's verdict is the 354 with 2.0.0, the refused one's its RCPT reply; after 354
    nothing more is sent (no content, no QUIT) and the session is not kept."""
    server = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            PIPELINING,
            Expect(MAIL + rcpt("b@example.net") + rcpt("c@example.net") + b"DATA\r\n"),
            b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n550 5.1.1 <c@example.net>: unknown\r\n"
            b"354 End data with <CR><LF>.<CR><LF>\r\n",
        ]
    )
    cache = ConnectionCache(CacheLimits())
    agent, log = _agent(server, cache=cache, smtp_address_verify_target="data")
    result = await agent.deliver(_probe("b@example.net", "c@example.net"))
    assert server.failures == []
    assert server.writes == [
        EHLO,
        MAIL + rcpt("b@example.net") + rcpt("c@example.net") + b"DATA\r\n",
    ]
    refusal = f"host {HOST} said: 550 5.1.1 <c@example.net>: unknown (in reply to RCPT TO command)"
    go_ahead = "354 End data with <CR><LF>.<CR><LF>"
    assert _verdicts(result) == [
        ("b@example.net", SENT, "2.0.0", go_ahead),
        ("c@example.net", BOUNCED, "5.1.1", refusal),
    ]
    assert log.lines == [
        _line("c@example.net", "5.1.1", "undeliverable", refusal),
        _line("b@example.net", "2.0.0", "deliverable", go_ahead),
    ]
    assert len(cache) == 0


async def test_data_target_probe_refused_at_data_fails_as_a_message_would() -> None:
    server = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            LOCKSTEP,
            Expect(MAIL),
            b"250 2.1.0 Ok\r\n",
            Expect(rcpt("b@example.net")),
            b"250 2.1.5 Ok\r\n",
            Expect(b"DATA\r\n"),
            b"554 5.7.1 not from you\r\n",
            Expect(QUIT),
            b"221 2.0.0 Bye\r\n",
        ]
    )
    agent, _ = _agent(server, smtp_address_verify_target="data")
    result = await agent.deliver(_probe("b@example.net"))
    assert server.failures == [] and server.done
    refusal = f"host {HOST} said: 554 5.7.1 not from you (in reply to DATA command)"
    assert _verdicts(result) == [("b@example.net", BOUNCED, "5.7.1", refusal)]

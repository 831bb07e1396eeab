"""The delivery agent tested like h11: both ends in one process (transport/memory.py), exact
bytes and how they were batched into writes, no sockets and no sleeps. The agent's injected
connector hands it memory connections; the same scripts run against real sockets elsewhere
(tests/transport/), so these tests are about the agent's logic alone."""

from __future__ import annotations

import functools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mailcarrier
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.delivery.cache import CacheLimits, ConnectionCache
from mailcarrier.log import MemoryLog
from mailcarrier.status import DeliveryStatus
from mailcarrier.transport.connection import Peer
from mailcarrier.transport.memory import (
    Expect,
    MemoryConnector,
    MemoryServer,
    ScriptServer,
    SmtpResponder,
)
from tests.support.settings import CLIENT, make_settings

SENT, DEFERRED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED
GREETING = b"220 mx.example ESMTP\r\n"
EHLO = b"EHLO client.example\r\n"
PIPELINING = b"250-mx.example\r\n250 PIPELINING\r\n"
GROUP = b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
CONTENT = b"Subject: memory\r\n\r\nhello\r\n.\r\n"
BODY = b"Subject: memory\n\nhello\n"


def _agent(
    connector: MemoryConnector, *, cache: ConnectionCache | None = None, **params: str
) -> tuple[DeliveryAgent, MemoryLog]:
    log = MemoryLog()
    settings = make_settings(CLIENT, params)
    return DeliveryAgent(settings, log=log, connector=connector, cache=cache), log


async def _send(
    agent: DeliveryAgent, nexthop: str = "[198.51.100.1]"
) -> mailcarrier.RecipientStatus:
    request = mailcarrier.make_request(
        BODY, sender="a@example.org", recipients=["b@example.net"], nexthop=nexthop
    )
    (status,) = (await agent.deliver(request)).recipients
    return status


async def test_pipelined_transaction_writes() -> None:
    """EHLO alone, then MAIL+RCPT+DATA in one write, then the content and the dot in one
    write, then QUIT: four writes, each byte as smtp(8) sends it."""
    server = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            PIPELINING,
            Expect(GROUP),
            b"250 Ok\r\n250 Ok\r\n354 go\r\n",
            Expect(CONTENT),
            b"250 2.0.0 Ok: queued as M\r\n",
            Expect(b"QUIT\r\n"),
        ]
    )
    agent, log = _agent(MemoryConnector(lambda peer: server))
    status = await _send(agent)
    assert (status.status, status.diagnostic) == (SENT, "250 2.0.0 Ok: queued as M")
    assert server.failures == [] and server.done
    assert server.writes == [EHLO, GROUP, CONTENT, b"QUIT\r\n"]
    assert log.lines[-1].endswith("status=sent (250 2.0.0 Ok: queued as M)")


async def test_lockstep_transaction_waits_for_each_reply() -> None:
    server = ScriptServer(
        [
            GREETING,
            Expect(EHLO),
            b"250 mx.example\r\n",
            Expect(b"MAIL FROM:<a@example.org>\r\n"),
            b"250 Ok\r\n",
            Expect(b"RCPT TO:<b@example.net>\r\n"),
            b"550 5.1.1 no such user\r\n",
            # No DATA: no recipient was accepted.
            Expect(b"QUIT\r\n"),
        ]
    )
    agent, _ = _agent(MemoryConnector(lambda peer: server))
    status = await _send(agent)
    assert status.status is DeliveryStatus.BOUNCED
    assert server.failures == [] and server.done
    assert len(server.writes) == 4


async def test_refused_connection_moves_to_the_next_mx_address() -> None:
    first, second = Peer("mx1.example", "198.51.100.1", 25), Peer("mx2.example", "198.51.100.2", 25)
    responder = SmtpResponder()

    def serve(peer: Peer) -> MemoryServer | None:
        return None if peer.address == first.address else responder

    connector = MemoryConnector(serve)
    agent, log = _agent(connector)
    status = await _send(agent, "[198.51.100.1], [198.51.100.2]")
    assert status.status is SENT
    assert [p.address for p in connector.peers] == [first.address, second.address]
    assert log.lines[0] == "connect to 198.51.100.1[198.51.100.1]:25: Connection refused"
    assert responder.messages == 1


async def test_cached_session_is_checked_with_rset_in_the_same_write() -> None:
    responder = SmtpResponder()
    connector = MemoryConnector(lambda peer: responder)
    cache = ConnectionCache(CacheLimits())
    agent, _ = _agent(connector, cache=cache)
    first = await _send(agent)
    second = await _send(agent)
    await cache.close_all()
    assert (first.conn_use, second.conn_use) == (1, 2)
    assert len(connector.peers) == 1
    assert responder.messages == 2


@pytest.mark.parametrize("recipients", [1, 3])
async def test_lmtp_one_reply_per_recipient(recipients: int) -> None:
    responder = SmtpResponder(keywords=("PIPELINING",), lmtp=True)
    agent, _ = _agent(MemoryConnector(lambda peer: responder))
    request = mailcarrier.make_request(
        BODY,
        sender="a@example.org",
        recipients=[f"r{i}@example.net" for i in range(recipients)],
        nexthop="inet:[198.51.100.1]:24",
        transport="lmtp",
    )
    result = await agent.deliver(request)
    assert [r.status for r in result.recipients] == [SENT] * recipients


class _Recording(SmtpResponder):
    """Accepts everything, keeping every byte the client sent."""

    def __init__(self, keywords: tuple[str, ...]) -> None:
        super().__init__(keywords=keywords)
        self.data = bytearray()

    def received(self, data: bytes) -> None:
        self.data += data
        super().received(data)


def _serve(server: MemoryServer, peer: Peer) -> MemoryServer:
    return server


_LINES = st.lists(
    st.sampled_from([b"", b".", b"..x", b"a" * 1200, b"\xc3\xa9t\xc3\xa9", b"\r", b"x\ry"]),
    max_size=20,
)


@settings(max_examples=40, deadline=None)
@given(
    head=st.binary(max_size=40),
    lines=_LINES,
    ending=st.sampled_from([b"\n", b"\r\n", b""]),
    encoding=st.sampled_from(["7bit", "8bit", ""]),
    eight_bit=st.booleans(),
)
async def test_content_handed_over_goes_out_as_the_file_it_was_read_from(
    tmp_path_factory: pytest.TempPathFactory,
    head: bytes,
    lines: list[bytes],
    ending: bytes,
    encoding: str,
    eight_bit: bool,
) -> None:
    """A request with `content_bytes` (the queue's first read of a small message) puts on
    the wire exactly what the same request reading its file does, to a server with and
    without 8BITMIME."""
    content = b"Subject: t\n\n" + b"\n".join(lines) + ending
    path = tmp_path_factory.mktemp("content") / "qfile"
    path.write_bytes(head + content + b"status records\n")
    wire = []
    for handed in (None, content):
        server = _Recording(("PIPELINING", "8BITMIME") if eight_bit else ("PIPELINING",))
        agent, _log = _agent(MemoryConnector(functools.partial(_serve, server)))
        request = mailcarrier.DeliveryRequest(
            queue_id="4ABCD",
            nexthop="[198.51.100.1]",
            sender="a@example.org",
            recipients=(mailcarrier.Recipient("b@example.net"),),
            content=str(path),
            size=len(content),
            content_offset=len(head),
            encoding=encoding,
            arrival_time=0.0,
            content_bytes=handed,
        )
        (status,) = (await agent.deliver(request)).recipients
        assert status.status is SENT
        wire.append(bytes(server.data))
    assert wire[0] == wire[1]

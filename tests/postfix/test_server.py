"""One qmgr(8) connection served by postfix/server.py: the hello, the request, the queue file
opened and marked, each verdict reported, the process's place released before the final
reply, the final reply byte for byte, and every way it can go wrong (qmgr gone before a
request, a malformed or cut request, a missing queue file, a request mailcarrier will not
send, an agent that fails): never a crash, never a recipient marked done that was not
delivered or bounced, and no "done" reply while one is undecided.

qmgr is a socketpair in the test; the queue file is written record by record
(tests/support/postfix_records.py); the status services are stand-ins
(tests/support/postfix_services.py); the agent is a fake returning chosen verdicts (the real
one under a real Postfix: test_native_e2e.py).
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from mailcarrier.delivery.request import DeliveryRequest
from mailcarrier.errors import DataError
from mailcarrier.log import MemoryLog
from mailcarrier.postfix.attr import AttrParser
from mailcarrier.postfix.msgstats import MsgStats
from mailcarrier.postfix.reply import HELLO
from mailcarrier.postfix.request import NativeRecipient, NativeRequest
from mailcarrier.postfix.server import NativeServer, ServerOptions
from mailcarrier.postfix.services import StatusServices
from mailcarrier.status import DeliveryResult, DeliveryStatus, HopStatus, RecipientStatus
from tests.support.postfix_records import cleanup_file, write_queue_file
from tests.support.postfix_services import BOUNCE_PROTOCOL, FakeService, start_services

CAPTURES = Path(__file__).resolve().parents[3] / "shared" / "reference" / "postfix-native"
QUEUE_ID = "2B84B2204F3"
RCPTS = ("alice@remote.test", "bob@remote.test")
RELAY = "mx.remote.test[198.51.100.7]:25"
CONTENT = b"Subject: native\n\nhello\n"


class FakeAgent:
    """Returns `verdicts` (by recipient address), marking each as the real agent does."""

    def __init__(self, verdicts: dict[str, tuple[DeliveryStatus, str, str]]) -> None:
        self.verdicts = verdicts
        self.requests: list[DeliveryRequest] = []
        self.content = b""
        self.hop: HopStatus | None = None
        self.fail: Exception | None = None

    async def deliver(
        self,
        request: DeliveryRequest,
        *,
        on_status: Callable[[int, RecipientStatus], None] | None = None,
        log_lines: bool = True,
    ) -> DeliveryResult:
        self.requests.append(request)
        assert not log_lines  # the server logs, as Postfix's library calls do
        if self.fail is not None:
            raise self.fail
        stream = request.content
        assert not isinstance(stream, (Path, str))
        try:
            self.content = stream.read()
        except DataError:  # what the engine does with unreadable content: bounce 5.3.0
            self.verdicts = dict.fromkeys(
                self.verdicts, (DeliveryStatus.BOUNCED, "5.3.0", "unreadable mail queue entry")
            )
        statuses = []
        for index, rcpt in enumerate(request.recipients):
            kind, dsn, text = self.verdicts[rcpt.address]
            status = RecipientStatus(rcpt.address, kind, dsn, text, relay=RELAY)
            statuses.append(status)
            if on_status is not None:
                on_status(index, status)
        return DeliveryResult(request.queue_id, tuple(statuses), self.hop)


class Setup:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.layout = cleanup_file(CONTENT, recipients=RCPTS)
        self.path = write_queue_file(root / "active" / QUEUE_ID, self.layout.data)
        (root / "private").mkdir()
        self.log = MemoryLog()
        self.services = {
            name: FakeService(name, BOUNCE_PROTOCOL) for name in ("bounce", "defer", "trace")
        }

    def request(self, **changes: object) -> NativeRequest:
        recipients = tuple(
            NativeRecipient(addr, addr, offset, f"rfc822;{addr}", 0)
            for addr, offset in zip(RCPTS, self.layout.recipient_offsets, strict=True)
        )
        fields: dict[str, object] = dict(
            flags=3,
            queue_name="active",
            queue_id=QUEUE_ID,
            data_offset=self.layout.data_offset,
            data_size=self.layout.content_length,
            nexthop="remote.test",
            encoding="",
            sendopts=0,
            sender="sender@test.local",
            dsn_envid="",
            dsn_ret=0,
            msg_stats=MsgStats(1796224095.0, 1796224105.0, 0.0, 0.0, 0.0, 0),
            client_name="localhost",
            client_addr="127.0.0.1",
            client_port="39340",
            client_proto="ESMTP",
            client_helo="client.test.local",
            sasl_method="",
            sasl_username="",
            sasl_sender="",
            log_ident=QUEUE_ID,
            rewrite_context="local",
            recipients=recipients,
        )
        fields.update(changes)
        return NativeRequest(**fields)  # type: ignore[arg-type]

    def types_at_offsets(self) -> str:
        data = self.path.read_bytes()
        return "".join(chr(data[o]) for o in self.layout.recipient_offsets)

    async def serve(
        self,
        agent: FakeAgent,
        send: bytes,
        *,
        close: bool = True,
        release: Callable[[], None] | None = None,
    ) -> bytes:
        """Play qmgr: read the hello, send `send`, then read all the agent says."""
        servers = await start_services(self.root, *self.services.values())
        ours, theirs = socket.socketpair()
        services = StatusServices(self.root, self.log)
        options = ServerOptions(transport="smtp", process="smtp")
        server = NativeServer(agent, services, self.log, options, release)
        task = asyncio.ensure_future(server.handle(ours))
        q_reader, q_writer = await asyncio.open_connection(sock=theirs)
        assert await q_reader.readexactly(len(HELLO)) == HELLO
        q_writer.write(send)
        if close:
            q_writer.write_eof()
        reply = b""
        parser = AttrParser()
        while chunk := await asyncio.wait_for(q_reader.read(4096), 30):
            reply += chunk
            parser.feed(chunk)
            if parser.next_list() is not None:
                break  # the final reply: qmgr closes first
        q_writer.close()
        await asyncio.wait_for(task, 30)
        for s in servers:
            s.close()
        return reply


@pytest.fixture
def setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Setup:
    monkeypatch.chdir(tmp_path)  # master(8) starts agents in the queue directory
    return Setup(tmp_path)


SENT = (DeliveryStatus.SENT, "2.0.0", "250 2.0.0 Ok")
LATER = (DeliveryStatus.DEFERRED, "4.2.0", f"host {RELAY[:-3]} said: 450 4.2.0 later")


async def test_all_sent_is_the_captured_ok_reply_and_both_marked(setup: Setup) -> None:
    agent = FakeAgent({r: SENT for r in RCPTS})
    reply = await setup.serve(agent, setup.request().encode(), close=False)
    assert reply == (CAPTURES / "final-reply-ok.bin").read_bytes()
    assert setup.types_at_offsets() == "DD"
    assert agent.content == CONTENT  # streamed from the queue file's records
    (request,) = agent.requests
    assert request.sender == "sender@test.local" and request.queue_id == QUEUE_ID
    assert [line.split(", relay=")[0] for line in setup.log.lines] == [
        f"{QUEUE_ID}: to=<{r}>" for r in RCPTS
    ]


async def test_the_place_is_released_once_the_work_is_done(setup: Setup) -> None:
    # Before the final reply (qmgr connects for its next delivery when it has it), and
    # after every recipient was decided and marked.
    marks: list[str] = []
    agent = FakeAgent({r: SENT for r in RCPTS})
    reply = await setup.serve(
        agent, setup.request().encode(), release=lambda: marks.append(setup.types_at_offsets())
    )
    assert reply == (CAPTURES / "final-reply-ok.bin").read_bytes()
    assert marks == ["DD"]
    assert await setup.serve(FakeAgent({}), b"", release=lambda: marks.append("again")) == b""
    assert marks == ["DD"]  # no request, nothing to release: the connection just ends


async def test_one_deferred_keeps_the_message_and_its_recipient(setup: Setup) -> None:
    agent = FakeAgent({RCPTS[0]: SENT, RCPTS[1]: LATER})
    reply = await setup.serve(agent, setup.request().encode(), close=False)
    assert reply == (CAPTURES / "final-reply-defer.bin").read_bytes()
    assert setup.types_at_offsets() == "DR"
    (deferred,) = setup.services["defer"].requests
    assert b"recipient\x00bob@remote.test\x00" in deferred


async def test_the_hop_status_of_a_failed_destination(setup: Setup) -> None:
    down = (DeliveryStatus.DEFERRED, "4.4.1", "connect to mx[198.51.100.7]:25: Connection refused")
    agent = FakeAgent({r: down for r in RCPTS})
    agent.hop = HopStatus("4.4.1", down[2])
    reply = await setup.serve(agent, setup.request().encode(), close=False)
    assert reply == (
        b"status\x004.4.1\x00diag_type\x00\x00diag_text\x00\x00mta_type\x00\x00mta_mname\x00\x00"
        b"action\x00\x00reason\x00connect to mx[198.51.100.7]:25: Connection refused\x00"
        b"status\x004294967295\x00\x00"
    )
    assert setup.types_at_offsets() == "RR"


async def test_a_qmgr_that_goes_away_without_a_request(setup: Setup) -> None:
    agent = FakeAgent({})
    assert await setup.serve(agent, b"") == b""
    assert agent.requests == [] and setup.log.records == []


@pytest.mark.parametrize(
    "cut",
    [
        b"flags\x003\x00queue_name\x00active\x00",  # cut inside the common list
        b"nonsense\x003\x00\x00",  # an attribute that is not the first one
    ],
)
async def test_a_malformed_or_cut_request_gets_no_reply(setup: Setup, cut: bytes) -> None:
    agent = FakeAgent({})
    assert await setup.serve(agent, cut) == b""
    assert agent.requests == []
    assert setup.types_at_offsets() == "RR"
    ((level, _, text),) = setup.log.records
    assert level == "warning" and text.startswith("bad delivery request: ")


async def test_a_missing_queue_file_defers_with_no_dsn(setup: Setup) -> None:
    setup.path.unlink()
    agent = FakeAgent({r: SENT for r in RCPTS})
    reply = await setup.serve(agent, setup.request().encode(), close=False)
    assert reply == (CAPTURES / "final-reply-defer.bin").read_bytes()
    assert agent.requests == []
    ((level, _, text),) = setup.log.records
    assert level == "warning" and QUEUE_ID in text


async def test_a_request_mailcarrier_will_not_send_is_deferred(setup: Setup) -> None:
    agent = FakeAgent({})
    bad = setup.request(sender="a\r\nRSET@x")  # CR LF: never on the wire
    reply = await setup.serve(agent, bad.encode(), close=False)
    assert reply == (CAPTURES / "final-reply-defer.bin").read_bytes()
    assert agent.requests == [] and setup.types_at_offsets() == "RR"
    assert len(setup.services["defer"].requests) == 2
    assert "status=deferred (bad delivery request: " in setup.log.lines[-1]


async def test_an_agent_that_fails_gives_no_reply_and_marks_nothing(setup: Setup) -> None:
    agent = FakeAgent({})
    agent.fail = RuntimeError("a bug")
    assert await setup.serve(agent, setup.request().encode(), close=False) == b""
    assert setup.types_at_offsets() == "RR"
    assert setup.log.records[-1] == (
        "warning",
        "smtp",
        "delivery request abandoned: RuntimeError: a bug",
    )


async def test_a_corrupt_queue_file_bounces_and_goes_to_the_corrupt_queue(setup: Setup) -> None:
    data = bytearray(setup.path.read_bytes())
    data[setup.layout.xtra_offset] = ord("Q")  # no X record after the content
    setup.path.write_bytes(bytes(data))
    agent = FakeAgent({r: SENT for r in RCPTS})
    reply = await setup.serve(agent, setup.request().encode(), close=False)
    assert reply == (CAPTURES / "final-reply-defer.bin").read_bytes()
    assert setup.path.stat().st_mode & 0o777 == 0o400  # qmgr moves it to corrupt/
    assert len(setup.services["bounce"].requests) == 2
    assert setup.types_at_offsets() == "DD"  # bounced, so done
    assert any(level == "warning" and QUEUE_ID in text for level, _, text in setup.log.records)


async def _serve_raw(
    setup: Setup, agent: FakeAgent, ipc_timeout: float
) -> tuple[socket.socket, asyncio.Future[None]]:
    """The server on one end of a socketpair, with `ipc_timeout`; the other end is ours."""
    ours, theirs = socket.socketpair()
    options = ServerOptions(transport="smtp", process="smtp", ipc_timeout=ipc_timeout)
    server = NativeServer(agent, StatusServices(setup.root, setup.log), setup.log, options)
    return theirs, asyncio.ensure_future(server.handle(ours))


async def test_a_request_that_does_not_come_times_out(setup: Setup) -> None:
    theirs, task = await _serve_raw(setup, FakeAgent({}), 0.1)
    assert await asyncio.to_thread(theirs.recv, 100) == HELLO
    await asyncio.wait_for(task, 30)
    assert setup.log.lines == ["warning: bad delivery request: timeout"]
    assert await asyncio.to_thread(theirs.recv, 100) == b""  # closed, no reply
    theirs.close()


async def test_a_qmgr_that_never_closes_after_the_reply_times_out(setup: Setup) -> None:
    agent = FakeAgent({r: SENT for r in RCPTS})
    theirs, task = await _serve_raw(setup, agent, 0.5)
    assert await asyncio.to_thread(theirs.recv, 100) == HELLO
    theirs.sendall(setup.request().encode())
    await asyncio.wait_for(task, 30)
    assert setup.log.lines[-1] == "warning: bad delivery request: timeout"
    reply = (CAPTURES / "final-reply-ok.bin").read_bytes()
    assert await asyncio.to_thread(theirs.recv, 1000) == reply
    assert setup.types_at_offsets() == "DD"
    theirs.close()


async def test_a_request_byte_by_byte(setup: Setup) -> None:
    agent = FakeAgent({r: SENT for r in RCPTS})
    theirs, task = await _serve_raw(setup, agent, 30)
    assert await asyncio.to_thread(theirs.recv, 100) == HELLO
    for byte in setup.request().encode():
        theirs.send(bytes([byte]))
        await asyncio.sleep(0)
    reply = (CAPTURES / "final-reply-ok.bin").read_bytes()
    assert await asyncio.wait_for(asyncio.to_thread(theirs.recv, 1000), 30) == reply
    theirs.close()
    await asyncio.wait_for(task, 30)
    assert setup.types_at_offsets() == "DD"
    assert len(agent.requests) == 1


async def test_reports_stay_in_order_when_one_needs_a_service(setup: Setup) -> None:
    # The deferral goes to defer(8) (a task); the success after it waits behind it.
    agent = FakeAgent({RCPTS[0]: LATER, RCPTS[1]: SENT})
    reply = await setup.serve(agent, setup.request().encode(), close=False)
    assert reply == (CAPTURES / "final-reply-defer.bin").read_bytes()
    assert setup.types_at_offsets() == "RD"
    assert [line.split(", relay=")[0] for line in setup.log.lines] == [
        f"{QUEUE_ID}: to=<{r}>" for r in RCPTS
    ]
    assert "status=deferred" in setup.log.lines[0] and "status=sent" in setup.log.lines[1]


class SlowAgent(FakeAgent):
    """Delivers after qmgr has had time to close its side."""

    async def deliver(
        self,
        request: DeliveryRequest,
        *,
        on_status: Callable[[int, RecipientStatus], None] | None = None,
        log_lines: bool = True,
    ) -> DeliveryResult:
        await asyncio.sleep(0.2)
        return await super().deliver(request, on_status=on_status, log_lines=log_lines)


async def test_the_reply_goes_out_after_qmgr_closed_its_side(setup: Setup) -> None:
    # deliver_request.c writes the reply whatever qmgr did with its half of the socket.
    agent = SlowAgent({r: SENT for r in RCPTS})
    reply = await setup.serve(agent, setup.request().encode(), close=True)
    assert reply == (CAPTURES / "final-reply-ok.bin").read_bytes()
    assert setup.types_at_offsets() == "DD"

"""End to end through the queue against aiosmtpd: submit, run, receive; concurrency limits;
crash injection with the real command killed at named points and restarted."""

from __future__ import annotations

import asyncio
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from mailcarrier import api
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.log import MemoryLog
from mailcarrier.queue.crash import POINTS
from mailcarrier.queue.scheduler import QueueManager
from mailcarrier.queue.spool import open_spool
from tests.queue.helpers import run_cli
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.settings import queue_settings

PLAIN = ("PIPELINING", "ENHANCEDSTATUSCODES")  # aiosmtpd does not implement DSN parameters
MESSAGE = b"Subject: e2e\n\nline one\n.dot line\n"


@pytest.fixture
def server() -> Iterator[AiosmtpdServer]:
    srv = AiosmtpdServer(RecordingHandler(extra_keywords=PLAIN)).start()
    try:
        yield srv
    finally:
        srv.stop()


async def test_submit_and_run_once_delivers(tmp_path: Path, server: AiosmtpdServer) -> None:
    cfg = queue_settings(tmp_path, relayhost=server.nexthop)
    qid = await api.submit(
        MESSAGE, sender="s@example.org", recipients=["a@example.net", "b@example.net"], config=cfg
    )
    log = MemoryLog()
    spool = open_spool(cfg, log=log)
    assert spool.find(qid) == "incoming"
    await QueueManager(cfg, spool, DeliveryAgent(cfg, log=log), log=log).run_once()
    assert spool.find(qid) is None
    (msg,) = server.messages
    assert msg.mail_from == "s@example.org" and msg.rcpt_tos == ["a@example.net", "b@example.net"]
    assert msg.content.endswith(b"line one\r\n.dot line\r\n") or msg.content.endswith(
        b"line one\n.dot line\n"
    )
    assert any("status=sent" in line and qid in line for line in log.lines)
    assert f"{qid}: removed" in log.lines


async def test_rejected_recipient_bounces_back_through_the_queue(tmp_path: Path) -> None:
    handler = RecordingHandler(extra_keywords=PLAIN, reject={"bad": "550 5.1.1 no such user"})
    srv = AiosmtpdServer(handler).start()
    try:
        cfg = queue_settings(tmp_path, relayhost=srv.nexthop)
        api.submit_sync(
            MESSAGE,
            sender="s@example.org",
            recipients=["bad@example.net", "ok@example.net"],
            config=cfg,
        )
        spool = open_spool(cfg)
        await QueueManager(cfg, spool, DeliveryAgent(cfg)).run_once()
        rcpts = [m.rcpt_tos for m in srv.messages]
        assert rcpts == [["ok@example.net"], ["s@example.org"]]
        assert srv.messages[1].mail_from == "<>"
        assert b"multipart/report" in srv.messages[1].content
        assert spool.ids("incoming") == spool.ids("deferred") == spool.ids("active") == []
    finally:
        srv.stop()


class CountingHandler(RecordingHandler):
    """Counts simultaneous transactions; each waits for the others to overlap."""

    def __init__(self, expect: int) -> None:
        super().__init__(extra_keywords=PLAIN)
        self.expect = expect
        self.current = 0
        self.peak = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.current += 1
            self.peak = max(self.peak, self.current)
        for _ in range(200):  # until `expect` overlap (or 2 s for a straggler)
            if self.current >= self.expect:
                break
            await asyncio.sleep(0.01)
        reply = await super().handle_DATA(server, session, envelope)
        with self.lock:
            self.current -= 1
        return reply


async def test_destination_concurrency_limit_on_a_counting_server(tmp_path: Path) -> None:
    handler = CountingHandler(expect=3)
    srv = AiosmtpdServer(handler).start()
    try:
        cfg = queue_settings(
            tmp_path,
            relayhost=srv.nexthop,
            initial_destination_concurrency="3",
            smtp_destination_concurrency_limit="3",
        )
        for i in range(9):
            api.submit_sync(
                MESSAGE, sender="s@example.org", recipients=[f"r{i}@example.net"], config=cfg
            )
        await QueueManager(cfg, open_spool(cfg), DeliveryAgent(cfg)).run_once()
        assert len(srv.messages) == 9
        assert handler.peak == 3
    finally:
        srv.stop()


def _cli(
    args: list[str], *, stdin: bytes = b"", crash: str = ""
) -> subprocess.CompletedProcess[bytes]:
    return run_cli(args, stdin=stdin, crash=crash)


def _opts(queue: Path, nexthop: str) -> list[str]:
    return [
        "-o",
        f"queue_directory={queue}",
        "-o",
        f"relayhost={nexthop}",
        "-o",
        "myhostname=mc.example",
    ]


RCPTS = ["a@example.net", "b@example.net", "c@example.net"]


@pytest.mark.parametrize(
    "point", ["enqueue-after-write", "enqueue-before-rename", "enqueue-after-rename"]
)
def test_crash_during_enqueue(tmp_path: Path, server: AiosmtpdServer, point: str) -> None:
    opts = _opts(tmp_path, server.nexthop)
    proc = _cli([*opts, "sendmail", "-f", "s@example.org", *RCPTS], stdin=MESSAGE, crash=point)
    assert proc.returncode == -9  # killed: the submitter was never told "queued"
    assert _cli([*opts, "run", "--once"]).returncode == 0
    delivered = [r for m in server.messages for r in m.rcpt_tos]
    if point == "enqueue-after-rename":  # durable before the kill: it must be delivered
        assert sorted(delivered) == RCPTS
    else:  # never acknowledged: nothing half-written may be delivered
        assert delivered == []
    assert _cli([*opts, "queue", "list"]).stdout == b"Mail queue is empty\n"


@pytest.mark.parametrize(
    "point",
    [
        "activate-after-move",
        "delivery-before-record",
        "delivery-after-record",
        "finalize-before-move",
    ],
)
def test_crash_during_delivery_loses_nothing(
    tmp_path: Path, server: AiosmtpdServer, point: str
) -> None:
    assert point in POINTS
    opts = _opts(tmp_path, server.nexthop)
    for rcpt in RCPTS:  # one message per recipient, so a crash lands mid-way through the queue
        assert _cli([*opts, "sendmail", "-f", "s@example.org", rcpt], stdin=MESSAGE).returncode == 0
    assert _cli([*opts, "run", "--once"], crash=point).returncode == -9
    restarted = _cli([*opts, "run", "--once"])
    assert restarted.returncode == 0, restarted.stderr
    delivered = {r for m in server.messages for r in m.rcpt_tos}
    assert delivered == set(RCPTS)  # every recipient at least once
    assert _cli([*opts, "queue", "list"]).stdout == b"Mail queue is empty\n"


def test_crash_between_notice_and_record_still_notifies(tmp_path: Path) -> None:
    handler = RecordingHandler(extra_keywords=PLAIN, reject={"bad": "550 5.1.1 no such user"})
    srv = AiosmtpdServer(handler).start()
    try:
        opts = _opts(tmp_path, srv.nexthop)
        _cli([*opts, "sendmail", "-f", "s@example.org", "bad@example.net"], stdin=MESSAGE)
        assert _cli([*opts, "run", "--once"], crash="notice-before-record").returncode == -9
        assert _cli([*opts, "run", "--once"]).returncode == 0
        notices = [m for m in srv.messages if m.rcpt_tos == ["s@example.org"]]
        assert len(notices) >= 1 and all(m.mail_from == "<>" for m in notices)
    finally:
        srv.stop()

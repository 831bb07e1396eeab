"""Delivery agent processes (``delivery_agent_processes``): the scheduler's deliveries run in
child processes, verdicts and log lines come back, a dead child loses nothing."""

from __future__ import annotations

import asyncio
import os
import pickle
import signal
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier import api
from mailcarrier.api import make_request
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.log import MemoryLog
from mailcarrier.queue.scheduler import QueueManager
from mailcarrier.queue.spool import open_spool
from mailcarrier.queue.stopping import CLOSE_GRACE, cancel_tasks
from mailcarrier.queue.workers import AgentPool
from mailcarrier.status import HopStatus
from tests.queue.helpers import run_cli
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler, free_port
from tests.support.scripted import ScriptedServer, Stall
from tests.support.settings import make_settings, queue_settings

PLAIN = ("PIPELINING", "ENHANCEDSTATUSCODES")
MESSAGE = b"Subject: workers\n\nbody line\n"


@pytest.fixture
def server() -> Iterator[AiosmtpdServer]:
    srv = AiosmtpdServer(RecordingHandler(extra_keywords=PLAIN)).start()
    try:
        yield srv
    finally:
        srv.stop()


def test_settings_survive_pickling_with_their_sources(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text("relayhost = [127.0.0.1]:2525\nmyhostname = a.example\n")
    cfg = Settings.load(tmp_path, {"smtp_connect_timeout": "7s"})
    copy = pickle.loads(pickle.dumps(cfg))
    assert copy.get_str("myhostname") == "a.example"
    assert copy.get_time("smtp_connect_timeout") == 7
    assert copy.config_dir == tmp_path
    # A bad value still names its file and line after the round trip (validated again).
    raw = dict(cfg._raw)
    (tmp_path / "main.cf").write_text("smtp_connect_timeout = soon\n")
    with pytest.raises(ConfigError, match=r"main\.cf:1"):
        Settings.load(tmp_path)
    assert raw  # the original stays usable


def test_process_count_is_validated() -> None:
    with pytest.raises(ConfigError, match="delivery_agent_processes"):
        make_settings(delivery_agent_processes="0")


async def test_pool_delivers_and_relays_log_lines(tmp_path: Path, server: AiosmtpdServer) -> None:
    cfg = queue_settings(tmp_path, relayhost=server.nexthop, delivery_agent_processes="2")
    ids = [
        await api.submit(
            MESSAGE, sender="s@example.org", recipients=[f"r{i}@example.net"], config=cfg
        )
        for i in range(6)
    ]
    log = MemoryLog()
    spool = open_spool(cfg, log=log)
    pool = AgentPool(cfg, 2, log)
    try:
        await pool.start()
        assert len({child.pid for child in pool._children} - {os.getpid()}) == 2
        await QueueManager(cfg, spool, pool, log=log).run_once()
    finally:
        await pool.close()
    assert sorted(r for m in server.messages for r in m.rcpt_tos) == sorted(
        f"r{i}@example.net" for i in range(6)
    )
    for qid in ids:
        # The child's delivery line reached the scheduler's log; the scheduler removed the file.
        assert any(line.startswith(f"{qid}: to=<") and "status=sent" in line for line in log.lines)
        assert f"{qid}: removed" in log.lines
    assert spool.ids("active") == spool.ids("incoming") == spool.ids("deferred") == []


async def test_pool_passes_the_hop_status_back(tmp_path: Path) -> None:
    """A site failure in an agent process reaches the scheduler as the hop status (its
    negative feedback); a clean delivery carries none."""
    port = free_port()
    cfg = queue_settings(tmp_path, relayhost=f"[127.0.0.1]:{port}", delivery_agent_processes="1")
    request = make_request(
        MESSAGE, sender="s@example.org", recipients=["r@example.net"], nexthop=f"[127.0.0.1]:{port}"
    )
    pool = AgentPool(cfg, 1, MemoryLog())
    try:
        await pool.start()
        result = await pool.deliver(request)
    finally:
        await pool.close()
    assert result.hop_status == HopStatus(
        "4.4.1", f"connect to 127.0.0.1[127.0.0.1]:{port}: Connection refused"
    )


class GatedHandler(RecordingHandler):
    """Holds every DATA until `gate` is set; `entered` is set when the first DATA arrives."""

    def __init__(self) -> None:
        super().__init__(extra_keywords=PLAIN)
        self.gate = threading.Event()
        self.entered = threading.Event()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.entered.set()
        await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 30)
        return await super().handle_DATA(server, session, envelope)  # type: ignore[arg-type]


async def test_killed_agent_defers_its_mail_and_is_replaced(tmp_path: Path) -> None:
    handler = GatedHandler()
    srv = AiosmtpdServer(handler).start()
    pool: AgentPool | None = None
    try:
        cfg = queue_settings(tmp_path, relayhost=srv.nexthop, delivery_agent_processes="1")
        qid = await api.submit(
            MESSAGE, sender="s@example.org", recipients=["x@example.net"], config=cfg
        )
        log = MemoryLog()
        spool = open_spool(cfg, log=log)
        pool = AgentPool(cfg, 1, log)
        manager = QueueManager(cfg, spool, pool, log=log)
        run = asyncio.create_task(manager.run_once())
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, handler.entered.wait, 30)
        victim = pool._children[0].pid
        os.kill(victim, signal.SIGKILL)
        await asyncio.wait_for(run, 30)
        handler.gate.set()
        # Nothing lost: the recipient is deferred (not bounced), the reason says why.
        assert spool.find(qid) == "deferred"
        assert any(
            f"delivery agent process pid {victim} killed by signal 9" in line for line in log.lines
        )
        assert any(qid in line and "dsn=4.3.0" in line for line in log.lines)
        # The next request starts a new agent (a fresh interpreter), which delivers.
        spool.move(qid, "deferred", "incoming")
        await manager.run_once()
        assert pool._children[0].pid != victim
        assert [m.rcpt_tos for m in srv.messages] == [["x@example.net"]]
        assert spool.find(qid) is None
    finally:
        handler.gate.set()
        if pool is not None:
            await pool.close()
        srv.stop()


def _cli(args: list[str], crash: str = "") -> subprocess.CompletedProcess[str]:
    return run_cli(args, crash=crash, text=True)


def _opts(tmp_path: Path, nexthop: str) -> list[str]:
    return [
        "-o",
        f"queue_directory={tmp_path / 'queue'}",
        "-o",
        f"relayhost={nexthop}",
        "-o",
        f"maillog_file={tmp_path / 'maillog'}",
        "-o",
        "delivery_agent_processes=3",
    ]


def test_run_once_with_forked_agents(tmp_path: Path, server: AiosmtpdServer) -> None:
    opts = _opts(tmp_path, server.nexthop)
    cfg = queue_settings(tmp_path / "queue", relayhost=server.nexthop)
    for i in range(10):
        api.submit_sync(
            MESSAGE, sender="s@example.org", recipients=[f"f{i}@example.net"], config=cfg
        )
    proc = _cli([*opts, "run", "--once"])
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr == ""  # the daemon logs to maillog_file only
    maillog = (tmp_path / "maillog").read_text()
    assert maillog.count("status=sent") == 10 and maillog.count(": removed") == 10
    assert len(server.messages) == 10
    assert _cli([*opts, "queue", "list"]).stdout == "Mail queue is empty\n"


def test_crash_with_agent_processes_loses_nothing(tmp_path: Path, server: AiosmtpdServer) -> None:
    opts = _opts(tmp_path, server.nexthop)
    cfg = queue_settings(tmp_path / "queue", relayhost=server.nexthop)
    rcpts = {f"c{i}@example.net" for i in range(4)}
    for rcpt in sorted(rcpts):
        api.submit_sync(MESSAGE, sender="s@example.org", recipients=[rcpt], config=cfg)
    assert _cli([*opts, "run", "--once"], crash="delivery-after-record").returncode == -9
    again = _cli([*opts, "run", "--once"])
    assert again.returncode == 0, again.stderr
    assert {r for m in server.messages for r in m.rcpt_tos} == rcpts
    assert _cli([*opts, "queue", "list"]).stdout == "Mail queue is empty\n"


def test_agent_processes_pass_transcripts_to_the_scheduler(tmp_path: Path) -> None:
    handler = RecordingHandler(
        extra_keywords=PLAIN, reject={"bad": "501 5.1.3 Bad recipient address syntax"}
    )
    srv = AiosmtpdServer(handler).start()
    try:
        opts = [*_opts(tmp_path, srv.nexthop), "-o", "notify_classes=protocol"]
        cfg = queue_settings(tmp_path / "queue", relayhost=srv.nexthop)
        api.submit_sync(MESSAGE, sender="s@example.org", recipients=["bad@example.net"], config=cfg)
        proc = _cli([*opts, "run", "--once"])
        assert proc.returncode == 0, proc.stderr
        notices = [m for m in srv.messages if b"SMTP client: errors from" in m.content]
        assert len(notices) == 1 and notices[0].rcpt_tos[0].startswith("postmaster@")
        assert b" In: 501 5.1.3 Bad recipient address syntax" in notices[0].content
        assert "postmaster transcript notification" in (tmp_path / "maillog").read_text()
    finally:
        srv.stop()


async def test_an_abandoned_delivery_is_cancelled_in_the_agent(tmp_path: Path) -> None:
    """Cancelling a delivery (a stop) tells its agent process, which drops it: the pool
    then closes at once although the server never answers (300 s timeouts)."""
    stalling = await ScriptedServer([Stall()]).start()
    pool: AgentPool | None = None
    try:
        cfg = queue_settings(tmp_path, relayhost=stalling.nexthop)
        request = api.make_request(
            MESSAGE, sender="s@example.org", recipients=["r@example.net"], nexthop=stalling.nexthop
        )
        pool = AgentPool(cfg, 1, MemoryLog())
        delivery = asyncio.create_task(pool.deliver(request))
        async with asyncio.timeout(30):
            while not stalling.connections:
                await asyncio.sleep(0.01)
        child = pool._children[0]
        await cancel_tasks([delivery])
        assert delivery.cancelled() and child.pending == {}
        # The agent dropped the connection by itself: the server saw it close.
        await stalling.wait_done(10)
        assert child.alive
        async with asyncio.timeout(CLOSE_GRACE + 10):  # not the server's 300 s
            await pool.close(timeout=CLOSE_GRACE)
        assert child.task is not None and child.task.done()
    finally:
        if pool is not None:
            pool.kill()
        await stalling.stop()

"""Stopping `mailcarrier run` while deliveries are stalled: SIGTERM ends it within seconds
although the servers never answer and the timeouts are Postfix's 300 s; deliveries in
flight are abandoned (logged), their messages stay queued with no recipient marked, and the
next run delivers them exactly once. A second signal stops it at once."""

from __future__ import annotations

import asyncio
import io
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from mailcarrier.cli import run
from mailcarrier.queue.spool import Spool
from mailcarrier.queue.stopping import STOP_GRACE
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.scripted import ScriptedServer, Stall

MAILCARRIER = [sys.executable, "-c", "from mailcarrier.cli import main; main()"]
CEILING = 15.0  # generous: the grace period is STOP_GRACE seconds


class _StallingServer:
    """A scripted server that accepts every connection and never says anything, on an event
    loop of its own (the scheduler under test is another process)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.server = self._call(ScriptedServer([Stall()]).start())

    def _call(self, coro: Coroutine[Any, Any, ScriptedServer]) -> ScriptedServer:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    @property
    def nexthop(self) -> str:
        return self.server.nexthop

    @property
    def connections(self) -> int:
        return len(self.server.connections)

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def stalling() -> Iterator[_StallingServer]:
    srv = _StallingServer()
    try:
        yield srv
    finally:
        srv.stop()


def _opts(queue: Path, nexthop: str) -> list[str]:
    opts = [f"queue_directory={queue}", f"relayhost={nexthop}", "myorigin=example.org"]
    return [word for opt in opts for word in ("-o", opt)]


def _run(args: list[str], stdin: bytes = b"") -> tuple[int, str]:
    err = io.StringIO()
    code = run(args, stdin=io.BytesIO(stdin), stdout=io.StringIO(), stderr=err)
    return code, err.getvalue()


def _wait(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def _texts(log: Path) -> list[str]:
    """Log lines without the time stamp, host and process id."""
    return [line.split("]: ", 1)[1] for line in log.read_text().splitlines()]


@pytest.mark.parametrize("agents", ["1", "2"])
@pytest.mark.parametrize("second", [None, signal.SIGINT, signal.SIGTERM])
def test_stop_abandons_stalled_deliveries(
    tmp_path: Path, stalling: _StallingServer, agents: str, second: signal.Signals | None
) -> None:
    q = tmp_path / "q"
    maillog = tmp_path / "maillog"
    o = [
        *_opts(q, stalling.nexthop),
        "-o",
        f"maillog_file={maillog}",
        "-o",
        f"delivery_agent_processes={agents}",
    ]
    for rcpt in ("one@example.net", "two@example.net"):
        assert _run([*o, "sendmail", "-f", "s@example.org", rcpt], b"Subject: s\n\nbody\n")[0] == 0
    ids = sorted(os.listdir(q / "incoming"))
    proc = subprocess.Popen(
        [*MAILCARRIER, *o, "run"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert _wait(lambda: stalling.connections == 2)  # both deliveries are stalled
        proc.send_signal(signal.SIGTERM)
        if second is not None:
            assert _wait(lambda: "stopping: waiting" in maillog.read_text())
            proc.send_signal(second)
            sent = time.monotonic()
        _, err = proc.communicate(timeout=CEILING)
        if second is not None:
            # At once: well before the grace period of the first signal would have ended.
            assert time.monotonic() - sent < STOP_GRACE
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and b"Traceback" not in err, err
    texts = _texts(maillog)
    assert "stopping: waiting up to 5 seconds for 2 deliveries in progress" in texts
    abandoned = [t for t in texts if "abandoned" in t]
    assert sorted(abandoned) == [
        f"{i}: delivery to smtp:{stalling.nexthop} abandoned on signal, 1 recipient stays queued"
        for i in ids
    ]
    assert texts[-1] == "terminating on signal"
    # Back where `run` retries them, no recipient marked.
    assert sorted(os.listdir(q / "incoming")) == ids
    spool = Spool(q)
    for queue_id in ids:
        assert spool.read("incoming", queue_id).state.states == {}
    # The next run delivers them, each once.
    srv = AiosmtpdServer(RecordingHandler(extra_keywords=("PIPELINING",))).start()
    try:
        code, _ = _run([*_opts(q, srv.nexthop), "run", "--once"])
        delivered = sorted(r for m in srv.messages for r in m.rcpt_tos)
    finally:
        srv.stop()
    assert code == 0 and delivered == ["one@example.net", "two@example.net"]
    assert os.listdir(q / "incoming") == [] and os.listdir(q / "active") == []


def test_run_once_stops_on_sigterm(tmp_path: Path, stalling: _StallingServer) -> None:
    """`run --once` too: stopped within seconds, its stalled delivery abandoned."""
    q = tmp_path / "q"
    o = _opts(q, stalling.nexthop)
    assert _run([*o, "sendmail", "-f", "s@example.org", "r@example.net"], b"\nbody\n")[0] == 0
    (queue_id,) = os.listdir(q / "incoming")
    proc = subprocess.Popen(
        [*MAILCARRIER, *o, "run", "--once"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    try:
        assert _wait(lambda: stalling.connections == 1)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=CEILING)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and b"Traceback" not in err, err
    texts = [line.split("]: ", 1)[1] for line in err.decode().splitlines()]
    line = f"{queue_id}: delivery to smtp:{stalling.nexthop} abandoned on signal"
    assert f"{line}, 1 recipient stays queued" in texts
    assert texts[-1] == "terminating on signal"
    assert os.listdir(q / "incoming") == [queue_id]
    assert Spool(q).read("incoming", queue_id).state.states == {}

"""Three `mailcarrier run` nodes, each with its own queue, one private Redis, one receiving
server on loopback that counts its sessions: the fleet's connection limit holds across the
nodes, every message arrives once, a rate limit holds in every window, a node killed with
SIGKILL holding leases does not stop the others for longer than the lease time, and Redis
stopped mid-run makes mail wait (nothing deferred, nothing lost) until it is back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from mailcarrier.api import submit_sync
from mailcarrier.config.settings import Settings
from tests.support.peers.aiosmtpd_sessions import SessionCountingServer
from tests.support.peers.redis import RedisServer

MAILCARRIER = [sys.executable, "-c", "from mailcarrier.cli import main; main()"]
CEILING = 180.0  # generous: "it finished", never a speed


@pytest.fixture
def receiver() -> Iterator[SessionCountingServer]:
    server = SessionCountingServer().start()
    try:
        yield server
    finally:
        server.stop()


class Node:
    def __init__(self, root: Path, name: str, options: dict[str, str]) -> None:
        self.name = name
        self.queue = root / name / "queue"
        self.log = root / name / "maillog"
        self.options = {
            "queue_directory": str(self.queue),
            "data_directory": str(root / name / "data"),
            "maillog_file": str(self.log),
            "myorigin": "example.org",
            "node_id": name,
            "queue_run_delay": "1s",
            **options,
        }
        self.proc: subprocess.Popen[bytes] | None = None

    def settings(self) -> Settings:
        return Settings.defaults().with_overrides(self.options)

    def submit(self, count: int, start: int) -> None:
        settings = self.settings()
        for n in range(start, start + count):
            body = f"Message-ID: <m{n}@fleet.test>\r\nSubject: {n}\r\n\r\nmessage {n}\r\n"
            submit_sync(
                body.encode(), sender="a@example.org", recipients=["b@example.net"], config=settings
            )

    def args(self) -> list[str]:
        return [word for k, v in self.options.items() for word in ("-o", f"{k}={v}")]

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [*MAILCARRIER, *self.args(), "run"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def stop(self, sig: int = signal.SIGTERM) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.send_signal(sig)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stderr is not None:
                proc.stderr.close()

    def queued(self) -> int:
        return sum(
            1
            for sub in ("incoming", "active", "deferred")
            for path in (self.queue / sub).rglob("*")
            if path.is_file()
        )

    def log_text(self) -> str:
        return self.log.read_text() if self.log.exists() else ""


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[Callable[..., list[Node]]]:
    made: list[Node] = []

    def make(count: int, **options: str) -> list[Node]:
        for _ in range(count):
            made.append(Node(tmp_path, f"node{len(made) + 1}", options))
        return made[-count:]

    yield make
    for node in made:
        node.stop(signal.SIGKILL)


def wait_for(predicate: Callable[[], bool], timeout: float = CEILING) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def arrived_once(receiver: SessionCountingServer, total: int) -> None:
    ids = [mid for _, mid in receiver.handler.arrivals]
    assert sorted(ids) == sorted(f"<m{n}@fleet.test>" for n in range(total))


def test_connection_limit_holds_across_three_nodes(
    redis_url: str, receiver: SessionCountingServer, nodes: Callable[..., list[Node]]
) -> None:
    fleet = nodes(
        3,
        relayhost=receiver.nexthop,
        shared_state_server=redis_url,
        fleet_destination_concurrency_limit="2",
    )
    for i, node in enumerate(fleet):
        node.submit(100, i * 100)
    for node in fleet:
        node.start()
    assert wait_for(lambda: len(receiver.handler.arrivals) >= 300)
    assert wait_for(lambda: all(node.queued() == 0 for node in fleet))
    for node in fleet:
        node.stop()
    arrived_once(receiver, 300)
    assert receiver.counter.peak <= 2
    assert receiver.counter.peak >= 1
    for node in fleet:
        text = node.log_text()
        assert "status=deferred" not in text
        assert "warning" not in text


def test_rate_limit_holds_in_every_window(
    redis_url: str, receiver: SessionCountingServer, nodes: Callable[..., list[Node]]
) -> None:
    # 10 a second with a burst of 5, 60 messages: at least 5.5 s of sending.
    fleet = nodes(
        3,
        relayhost=receiver.nexthop,
        shared_state_server=redis_url,
        fleet_destination_rate_limit="10/1s",
        fleet_destination_rate_burst="5",
        fleet_busy_retry_time="0.2s",
    )
    for i, node in enumerate(fleet):
        node.submit(20, i * 20)
    for node in fleet:
        node.start()
    assert wait_for(lambda: len(receiver.handler.arrivals) >= 60)
    for node in fleet:
        node.stop()
    arrived_once(receiver, 60)
    times = sorted(t for t, _ in receiver.handler.arrivals)
    for t in times:
        # Redis time decides, the receiver only observes (a little later): one of slack.
        assert sum(1 for u in times if t <= u < t + 1.0) <= 5 + 10 + 1
    assert times[-1] - times[0] >= 3.0  # the rate did bind


def test_node_killed_holding_leases(
    redis_url: str,
    redis_server: RedisServer,
    receiver: SessionCountingServer,
    nodes: Callable[..., list[Node]],
) -> None:
    options = {
        "relayhost": receiver.nexthop,
        "shared_state_server": redis_url,
        "fleet_destination_concurrency_limit": "1",
        "fleet_lease_time": "3s",
    }
    # The dying node keeps its session (and its lease) cached; the other closes its soon.
    (first,) = nodes(1, smtp_connection_cache_time_limit="60s", **options)
    (second,) = nodes(1, smtp_connection_cache_time_limit="1s", **options)
    first.submit(1, 0)
    first.start()
    assert wait_for(lambda: len(receiver.handler.arrivals) == 1)
    key = f"mailcarrier:fleet:{{smtp:{receiver.nexthop}}}:leases"
    assert wait_for(lambda: redis_server.command("ZCARD", key) == "1")
    first.stop(signal.SIGKILL)  # its cached session's lease is never released
    first.submit(5, 1)  # waits in its queue while it is down
    second.submit(5, 6)
    second.start()
    assert wait_for(lambda: len(receiver.handler.arrivals) == 6, timeout=60)
    first.start()  # restarted: its mail goes too
    assert wait_for(lambda: len(receiver.handler.arrivals) == 11, timeout=60)
    arrived_once(receiver, 11)


def test_redis_stopped_mid_run(
    redis_url: str,
    redis_server: RedisServer,
    receiver: SessionCountingServer,
    nodes: Callable[..., list[Node]],
) -> None:
    (node,) = nodes(
        1,
        relayhost=receiver.nexthop,
        shared_state_server=redis_url,
        fleet_destination_concurrency_limit="2",
        fleet_timeout="1s",
        smtp_connection_cache_time_limit="1s",
    )
    node.submit(5, 0)
    node.start()
    assert wait_for(lambda: len(receiver.handler.arrivals) == 5)
    assert wait_for(lambda: receiver.counter.open == 0)  # its cached session closed
    redis_server.stop()
    try:
        node.submit(5, 5)
        sessions = receiver.counter.sessions
        assert wait_for(lambda: "destinations with fleet limits wait" in node.log_text(), 60)
        time.sleep(2)  # a few retries while Redis is away: no connection opened
        assert receiver.counter.sessions == sessions
        assert node.queued() == 5
    finally:
        redis_server.start()
    assert wait_for(lambda: len(receiver.handler.arrivals) == 10, timeout=60)
    node.stop()
    arrived_once(receiver, 10)
    text = node.log_text()
    assert "status=deferred" not in text
    assert text.count("destinations with fleet limits wait") == 1
    assert "answering again" in text
    assert os.path.exists(node.queue)


def test_run_once_with_redis_down_ends_and_leaves_the_mail(
    redis_url: str,
    redis_server: RedisServer,
    receiver: SessionCountingServer,
    nodes: Callable[..., list[Node]],
) -> None:
    """`run --once` does not wait for Redis: the mail stays queued (nothing deferred, the
    queue files as they were), one warning, one line saying what was left, exit 75; the
    next `run --once` with Redis back delivers it and exits 0."""
    (node,) = nodes(
        1,
        relayhost=receiver.nexthop,
        shared_state_server=redis_url,
        fleet_destination_concurrency_limit="2",
        fleet_timeout="1s",
    )
    node.submit(3, 0)

    def queue_files() -> dict[Path, bytes]:
        return {p: p.read_bytes() for p in (node.queue / "incoming").rglob("*") if p.is_file()}

    files = queue_files()
    assert len(files) == 3
    sessions = receiver.counter.sessions
    redis_server.stop()
    try:
        once = subprocess.run(
            [*MAILCARRIER, *node.args(), "run", "--once"],
            capture_output=True,
            check=False,
            timeout=CEILING,
        )
    finally:
        redis_server.start()
    assert once.returncode == 75, once.stderr
    assert receiver.counter.sessions == sessions  # no connection opened
    assert queue_files() == files  # back in incoming/, not a byte written
    text = node.log_text()
    assert text.count("warning") == 1
    assert "destinations with fleet limits wait" in text
    assert text.count("left in the queue") == 1
    assert text.rstrip("\n").endswith(
        "3 messages left in the queue for destinations with fleet limits: "
        "the shared state server cannot be reached"
    )
    assert "status=" not in text
    again = subprocess.run(
        [*MAILCARRIER, *node.args(), "run", "--once"],
        capture_output=True,
        check=False,
        timeout=CEILING,
    )
    assert again.returncode == 0, again.stderr
    arrived_once(receiver, 3)
    assert node.queued() == 0


def test_a_reload_closes_the_retired_gate(
    redis_url: str,
    redis_server: RedisServer,
    receiver: SessionCountingServer,
    nodes: Callable[..., list[Node]],
) -> None:
    """SIGHUP makes a new delivery agent and fleet gate; the old one, once idle, ends its
    cached sessions (their leases released) and its Redis connections: reloads do not pile
    up connections to Redis, nor leases."""
    (node,) = nodes(
        1,
        relayhost=receiver.nexthop,
        shared_state_server=redis_url,
        fleet_destination_concurrency_limit="5",
        smtp_connection_cache_time_limit="60s",  # the old agent's session stays parked
        smtp_connection_cache_destinations=receiver.nexthop,
    )
    key = f"mailcarrier:fleet:{{smtp:{receiver.nexthop}}}:leases"

    def clients() -> int:  # connections to Redis but redis-cli's own
        return len(redis_server.command("CLIENT", "LIST").splitlines()) - 1

    node.submit(1, 0)
    node.start()
    assert wait_for(lambda: len(receiver.handler.arrivals) == 1)
    assert wait_for(lambda: redis_server.command("ZCARD", key) == "1")
    one_generation = clients()
    assert one_generation >= 1
    for n in range(1, 4):
        assert node.proc is not None
        node.proc.send_signal(signal.SIGHUP)
        assert wait_for(lambda n=n: node.log_text().count("configuration reloaded") >= n, 60)  # type: ignore[misc]
        node.submit(1, n)
        assert wait_for(lambda n=n: len(receiver.handler.arrivals) == n + 1)  # type: ignore[misc]
    # Only the newest agent's session and lease are left; the old gates are closed.
    assert wait_for(lambda: redis_server.command("ZCARD", key) == "1", 60)
    assert wait_for(lambda: clients() <= one_generation, 60)
    assert wait_for(lambda: receiver.counter.open == 1, 60)
    node.stop()
    arrived_once(receiver, 4)

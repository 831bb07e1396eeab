"""`make demo-fleet`: three mailcarrier nodes share one connection limit through Redis.

Starts a private redis-server on a free loopback port (its own directory, nothing kept), one
receiving SMTP server (aiosmtpd) that counts the sessions open at once, and three
``mailcarrier run`` nodes, each with its own queue, all told
``fleet_destination_concurrency_limit = 2``. 90 messages are queued (30 per node); the demo
prints what the receiver saw (never more than 2 sessions at once, every message once) and
``mailcarrier fleet status`` while the nodes work. Needs Debian's redis-server.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session

COUNT = 30  # messages per node
LIMIT = 2


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Counter:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.open = self.peak = self.sessions = self.messages = 0

    def change(self, delta: int) -> None:
        with self.lock:
            self.open += delta
            self.sessions += max(delta, 0)
            self.peak = max(self.peak, self.open)


COUNTER = Counter()


class CountingSMTP(SMTP):
    def connection_made(self, transport: object) -> None:
        COUNTER.change(1)
        super().connection_made(transport)  # type: ignore[arg-type]

    def connection_lost(self, exc: Exception | None) -> None:
        COUNTER.change(-1)
        super().connection_lost(exc)


class Handler:
    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        with COUNTER.lock:
            COUNTER.messages += 1
        return "250 2.0.0 Ok: queued"


class CountingController(Controller):
    def factory(self) -> SMTP:
        return CountingSMTP(self.handler, **self.SMTP_kwargs)


def mailcarrier(options: dict[str, str], *args: str) -> list[str]:
    words = [w for k, v in options.items() for w in ("-o", f"{k}={v}")]
    return [sys.executable, "-c", "from mailcarrier.cli import main; main()", *words, *args]


def main() -> int:
    redis_server = shutil.which("redis-server")
    if redis_server is None:
        print("demo-fleet: redis-server is not installed (Debian redis-server: make peers)")
        return 1
    root = Path(tempfile.mkdtemp(prefix="mailcarrier-fleet-"))
    redis_port = free_port()
    redis = subprocess.Popen(
        [
            redis_server,
            "--bind",
            "127.0.0.1",
            "--port",
            str(redis_port),
            "--dir",
            str(root),
            "--save",
            "",
            "--appendonly",
            "no",
        ],
        stdout=subprocess.DEVNULL,
    )
    receiver = CountingController(Handler(), hostname="127.0.0.1", port=free_port())
    receiver.start()
    nodes: list[subprocess.Popen[bytes]] = []
    try:
        time.sleep(0.5)
        url = f"redis://127.0.0.1:{redis_port}/0"
        print(f"redis-server on {url}; receiver on 127.0.0.1:{receiver.port}")
        for n in range(1, 4):
            (root / f"node{n}").mkdir()
            options = {
                "queue_directory": str(root / f"node{n}" / "queue"),
                "data_directory": str(root / f"node{n}" / "data"),
                "maillog_file": str(root / f"node{n}" / "maillog"),
                "relayhost": f"[127.0.0.1]:{receiver.port}",
                "myorigin": "example.org",
                "node_id": f"node{n}",
                "shared_state_server": url,
                "fleet_destination_concurrency_limit": str(LIMIT),
            }
            for i in range(COUNT):
                body = f"Subject: fleet demo {n}.{i}\n\nhello from node{n}\n".encode()
                subprocess.run(
                    mailcarrier(options, "sendmail", "-f", "a@example.org", "b@example.net"),
                    input=body,
                    check=True,
                )
            nodes.append(subprocess.Popen(mailcarrier(options, "run")))
            print(f"node{n}: {COUNT} messages queued, mailcarrier run started")
        status_options = {
            "shared_state_server": url,
            "queue_directory": str(root / "q"),
            "fleet_destination_concurrency_limit": str(LIMIT),
        }
        deadline = time.monotonic() + 300
        shown = False
        while COUNTER.messages < 3 * COUNT and time.monotonic() < deadline:
            time.sleep(0.5)
            if not shown and COUNTER.messages > COUNT:
                subprocess.run(mailcarrier(status_options, "fleet", "status"), check=False)
                shown = True
        print(
            f"receiver: {COUNTER.messages} messages in {COUNTER.sessions} sessions, "
            f"at most {COUNTER.peak} sessions at once (fleet limit {LIMIT})"
        )
        return 0 if COUNTER.messages == 3 * COUNT and COUNTER.peak <= LIMIT else 1
    finally:
        for node in nodes:
            node.send_signal(signal.SIGTERM)
        for node in nodes:
            node.wait(60)
        receiver.stop()
        redis.terminate()
        redis.wait(30)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

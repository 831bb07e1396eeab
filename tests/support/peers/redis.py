"""A private Redis server (Debian redis-server) on loopback, for the fleet tests.

`RedisServer(tmp_dir).start()` runs redis-server on 127.0.0.1 at a free port with its own
data directory (no RDB or AOF files written: nothing persists), a password when given
(``requirepass``), and `url` is what `shared_state_server` takes. `stop()` ends it (safe to
call twice), `restart()` starts it again on the same port (a test of Redis coming back);
`command(*args)` talks to it with redis-cli. `available()` says whether redis-server is
installed. The `redis_server` fixture in tests/fleet/conftest.py starts one per test module.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.support.peers.aiosmtpd_server import free_port

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def available() -> bool:
    return os.access(REDIS_SERVER, os.X_OK)


class RedisServer:
    def __init__(self, directory: Path, password: str = "") -> None:
        self.directory = directory
        self.password = password
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _config(self) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        lines = [
            "bind 127.0.0.1",
            f"port {self.port}",
            f"dir {self.directory}",
            'save ""',
            "appendonly no",
            "daemonize no",
            "protected-mode yes",
            f"logfile {self.directory / 'redis.log'}",
        ]
        if self.password:
            lines.append(f"requirepass {self.password}")
        path = self.directory / "redis.conf"
        path.write_text("\n".join(lines) + "\n")
        return path

    def start(self) -> RedisServer:
        config = self._config()
        self.proc = subprocess.Popen(
            [REDIS_SERVER, str(config)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                log = self.directory / "redis.log"
                text = log.read_text() if log.exists() else ""
                raise RuntimeError(f"redis-server exited: {text[-500:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), 1) as sock,
            ):
                sock.sendall(b"PING\r\n")
                if sock.recv(64).startswith((b"+PONG", b"-NOAUTH")):
                    return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("redis-server did not come up")

    def restart(self) -> RedisServer:
        self.stop()
        return self.start()

    def command(self, *args: str) -> str:
        """One command through redis-cli; its output, stripped."""
        cli = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(self.port), "--no-auth-warning"]
        if self.password:
            cli += ["-a", self.password]
        done = subprocess.run([*cli, *args], capture_output=True, check=True, timeout=30)
        return done.stdout.decode().strip()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)

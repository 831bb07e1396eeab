"""A private Redis server (Debian redis-server) on loopback, for the fleet tests.

`RedisServer(tmp_dir).start()` runs redis-server on 127.0.0.1 at a free port with its own
data directory (no RDB or AOF files written: nothing persists), a password when given
(``requirepass``), and `url` is what `shared_state_server` takes. `stop()` ends it (safe to
call twice), `restart()` starts it again on the same port (a test of Redis coming back);
`command(*args)` talks to it with redis-cli. `available()` says whether redis-server is
installed. `RedisClusterPeer` is a private Redis Cluster of three such servers (needs
redis-cli too: `cluster_available()`). The `redis_server` fixture in tests/fleet/conftest.py
starts one per test module.
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
    def __init__(self, directory: Path, password: str = "", *, extra: tuple[str, ...] = ()) -> None:
        self.directory = directory
        self.password = password
        self.extra = extra  # more redis.conf lines
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
        lines += self.extra
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


def cluster_available() -> bool:
    return available() and os.access(REDIS_CLI, os.X_OK)


class RedisClusterPeer:
    """A private Redis Cluster of three masters on loopback (no replicas): three
    redis-servers with ``cluster-enabled yes``, joined by ``redis-cli --cluster create``.
    `server_list` is what `shared_state_server` takes; `stop()` ends all three."""

    def __init__(self, directory: Path, masters: int = 3) -> None:
        self.servers = [
            RedisServer(
                directory / f"node{n}",
                extra=(
                    "cluster-enabled yes",
                    f"cluster-config-file {directory / f'node{n}' / 'nodes.conf'}",
                    "cluster-node-timeout 5000",
                    # The bus port, given: port + 10000 is out of range for a high free port.
                    f"cluster-port {free_port()}",
                ),
            )
            for n in range(masters)
        ]

    @property
    def server_list(self) -> str:
        return " ".join(f"redis://127.0.0.1:{s.port}" for s in self.servers)

    def start(self) -> RedisClusterPeer:
        try:
            for server in self.servers:
                server.start()
            cli = [REDIS_CLI, "--cluster", "create"]
            cli += [f"127.0.0.1:{s.port}" for s in self.servers]
            cli += ["--cluster-replicas", "0", "--cluster-yes"]
            subprocess.run(cli, capture_output=True, check=True, timeout=60)
            deadline = time.monotonic() + 30
            while not all("cluster_state:ok" in s.command("CLUSTER", "INFO") for s in self.servers):
                if time.monotonic() > deadline:
                    raise RuntimeError("the Redis Cluster did not reach cluster_state:ok")
                time.sleep(0.1)
        except BaseException:
            self.stop()
            raise
        return self

    def node_of(self, key: str) -> RedisServer:
        """The master that holds `key`'s slot."""
        slot = int(self.servers[0].command("CLUSTER", "KEYSLOT", key))
        for server in self.servers:
            for line in server.command("CLUSTER", "NODES").splitlines():
                fields = line.split()
                if "myself" not in fields[2]:
                    continue
                for spec in fields[8:]:
                    low, _, high = spec.partition("-")
                    if low.isdigit() and int(low) <= slot <= int(high or low):
                        return server
        raise RuntimeError(f"no master holds slot {slot}")

    def stop(self) -> None:
        for server in self.servers:
            server.stop()

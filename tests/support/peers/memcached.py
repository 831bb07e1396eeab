"""A private memcached (Debian memcached) on loopback or on a UNIX-domain socket.

`Memcached().start()` listens on 127.0.0.1 at a free port (`endpoint`: ``inet:host:port``);
`Memcached(unix_path=...)` on that socket instead (memcached then has no TCP listener).
`get(key)` and `set(key, value)` talk to it directly (the memcache text protocol), so tests
can put values in and see what a table stored. `stop()` is safe to call twice; `available()`
says whether memcached is installed. As root it runs as ``nobody`` (it refuses root).
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

MEMCACHED = shutil.which("memcached") or "/usr/bin/memcached"


def available() -> bool:
    return os.access(MEMCACHED, os.X_OK)


class Memcached:
    def __init__(self, unix_path: Path | None = None) -> None:
        self.unix_path = unix_path
        self.port = 0 if unix_path else free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        if self.unix_path is not None:
            return f"unix:{self.unix_path}"
        return f"inet:127.0.0.1:{self.port}"

    def _connect(self) -> socket.socket:
        if self.unix_path is not None:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(5)
            sock.connect(str(self.unix_path))
            return sock
        return socket.create_connection(("127.0.0.1", self.port), 5)

    def start(self) -> Memcached:
        args = [MEMCACHED, "-U", "0", "-m", "16", "-c", "64"]
        if self.unix_path is not None:
            args += ["-s", str(self.unix_path), "-a", "0666"]
        else:
            args += ["-l", "127.0.0.1", "-p", str(self.port)]
        if os.geteuid() == 0:
            args += ["-u", "nobody"]
        self.proc = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"memcached exited: {self.proc.stderr and self.proc.stderr.read()!r}"
                )
            with contextlib.suppress(OSError), self._connect():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError("memcached did not come up")

    def command(self, data: bytes, end: bytes) -> bytes:
        """Send `data`, read until the reply ends with `end`."""
        with self._connect() as sock:
            sock.sendall(data)
            reply = b""
            while not reply.endswith(end):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                reply += chunk
            return reply

    def set(self, key: bytes, value: bytes, flags: int = 0, ttl: int = 0) -> None:
        head = b"set %s %d %d %d\r\n" % (key, flags, ttl, len(value))
        assert self.command(head + value + b"\r\n", b"\r\n") == b"STORED\r\n"

    def get(self, key: bytes) -> tuple[int, bytes] | None:
        """(flags, value), or None."""
        reply = self.command(b"get " + key + b"\r\n", b"END\r\n")
        if reply == b"END\r\n":
            return None
        head, _, rest = reply.partition(b"\r\n")
        _, _, flags, length = head.split()
        return int(flags), rest[: int(length)]

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=15)
            if proc.stderr is not None:
                proc.stderr.close()

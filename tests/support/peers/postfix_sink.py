"""Postfix's smtp-sink (Debian package postfix) as a subprocess on loopback or a unix socket.

smtp-sink is Postfix's own fast test server: `-L` speaks LMTP, `-d DIR` dumps each message,
and fault options make it misbehave per command. It must be run as root with `-u nobody`;
`available()` says whether this machine can, so tests skip cleanly elsewhere.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

from tests.support.peers.aiosmtpd_server import free_port

SMTP_SINK = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"


def available() -> bool:
    return os.path.exists(SMTP_SINK) and os.geteuid() == 0


class SmtpSink:
    def __init__(self, *options: str, lmtp: bool = False, unix_path: str | None = None) -> None:
        self.lmtp = lmtp
        self.unix_path = unix_path
        self.port = 0 if unix_path else free_port()
        self.options = options
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def endpoint(self) -> str:
        return f"unix:{self.unix_path}" if self.unix_path else f"127.0.0.1:{self.port}"

    @property
    def nexthop(self) -> str:
        if self.unix_path:
            return f"unix:{self.unix_path}"
        return f"inet:[127.0.0.1]:{self.port}" if self.lmtp else f"[127.0.0.1]:{self.port}"

    def start(self) -> SmtpSink:
        args = [SMTP_SINK, "-u", "nobody", *self.options]
        if self.lmtp:
            args.append("-L")
        args += [self.endpoint, "100"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"smtp-sink exited: {err}")
            if self.unix_path and Path(self.unix_path).exists():
                return self
            if not self.unix_path:
                import socket

                with socket.socket() as s:
                    if s.connect_ex(("127.0.0.1", self.port)) == 0:
                        return self
            time.sleep(0.02)
        raise RuntimeError("smtp-sink did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

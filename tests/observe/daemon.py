"""A real ``mailcarrier run`` with its http_listen listener, for the observe tests.

`Daemon` writes main.cf (a private queue, the given parameters, maillog_file), starts the
command in a subprocess, waits for its "listening on" line and stops it with SIGTERM;
`get()` asks the listener over loopback HTTP. `free_port()` is aiosmtpd_server.py's.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType

from mailcarrier.queue.crash import CRASH_ENV

LISTENING = re.compile(r"listening on (\S+):(\d+) ")
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never a proxy


def wait_for(predicate: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll until `predicate()`: a generous ceiling, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def write_config(tmp_path: Path, params: Mapping[str, str]) -> Path:
    config = tmp_path / "etc"
    config.mkdir(exist_ok=True)
    values = {
        "queue_directory": str(tmp_path / "queue"),
        "data_directory": str(tmp_path / "data"),
        "maillog_file": str(tmp_path / "maillog"),
        "myhostname": "mc.example",
        "myorigin": "example.org",
        **params,
    }
    (config / "main.cf").write_text("".join(f"{k} = {v}\n" for k, v in values.items()))
    return config


def command(config: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-c",
        "from mailcarrier.cli import main; main()",
        "-c",
        str(config),
        *args,
    ]


class Daemon:
    def __init__(self, tmp_path: Path, params: Mapping[str, str]) -> None:
        self.config = write_config(tmp_path, params)
        self.maillog = tmp_path / "maillog"
        self.base = ""
        env = dict(os.environ)
        env.pop(CRASH_ENV, None)
        self.proc = subprocess.Popen(
            command(self.config, "run"),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
        )

    def __enter__(self) -> Daemon:
        found: list[re.Match[str]] = []

        def listening() -> bool:
            text = self.maillog.read_text() if self.maillog.exists() else ""
            found[:] = list(LISTENING.finditer(text))
            return bool(found) or self.proc.poll() is not None

        assert wait_for(listening), "the listener did not start"
        assert found, f"run exited: {self.proc.stderr.read() if self.proc.stderr else ''!r}"
        self.base = f"http://{found[0].group(1)}:{found[0].group(2)}"
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def get(
        self, path: str, headers: Mapping[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        request = urllib.request.Request(self.base + path, headers=dict(headers or {}))
        try:
            with _OPENER.open(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, dict(exc.headers), exc.read()

    def json(self, path: str) -> dict[str, object]:
        status, _, body = self.get(path)
        assert status == 200
        value = json.loads(body)
        assert isinstance(value, dict)
        return value


def queued(daemon: Daemon, queue: str) -> int:
    """Messages in `queue`, as /api/queue says."""
    queues = daemon.json("/api/queue")["queues"]
    assert isinstance(queues, dict)
    return int(queues[queue]["messages"])


def settled(daemon: Daemon) -> bool:
    """Nothing is waiting in incoming/ or being delivered from active/."""
    return queued(daemon, "incoming") == queued(daemon, "active") == 0


def samples(exposition: bytes) -> dict[str, float]:
    """``name{labels}`` -> value, for every sample of a Prometheus text exposition."""
    out = {}
    for line in exposition.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name] = float(value)
    return out

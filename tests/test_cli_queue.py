"""The queue commands: sendmail flags and exit codes, queue list/hold/release/delete/requeue/
flush, run --once, and the daemon's SIGHUP reload and SIGTERM graceful stop."""

from __future__ import annotations

import asyncio
import io
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier.cli import run
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler

MESSAGE = b"Subject: cli\n\nbody\n"


@pytest.fixture
def server() -> Iterator[AiosmtpdServer]:
    srv = AiosmtpdServer(RecordingHandler(extra_keywords=("PIPELINING",))).start()
    try:
        yield srv
    finally:
        srv.stop()


def _opts(queue: Path, nexthop: str = "[127.0.0.1]:9") -> list[str]:
    return [
        "-o",
        f"queue_directory={queue}",
        "-o",
        f"relayhost={nexthop}",
        "-o",
        "myorigin=example.org",
    ]


def _run(args: list[str], stdin: bytes = b"") -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    code = run(args, stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    return code, out.getvalue(), err.getvalue()


def _queued(queue: Path) -> list[str]:
    return [
        n
        for q in ("incoming", "active", "deferred", "hold")
        for n in os.listdir(queue / q)
        if not n.startswith(".")
    ]


def test_sendmail_flags(tmp_path: Path) -> None:
    msg = b"To: a@example.net\nBcc: b@example.net\n\nbody\n.\nnot read\n"
    code, out, err = _run(
        [
            *_opts(tmp_path),
            "sendmail",
            "-t",
            "-f",
            "s@example.org",
            "-F",
            "Sam",
            "-N",
            "success,failure",
            "-R",
            "hdrs",
            "-V",
            "ENV1",
            "c@example.net",
        ],
        msg,
    )
    assert (code, out, err) == (0, "", "")
    code, out, _ = _run([*_opts(tmp_path), "queue", "list", "--json"])
    (entry,) = [json.loads(line) for line in out.splitlines()]
    assert entry["sender"] == "s@example.org" and entry["queue_name"] == "incoming"
    assert [r["address"] for r in entry["recipients"]] == [
        "c@example.net",
        "a@example.net",
        "b@example.net",
    ]
    # without -i a lone dot ended the message
    assert entry["message_size"] < len(msg) + 200


@pytest.mark.parametrize("flag", [["-i"], ["-oi"], ["-o", "i"]])
def test_sendmail_ignore_dots(tmp_path: Path, flag: list[str]) -> None:
    code, _, _ = _run(
        [*_opts(tmp_path), "sendmail", *flag, "-f", "s@example.org", "r@example.net"],
        b"\n.\nmore\n",
    )
    assert code == 0
    path = next((tmp_path / "incoming").iterdir())
    assert path.read_bytes().endswith(b"\n.\nmore\n")


@pytest.mark.parametrize(
    ("args", "stdin", "code"),
    [
        (["bad address@x"], MESSAGE, 65),
        (["-f", "a b@c", "r@example.net"], MESSAGE, 65),
        (["r@example.net"], b"Subject: x\nbroken header line\n\nbody\n", 65),
        (["-t"], b"Subject: no recipients\n\nbody\n", 65),
        ([], MESSAGE, 64),
        (["-N", "bogus", "r@example.net"], MESSAGE, 64),
        (["-R", "sideways", "r@example.net"], MESSAGE, 64),
    ],
)
def test_sendmail_rejects_bad_input_and_queues_nothing(
    tmp_path: Path, args: list[str], stdin: bytes, code: int
) -> None:
    got, _out, err = _run([*_opts(tmp_path), "sendmail", *args], stdin)
    assert got == code and err.startswith("mailcarrier: fatal: ") and err.count("\n") == 1
    assert not (tmp_path / "incoming").exists() or _queued(tmp_path) == []


def test_queue_commands(tmp_path: Path) -> None:
    o = _opts(tmp_path)
    for rcpt in ("a@example.net", "b@example.net"):
        assert _run([*o, "sendmail", "-f", "s@example.org", rcpt], MESSAGE)[0] == 0
    ids = sorted(os.listdir(tmp_path / "incoming"))
    code, out, _ = _run([*o, "queue", "list"])
    assert out.startswith("-Queue ID-") and "-- 1 Kbytes in 2 Requests." in out
    code, _, err = _run([*o, "queue", "hold", ids[0]])
    assert code == 0 and "Placed on hold: 1 message" in err
    assert f"{ids[0]}!" in _run([*o, "queue", "list"])[1]
    assert "Released from hold: 1 message" in _run([*o, "queue", "release", ids[0]])[2]
    assert os.listdir(tmp_path / "deferred") == [ids[0]]
    assert "Requeued: 1 message" in _run([*o, "queue", "requeue", ids[0]])[2]
    assert sorted(os.listdir(tmp_path / "incoming")) == ids
    _run([*o, "queue", "hold", "ALL"])
    assert sorted(os.listdir(tmp_path / "hold")) == ids
    assert "Deleted: 1 message" in _run([*o, "queue", "delete", ids[1]])[2]
    assert "no such message" in _run([*o, "queue", "delete", "NOSUCHID"])[2]
    _run([*o, "queue", "release", "ALL"])
    os.utime(tmp_path / "deferred" / ids[0], (2e9, 2e9))
    assert _run([*o, "queue", "flush"])[0] == 0
    assert os.stat(tmp_path / "deferred" / ids[0]).st_mtime == 0
    assert (tmp_path / "flush.request").exists()
    assert "Deleted: 1 message" in _run([*o, "queue", "delete", "ALL"])[2]
    assert _run([*o, "queue", "list"])[1] == "Mail queue is empty\n"
    assert _run([*o, "queue", "frobnicate"])[0] == 64


def test_run_once_delivers_and_defers(tmp_path: Path, server: AiosmtpdServer) -> None:
    o = _opts(tmp_path, server.nexthop)
    assert _run([*o, "sendmail", "-f", "s@example.org", "r@example.net"], MESSAGE)[0] == 0
    code, _, err = _run([*o, "run", "--once"])
    assert code == 0 and "status=sent" in err and "removed" in err
    assert [m.rcpt_tos for m in server.messages] == [["r@example.net"]]
    # an unreachable relay: the message is deferred and listed with its reason
    o2 = _opts(tmp_path / "q2", "[127.0.0.1]:1")
    _run([*o2, "sendmail", "-f", "s@example.org", "r@example.net"], MESSAGE)
    assert _run([*o2, "run", "--once"])[0] == 0
    listing = _run([*o2, "queue", "list"])[1]
    assert "Connection refused" in listing and "r@example.net" in listing


def _wait(predicate: object, timeout: float = 30.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("agents", ["1", "2"])
def test_daemon_delivers_reloads_and_stops_gracefully(
    tmp_path: Path, server: AiosmtpdServer, agents: str
) -> None:
    # With agent processes, the reload retires the old agents and starts new ones.
    o = [*_opts(tmp_path, server.nexthop), "-o", f"delivery_agent_processes={agents}"]
    cmd = [sys.executable, "-c", "from mailcarrier.cli import main; main()", *o, "run"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _run([*o, "sendmail", "-f", "s@example.org", "one@example.net"], MESSAGE)[0] == 0
        assert _wait(lambda: len(server.messages) == 1)
        # A second scheduler on the same queue is refused.
        code, _, err = _run([*o, "run", "--once"])
        assert code == 75 and "already running" in err  # EX_TEMPFAIL: try again later
        proc.send_signal(signal.SIGHUP)
        assert _run([*o, "sendmail", "-f", "s@example.org", "two@example.net"], MESSAGE)[0] == 0
        assert _wait(lambda: len(server.messages) == 2)
        proc.send_signal(signal.SIGTERM)
        _, err_bytes = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0
    text = err_bytes.decode()
    assert "reload -- configuration reloaded" in text and "terminating on signal" in text
    assert _run([*o, "queue", "list"])[1] == "Mail queue is empty\n"


def test_sendmail_entry_point_is_installed() -> None:
    exe = Path(sys.executable).parent / "mailcarrier-sendmail"
    assert exe.exists()


def test_daemon_picks_up_a_changed_main_cf(tmp_path: Path, server: AiosmtpdServer) -> None:
    """Issue 3: a long-running process notices a changed main.cf and reloads it at a safe
    point, without a signal; mail queued after the change goes where the new file says."""
    conf = tmp_path / "conf"
    conf.mkdir()
    maillog = tmp_path / "maillog"
    main_cf = conf / "main.cf"
    main_cf.write_text(
        f"queue_directory = {tmp_path / 'q'}\n"
        f"maillog_file = {maillog}\n"
        "relayhost = [127.0.0.1]:9\n"
        "minimal_backoff_time = 1s\n"
    )
    o = ["-c", str(conf)]
    cmd = [sys.executable, "-c", "from mailcarrier.cli import main; main()", *o, "run"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait(lambda: maillog.exists() and "daemon started" in maillog.read_text())
        text = main_cf.read_text().replace("[127.0.0.1]:9", server.nexthop)
        main_cf.write_text(text + "# edited while running\n")
        assert _wait(lambda: "configuration reloaded" in maillog.read_text())
        assert _run([*o, "sendmail", "-f", "s@example.org", "new@example.net"], MESSAGE)[0] == 0
        assert _wait(lambda: len(server.messages) == 1)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert [m.rcpt_tos for m in server.messages] == [["new@example.net"]]


def test_daemon_maillog_survives_logrotate(tmp_path: Path, server: AiosmtpdServer) -> None:
    """logrotate renames maillog_file under the running daemon: its next lines go to a new
    file at the same path (loghandlers.MaillogHandler), the old ones stay where they were."""
    maillog = tmp_path / "maillog"
    o = [*_opts(tmp_path / "q", server.nexthop), "-o", f"maillog_file={maillog}"]
    cmd = [sys.executable, "-c", "from mailcarrier.cli import main; main()", *o, "run"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        assert _wait(lambda: maillog.exists() and "daemon started" in maillog.read_text())
        maillog.rename(tmp_path / "maillog.1")
        assert _run([*o, "sendmail", "-f", "s@example.org", "r@example.net"], MESSAGE)[0] == 0
        assert _wait(lambda: maillog.exists() and "status=sent" in maillog.read_text())
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert (proc.returncode, err) == (0, b"")
    rotated = (tmp_path / "maillog.1").read_text()
    assert "daemon started" in rotated and "status=sent" not in rotated
    assert maillog.read_text().splitlines()[-1].endswith(": terminating on signal")


class _GatedHandler(RecordingHandler):
    """Holds every DATA until `gate` is set; `entered` is set when one arrives."""

    def __init__(self) -> None:
        super().__init__(extra_keywords=("PIPELINING",))
        self.gate = threading.Event()
        self.entered = threading.Event()

    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        self.entered.set()
        await asyncio.get_running_loop().run_in_executor(None, self.gate.wait, 30)
        return await super().handle_DATA(server, session, envelope)  # type: ignore[arg-type]


@pytest.mark.parametrize("agents", ["1", "2"])
def test_sigterm_lets_the_delivery_in_flight_finish(tmp_path: Path, agents: str) -> None:
    """Issue 8: SIGTERM while a delivery is in flight: it finishes (and is recorded), queued
    work stays queued, the daemon exits 0, nothing is lost or delivered twice."""
    handler = _GatedHandler()
    srv = AiosmtpdServer(handler).start()
    maillog = tmp_path / "maillog"
    o = [
        *_opts(tmp_path / "q", srv.nexthop),
        "-o",
        f"maillog_file={maillog}",
        "-o",
        "smtp_destination_concurrency_limit=1",
        "-o",
        f"delivery_agent_processes={agents}",
    ]
    cmd = [sys.executable, "-c", "from mailcarrier.cli import main; main()", *o, "run"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        for rcpt in ("first@example.net", "second@example.net"):
            assert _run([*o, "sendmail", "-f", "s@example.org", rcpt], MESSAGE)[0] == 0
        assert handler.entered.wait(30)  # one delivery is in the middle of DATA
        proc.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        assert proc.poll() is None  # still waiting for the delivery in flight
        handler.gate.set()
        _, err = proc.communicate(timeout=30)
    finally:
        handler.gate.set()
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        srv.stop()
    assert proc.returncode == 0, err
    delivered = [r for m in srv.messages for r in m.rcpt_tos]
    assert len(delivered) == 1  # the one in flight, exactly once
    log = maillog.read_text()
    assert "status=sent" in log and "terminating on signal" in log
    # The other message is still queued, and the next run delivers it.
    left = [n for n in _queued(tmp_path / "q")]
    assert len(left) == 1
    srv2 = AiosmtpdServer(RecordingHandler(extra_keywords=("PIPELINING",))).start()
    try:
        o2 = [*_opts(tmp_path / "q", srv2.nexthop), "-o", f"maillog_file={maillog}"]
        assert _run([*o2, "run", "--once"])[0] == 0
        again = [r for m in srv2.messages for r in m.rcpt_tos]
    finally:
        srv2.stop()
    assert sorted(delivered + again) == ["first@example.net", "second@example.net"]
    assert _queued(tmp_path / "q") == []

"""observe/http.py: the http_listen listener of a real ``mailcarrier run``: metrics after a
known workload against aiosmtpd, the JSON, the token, refusals and bind errors."""

from __future__ import annotations

import asyncio
import base64
import io
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier import api
from mailcarrier.cli import run
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.log import MemoryLog
from mailcarrier.observe.http import MAX_CONNECTIONS, ListenConfig, StatusServer
from mailcarrier.observe.monitor import Monitor
from mailcarrier.queue.spool import Spool
from tests.observe.daemon import (
    Daemon,
    command,
    queued,
    samples,
    settled,
    wait_for,
    write_config,
)
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler, free_port

PLAIN = ("PIPELINING", "ENHANCEDSTATUSCODES")
MESSAGE = b"Subject: metrics\n\nbody\n"


@pytest.fixture
def server() -> Iterator[AiosmtpdServer]:
    reject = {"bad": "550 5.1.1 no such user", "later": "450 4.2.0 mailbox busy"}
    srv = AiosmtpdServer(RecordingHandler(extra_keywords=PLAIN, reject=reject)).start()
    try:
        yield srv
    finally:
        srv.stop()


def _workload(tmp_path: Path, relay: str) -> None:
    """Two messages from the null sender (no bounce notice): one sent, one bounced and one
    deferred recipient in the first; one sent in the second, over the first's connection."""
    cfg = Settings.defaults().with_overrides(
        {"queue_directory": str(tmp_path / "queue"), "myhostname": "mc.example"}
    )
    rcpts = ["ok1@example.net", "bad@example.net", "later@example.net"]
    api.submit_sync(MESSAGE, sender="", recipients=rcpts, config=cfg)
    api.submit_sync(MESSAGE, sender="", recipients=["ok2@example.net"], config=cfg)


@pytest.mark.parametrize("agents", ["1", "2"])
def test_metrics_after_a_known_workload(
    tmp_path: Path, server: AiosmtpdServer, agents: str
) -> None:
    """Counted once, in the scheduler, whether the agents run in its process or in two
    agent processes; the second message reuses the first one's connection (a window of
    one delivery at a time, and the destination's sessions cached)."""
    _workload(tmp_path, server.nexthop)
    params = {
        "relayhost": server.nexthop,
        "http_listen": "127.0.0.1:0",
        "delivery_agent_processes": agents,
        "initial_destination_concurrency": "1",
        "default_destination_concurrency_limit": "1",
        "smtp_connection_cache_destinations": server.nexthop,
        "smtp_connection_cache_time_limit": "30s",
    }
    with Daemon(tmp_path, params) as daemon:
        assert wait_for(lambda: settled(daemon))
        status, headers, body = daemon.get("/metrics")
    assert status == 200 and headers["Content-Type"].startswith("text/plain; version=")
    got = samples(body)
    smtp = 'transport="smtp"'
    assert got[f'mailcarrier_deliveries_total{{dsn_class="2",status="sent",{smtp}}}'] == 2
    assert got[f'mailcarrier_deliveries_total{{dsn_class="5",status="bounced",{smtp}}}'] == 1
    assert got[f'mailcarrier_deliveries_total{{dsn_class="4",status="deferred",{smtp}}}'] == 1
    assert got[f'mailcarrier_connections_total{{kind="opened",{smtp}}}'] == 1
    assert got[f'mailcarrier_connections_total{{kind="reused",{smtp}}}'] == 1
    # The delays of the final verdicts only (2 sent, 1 bounced), each stage once.
    for stage in ("before_qmgr", "in_qmgr", "conn_setup", "transmission"):
        assert got[f'mailcarrier_delivery_delay_seconds_count{{stage="{stage}",{smtp}}}'] == 3
    # smtp_tls_security_level is empty by default: level none, once per new session.
    assert got[f'mailcarrier_tls_sessions_total{{level="none",result="plaintext",{smtp}}}'] == 1
    assert got['mailcarrier_queue_messages{queue="deferred"}'] == 1
    assert got['mailcarrier_queue_messages{queue="incoming"}'] == 0
    assert got['mailcarrier_queue_oldest_age_seconds{queue="deferred"}'] > 0
    assert got["mailcarrier_active_deliveries"] == 0
    assert got["mailcarrier_expired_messages_total"] == 0
    assert not any(name.startswith("mailcarrier_fleet") for name in got)  # no fleet mode
    assert not any("destination=" in name for name in got)  # no per-domain label by default
    assert sorted(m.rcpt_tos[0] for m in server.messages) == ["ok1@example.net", "ok2@example.net"]


def test_an_expiry_is_counted(tmp_path: Path, server: AiosmtpdServer) -> None:
    """The deferred recipient's message (from the null sender: bounce_queue_lifetime) is
    returned at the end of its first pass: one message, one recipient expired, and its
    bounce is a recorded verdict as the log's status=expired line says."""
    _workload(tmp_path, server.nexthop)
    params = {"relayhost": server.nexthop, "http_listen": "127.0.0.1:0"}
    with Daemon(tmp_path, {**params, "bounce_queue_lifetime": "0s"}) as daemon:
        assert wait_for(lambda: settled(daemon) and queued(daemon, "deferred") == 0)
        _, _, metrics = daemon.get("/metrics")
        status = daemon.json("/api/status")
    got = samples(metrics)
    assert got["mailcarrier_expired_messages_total"] == 1
    assert got["mailcarrier_expired_recipients_total"] == 1
    assert status["expired_messages"] == 1
    assert "status=expired, returned to sender" in daemon.maillog.read_text()
    smtp = 'transport="smtp"'
    assert got[f'mailcarrier_deliveries_total{{dsn_class="4",status="deferred",{smtp}}}'] == 1


def test_the_json_of_a_known_workload(tmp_path: Path, server: AiosmtpdServer) -> None:
    _workload(tmp_path, server.nexthop)
    params = {
        "relayhost": server.nexthop,
        "http_listen": "127.0.0.1:0",
        "metrics_destination_limit": "5",
    }
    with Daemon(tmp_path, params) as daemon:
        assert wait_for(lambda: settled(daemon))
        queue = daemon.json("/api/queue")
        status = daemon.json("/api/status")
        _, _, metrics = daemon.get("/metrics")
    assert queue["deferred_destinations"] == [
        {
            "domain": "example.net",
            "messages": 1,
            "recipients": 1,
            "last_reason": "host 127.0.0.1[127.0.0.1] said: 450 4.2.0 mailbox busy "
            "(in reply to RCPT TO command)",
        }
    ]
    assert status["deliveries"] == {"sent": 2, "deferred": 1, "bounced": 1}
    hour = status["last_hour"]
    assert isinstance(hour, list) and len(hour) == 60
    assert sum(m["sent"] for m in hour) == 2 and sum(m["bounced"] for m in hour) == 1
    assert status["tls"] == [{"level": "none", "result": "plaintext", "sessions": 2}]
    got = samples(metrics)
    key = f'mailcarrier_destination_deliveries_total{{destination="{server.nexthop}",status='
    assert got[key + '"sent"}'] == 2 and got[key + '"bounced"}'] == 1
    assert got[key + '"deferred"}'] == 1


def _token_daemon(tmp_path: Path, server: AiosmtpdServer) -> Daemon:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    params = {
        "relayhost": server.nexthop,
        "http_listen": "127.0.0.1:0",
        "http_listen_token_file": str(token),
    }
    return Daemon(tmp_path, params)


def test_a_token_is_required_when_configured(tmp_path: Path, server: AiosmtpdServer) -> None:
    with _token_daemon(tmp_path, server) as daemon:
        status, headers, body = daemon.get("/metrics")
        assert (status, body) == (401, b"a token is required\n")
        assert headers["WWW-Authenticate"] == 'Basic realm="mailcarrier", charset="UTF-8"'
        assert daemon.get("/", {"Authorization": "Bearer wrong"})[0] == 401
        assert daemon.get("/metrics", {"Authorization": "Bearer s3cret-token"})[0] == 200
        basic = base64.b64encode(b"anyone:s3cret-token").decode()
        assert daemon.get("/", {"Authorization": f"Basic {basic}"})[0] == 200


def _raw(daemon: Daemon, request: bytes) -> bytes:
    host, port = daemon.base.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall(request)
        reply = b""
        while chunk := sock.recv(4096):
            reply += chunk
    return reply


def test_read_only_and_unknown_paths(tmp_path: Path, server: AiosmtpdServer) -> None:
    params = {"relayhost": server.nexthop, "http_listen": "127.0.0.1:0"}
    with Daemon(tmp_path, params) as daemon:
        assert daemon.get("/nothing")[0] == 404
        reply = _raw(daemon, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
        assert reply.startswith(b"HTTP/1.1 405 Method Not Allowed\r\n")
        assert b"\r\nAllow: GET, HEAD\r\n" in reply
        assert _raw(daemon, b"GET / HTTP/1.1\r\nX: " + b"a" * 20000 + b"\r\n\r\n").startswith(
            b"HTTP/1.1 431 Request Header Fields Too Large\r\n"
        )
        head = _raw(daemon, b"HEAD /api/status HTTP/1.1\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and head.endswith(b"\r\n\r\n")
        assert _raw(daemon, b"\x00garbage\r\n\r\n").startswith(b"HTTP/1.1 400 Bad Request\r\n")
        status, headers, _page = daemon.get("/")
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        assert "script-src" not in headers["Content-Security-Policy"]
        assert headers["Content-Security-Policy"].startswith("default-src 'none'")


# --- refusals and bind errors: one line, a sysexits code -------------------------------


def _run(tmp_path: Path, **params: str) -> subprocess.CompletedProcess[str]:
    config = write_config(tmp_path, {"relayhost": "[127.0.0.1]:9", **params})
    return subprocess.run(
        command(config, "run", "--once"), capture_output=True, text=True, timeout=60, check=False
    )


def test_a_non_loopback_address_is_refused_by_default(tmp_path: Path) -> None:
    done = _run(tmp_path, http_listen="192.0.2.1:9154")
    assert done.returncode == 78
    assert done.stderr == (
        'mailcarrier: fatal: parameter http_listen: "192.0.2.1:9154" is not a loopback '
        "address (set http_listen_allow_remote = yes to listen on it)\n"
    )
    settings = Settings.defaults().with_overrides({"http_listen": "[::]:9154"})
    with pytest.raises(ConfigError, match="not a loopback address"):
        ListenConfig.from_settings(settings)
    allowed = settings.with_overrides({"http_listen_allow_remote": "yes"})
    config = ListenConfig.from_settings(allowed)
    assert config is not None and str(config.address) == "[::]:9154"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("localhost", '"localhost" is not ADDRESS:PORT'),
        ("mail.example:9154", '"mail.example" in "mail.example:9154" is not a numerical address'),
        ("127.0.0.1:99999", '"99999" in "127.0.0.1:99999" is not a port number (0 to 65535)'),
        ("[::1:9154", '"[::1:9154" is not [IPV6]:PORT'),
    ],
)
def test_a_bad_listen_address_is_one_line_and_exit_78(
    tmp_path: Path, value: str, reason: str
) -> None:
    done = _run(tmp_path, http_listen=value)
    assert done.returncode == 78
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mailcarrier: fatal: ")
    assert "parameter http_listen" in lines[0] and reason in lines[0]


def test_a_port_in_use_is_one_line_and_exit_75(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = _run(tmp_path, http_listen=f"127.0.0.1:{port}")
    assert done.returncode == 75
    assert done.stderr == (
        f"mailcarrier: fatal: http_listen 127.0.0.1:{port}: cannot listen: Address already in use\n"
    )


def test_an_unreadable_token_file_is_exit_78(tmp_path: Path) -> None:
    done = _run(
        tmp_path,
        http_listen=f"127.0.0.1:{free_port()}",
        http_listen_token_file="/nonexistent/token",
    )
    assert done.returncode == 78
    assert done.stderr == (
        "mailcarrier: fatal: parameter http_listen_token_file: cannot read "
        "/nonexistent/token: No such file or directory\n"
    )


async def test_connections_beyond_the_limit_are_closed_unanswered(tmp_path: Path) -> None:
    monitor = Monitor(Spool(tmp_path / "queue").ensure())
    server = StatusServer(monitor, log=MemoryLog())
    listener = await asyncio.start_server(server.handle, "127.0.0.1", 0)
    port = listener.sockets[0].getsockname()[1]

    async def ask() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /api/status HTTP/1.1\r\n\r\n")
        try:
            reply = await asyncio.wait_for(reader.read(), 30)
        except ConnectionResetError:  # closed with the request unread
            reply = b""
        writer.close()
        return reply

    try:
        server.open = MAX_CONNECTIONS  # as if that many were being answered
        assert await ask() == b""
        server.open = MAX_CONNECTIONS - 1
        assert (await ask()).startswith(b"HTTP/1.1 200 OK\r\n")
        assert server.open == MAX_CONNECTIONS - 1
    finally:
        listener.close()
        await listener.wait_closed()


def test_without_prometheus_client_http_listen_is_one_line_and_exit_78(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mailcarrier.observe", None)  # as if not installable
    config = write_config(tmp_path, {"relayhost": "[127.0.0.1]:9", "http_listen": "127.0.0.1:0"})
    err = io.StringIO()
    code = run(["-c", str(config), "run", "--once"], stdout=io.StringIO(), stderr=err)
    assert code == 78
    assert err.getvalue().startswith(
        "mailcarrier: fatal: parameter http_listen: the metrics listener needs "
        "prometheus-client (pip install 'mailcarrier[metrics]'): "
    )
    assert err.getvalue().count("\n") == 1


def test_a_reload_keeps_the_listener_and_says_a_restart_is_needed(
    tmp_path: Path, server: AiosmtpdServer
) -> None:
    """SIGHUP with another http_listen: one warning line naming the change; the listener
    stays where it was and keeps answering (a restart moves it)."""
    params = {"relayhost": server.nexthop, "http_listen": "127.0.0.1:0"}
    with Daemon(tmp_path, params) as daemon:
        moved = free_port()
        write_config(tmp_path, {**params, "http_listen": f"127.0.0.1:{moved}"})
        daemon.proc.send_signal(signal.SIGHUP)
        expected = (
            'warning: reload: http_listen changed from "127.0.0.1:0" to '
            f'"127.0.0.1:{moved}": the listener keeps its old setting until mailcarrier run '
            "is restarted"
        )
        assert wait_for(lambda: expected in daemon.maillog.read_text())
        assert wait_for(lambda: "reload -- configuration reloaded" in daemon.maillog.read_text())
        status, _, _ = daemon.get("/api/status")
    assert status == 200
    log = daemon.maillog.read_text()
    assert log.count("warning: reload: ") == 1  # http_listen only: the others did not change
    assert "postfix/qmgr[" in log.split(expected)[0].rsplit("\n", 1)[-1]

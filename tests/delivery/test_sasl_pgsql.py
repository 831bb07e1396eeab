"""End to end: SASL credentials from PostgreSQL (smtp_sasl_password_maps = pgsql:/path.cf).

A queued message is delivered with AUTH to aiosmtpd, the password looked up in the session's
private PostgreSQL server; with the server down, the delivery is deferred (not bounced),
smtp(8)'s "smtp_sasl_password_maps lookup error" is logged, and the queue keeps the message.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier.cli import run
from tests.support import sqldata
from tests.support.peers.aiosmtpd_auth import AuthHandler, start_server
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.peers.pgsql import PgServer
from tests.tables.sqlfaults import dead_port

MESSAGE = b"From: a@example.org\nSubject: sasl from pgsql\n\nbody\n"


@pytest.fixture
def auth_handler() -> AuthHandler:
    # No DSN: queued mail carries ORCPT, which aiosmtpd's RCPT does not take.
    return AuthHandler(extra_keywords=("PIPELINING",))


@pytest.fixture
def auth_server(auth_handler: AuthHandler) -> Iterator[AiosmtpdServer]:
    server = start_server(auth_handler)
    try:
        yield server
    finally:
        server.stop()


def _cli(
    queue: Path, cf: Path, server: AiosmtpdServer, *args: str, stdin: bytes = b""
) -> tuple[int, str]:
    options = {
        "queue_directory": str(queue),
        "relayhost": server.nexthop,
        "myorigin": "example.org",
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": f"pgsql:{cf}",
        "smtp_sasl_security_options": "noanonymous",
    }
    argv = [x for name, value in options.items() for x in ("-o", f"{name}={value}")]
    out, err = io.StringIO(), io.StringIO()
    code = run([*argv, *args], stdin=io.BytesIO(stdin), stdout=out, stderr=err)
    return code, err.getvalue()


def _queued(queue: Path) -> list[str]:
    return [
        name
        for sub in ("incoming", "active", "deferred", "hold")
        if (queue / sub).is_dir()
        for name in os.listdir(queue / sub)
        if not name.startswith(".")
    ]


def _config(tmp_path: Path, **params: str) -> Path:
    cf = tmp_path / "sasl.cf"
    cf.write_text(sqldata.cf_text(query="SELECT creds FROM passwd WHERE host='%s'", **params))
    return cf


def test_delivery_with_credentials_from_postgresql(
    tmp_path: Path, pg_server: PgServer, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    queue = tmp_path / "queue"
    cf = _config(tmp_path, **sqldata.pgsql_params(pg_server))
    code, _ = _cli(
        queue, cf, auth_server, "sendmail", "-f", "a@example.org", "b@example.net", stdin=MESSAGE
    )
    assert code == 0
    code, log = _cli(queue, cf, auth_server, "run", "--once")
    assert code == 0, log
    assert auth_handler.attempts and auth_server.messages, log
    assert "status=sent" in log
    assert _queued(queue) == []
    assert auth_server.messages[0].mail_from == "a@example.org"
    # The server accepted only alice's password, and the client tried once: it was right.
    assert auth_handler.attempts == ["SCRAM-SHA-256"]
    assert "warning" not in log


def test_postgresql_down_defers_and_keeps_the_message(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    queue = tmp_path / "queue"
    port = dead_port()
    cf = _config(tmp_path, hosts=f"inet:127.0.0.1:{port}", dbname="mail", user="postfix")
    code, _ = _cli(
        queue, cf, auth_server, "sendmail", "-f", "a@example.org", "b@example.net", stdin=MESSAGE
    )
    assert code == 0
    code, log = _cli(queue, cf, auth_server, "run", "--once")
    assert code == 0, log
    lines = log.splitlines()
    assert any(f"connect to pgsql server inet:127.0.0.1:{port}: " in line for line in lines)
    assert any(line.endswith(": smtp_sasl_password_maps lookup error") for line in lines)
    deferred = [line for line in lines if "status=deferred" in line]
    assert len(deferred) == 1, log
    assert "dsn=4.3.0" in deferred[0]
    assert "(local data error while talking to 127.0.0.1[127.0.0.1]" in deferred[0]
    assert "status=bounced" not in log
    assert auth_server.messages == [] and auth_handler.attempts == []
    assert len(_queued(queue)) == 1  # the queue keeps it for the next attempt

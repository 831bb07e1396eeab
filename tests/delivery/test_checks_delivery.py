"""smtp_header_checks, smtp_mime_header_checks, smtp_nested_header_checks and smtp_body_checks
end to end against aiosmtpd: each action of the client's restricted set changes what the
server receives (or only the log) as Postfix's does, and a table that cannot be read defers
the message with 4.3.0 instead of sending it unchecked or bouncing it.
"""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mailcarrier import DeliveryStatus
from mailcarrier.delivery.request import DeliveryRequest, Recipient
from mailcarrier.log import MemoryLog
from mailcarrier.status import DeliveryResult
from tests.support.deliver import deliver_request
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.settings import client_settings, make_settings

SENT, DEFERRED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED

MESSAGE = (
    b"From: a@example.org\n"
    b"Subject: hello\n"
    b"X-Tag: outbound\n"
    b"MIME-Version: 1.0\n"
    b'Content-Type: multipart/mixed; boundary="b"\n'
    b"\n"
    b"--b\n"
    b"Content-Type: text/plain\n"
    b"X-Part: inner\n"
    b"\n"
    b"secret line\n"
    b"plain line\n"
    b"--b\n"
    b"Content-Type: message/rfc822\n"
    b"\n"
    b"Subject: nested\n"
    b"\n"
    b"inner body\n"
    b"--b--\n"
)


async def _deliver(
    server: AiosmtpdServer, tmp_path: Path, tables: dict[str, str], log: MemoryLog
) -> DeliveryResult:
    params: dict[str, str] = {}
    for param, rules in tables.items():
        path = tmp_path / param
        path.write_text(rules)
        params[param] = f"regexp:{path}"
    request = DeliveryRequest(
        queue_id="4CHECKS01",
        nexthop=server.nexthop,
        sender="a@example.org",
        recipients=(Recipient("b@example.net"),),
        content=io.BytesIO(MESSAGE),
    )
    result, _ = await deliver_request(request, config=client_settings(**params), log=log)
    return result


def _received(server: AiosmtpdServer) -> bytes:
    return server.messages[0].content.replace(b"\r\n", b"\n")


@pytest.mark.parametrize(
    ("action", "header_out", "logged"),
    [
        (
            "REPLACE X-Tag: replaced",
            b"X-Tag: replaced\n",
            "replace: header X-Tag: outbound: X-Tag: replaced",
        ),
        (
            "PREPEND X-New: 1",
            b"X-New: 1\nX-Tag: outbound\n",
            "prepend: header X-Tag: outbound: X-New: 1",
        ),
        ("IGNORE", b"", None),
        ("WARN tagged", b"X-Tag: outbound\n", "warning: header X-Tag: outbound: tagged"),
        ("INFO tagged", b"X-Tag: outbound\n", "info: header X-Tag: outbound: tagged"),
        ("DUNNO", b"X-Tag: outbound\n", None),
        ("OK", b"X-Tag: outbound\n", None),
    ],
)
async def test_each_header_action(
    smtp_server: AiosmtpdServer,
    tmp_path: Path,
    action: str,
    header_out: bytes,
    logged: str | None,
) -> None:
    log = MemoryLog()
    result = await _deliver(
        smtp_server, tmp_path, {"smtp_header_checks": f"/^X-Tag:/ {action}\n"}, log
    )
    assert result.recipients[0].status is SENT
    received = _received(smtp_server)
    assert received == MESSAGE.replace(b"X-Tag: outbound\n", header_out)
    actions = [line for line in log.lines if ": header " in line]
    assert actions == ([f"4CHECKS01: {logged}"] if logged else [])


@pytest.mark.parametrize(
    ("action", "body_out", "logged"),
    [
        ("REPLACE [removed]", b"[removed]\n", "replace: body secret line: [removed]"),
        ("PREPEND before", b"before\nsecret line\n", "prepend: body secret line: before"),
        ("IGNORE", b"", None),
        ("WARN found", b"secret line\n", "warning: body secret line: found"),
        ("INFO found", b"secret line\n", "info: body secret line: found"),
        ("DUNNO", b"secret line\n", None),
        ("OK", b"secret line\n", None),
    ],
)
async def test_each_body_action(
    smtp_server: AiosmtpdServer,
    tmp_path: Path,
    action: str,
    body_out: bytes,
    logged: str | None,
) -> None:
    log = MemoryLog()
    result = await _deliver(
        smtp_server, tmp_path, {"smtp_body_checks": f"/^secret/ {action}\n"}, log
    )
    assert result.recipients[0].status is SENT
    assert _received(smtp_server) == MESSAGE.replace(b"secret line\n", body_out)
    actions = [line for line in log.lines if ": body " in line]
    assert actions == ([f"4CHECKS01: {logged}"] if logged else [])


async def test_mime_and_nested_header_tables_on_the_wire(
    smtp_server: AiosmtpdServer, tmp_path: Path
) -> None:
    log = MemoryLog()
    tables = {
        "smtp_header_checks": "/^Subject:/ REPLACE Subject: primary\n",
        "smtp_mime_header_checks": "/^X-Part:/ IGNORE\n",
        "smtp_nested_header_checks": "/^Subject:/ REPLACE Subject: nested-replaced\n",
    }
    result = await _deliver(smtp_server, tmp_path, tables, log)
    assert result.recipients[0].status is SENT
    received = _received(smtp_server)
    assert b"Subject: primary\n" in received
    assert b"X-Part: inner\n" not in received
    assert b"Subject: nested-replaced\n\ninner body\n" in received


async def test_unsupported_action_is_warned_and_the_message_sent(
    smtp_server: AiosmtpdServer, tmp_path: Path
) -> None:
    log = MemoryLog()
    result = await _deliver(
        smtp_server, tmp_path, {"smtp_header_checks": "/^X-Tag:/ DISCARD\n"}, log
    )
    assert result.recipients[0].status is SENT
    assert _received(smtp_server) == MESSAGE
    assert "warning: unsupported command in smtp_header_checks map: DISCARD" in log.lines


@pytest.mark.parametrize("param", ["smtp_header_checks", "smtp_body_checks"])
async def test_unreadable_check_table_defers_4_3_0(
    smtp_server: AiosmtpdServer, tmp_path: Path, param: str
) -> None:
    log = MemoryLog()
    request = DeliveryRequest(
        queue_id="4CHECKS02",
        nexthop=smtp_server.nexthop,
        sender="a@example.org",
        recipients=(Recipient("b@example.net"),),
        content=io.BytesIO(MESSAGE),
    )
    config = make_settings({param: f"hash:{tmp_path / 'missing'}"})
    result, _ = await deliver_request(request, config=config, log=log)
    (status,) = result.recipients
    assert (status.status, status.dsn) == (DEFERRED, "4.3.0")
    assert status.diagnostic.startswith("local data error")
    assert smtp_server.messages == []  # abandoned before the final dot
    where = "header" if "header" in param else "body"
    assert f"warning: 4CHECKS02: smtp {where} checks lookup error" in log.lines

"""REQUIRETLS (RFC 8689) through the queue, against aiosmtpd with STARTTLS on loopback: the
flag is kept with the queued message (sendmail --requiretls, submit(requiretls=True)) and
honoured by the queue runner; a bounce notice about such a message leaves its body out and
is sent without REQUIRETLS (RFC 8689 section 5, requiretls_redact_dsn; the notice itself, with
requiretls_redact_dsn off too, in tests/queue/test_notices.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier import api
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.log import MemoryLog
from mailcarrier.queue.qfile import parse_envelope
from mailcarrier.queue.scheduler import QueueManager
from mailcarrier.queue.spool import open_spool
from tests.queue.helpers import run_cli
from tests.support.peers.aiosmtpd_requiretls import RequireTlsAiosmtpdServer, RequireTlsHandler
from tests.support.settings import queue_settings
from tests.support.tls import Pki

MESSAGE = b"Subject: secret\nTLS-Required: No\n\nTOP-SECRET-BODY\n"


@pytest.fixture
def server(pki: Pki) -> Iterator[RequireTlsAiosmtpdServer]:
    context = pki.server_context(pki.leaf("127.0.0.1"))
    srv = RequireTlsAiosmtpdServer(RequireTlsHandler(), context).start()
    try:
        yield srv
    finally:
        srv.stop()


def _config(tmp_path: Path, server: RequireTlsAiosmtpdServer, **params: str) -> Settings:
    return queue_settings(
        tmp_path, relayhost=server.nexthop, smtp_tls_security_level="encrypt", **params
    )


async def _run_once(cfg: Settings) -> MemoryLog:
    log = MemoryLog()
    spool = open_spool(cfg, log=log)
    await QueueManager(cfg, spool, DeliveryAgent(cfg, log=log), log=log).run_once()
    return log


def _queued_envelope(cfg: Settings, qid: str) -> bytes:
    spool = open_spool(cfg, log=MemoryLog())
    where = spool.find(qid)
    assert where is not None
    return spool.path(where, qid).read_bytes()


def _all_ids(cfg: Settings) -> list[str]:
    spool = open_spool(cfg, log=MemoryLog())
    return [qid for queue in ("incoming", "active", "deferred", "hold") for qid in spool.ids(queue)]


async def test_flag_survives_the_queue_and_reaches_mail_from(
    tmp_path: Path, server: RequireTlsAiosmtpdServer
) -> None:
    """Default smtp_requiretls_policy: opportunistic for an address literal; the server
    offers REQUIRETLS after STARTTLS, so MAIL FROM carries it."""
    cfg = _config(tmp_path, server)
    qid = await api.submit(
        MESSAGE, sender="s@example.org", recipients=["a@example.net"], config=cfg, requiretls=True
    )
    env = parse_envelope(_queued_envelope(cfg, qid))
    assert env.requiretls and env.tls_required_no  # both of RFC 8689's flags are kept
    log = await _run_once(cfg)
    assert server.wire.mail == ["FROM:<s@example.org> REQUIRETLS"]
    assert any(
        f"{qid}: to=<a@example.net>" in ln and "tls=encrypt/requiretls" in ln for ln in log.lines
    )


async def test_bounce_notice_leaves_the_body_out(
    tmp_path: Path, server: RequireTlsAiosmtpdServer
) -> None:
    """enforce at a level without certificate matching: 5.7.30; the notice (delivered
    through the same relay) returns only the header, and goes without REQUIRETLS."""
    cfg = _config(tmp_path, server, smtp_requiretls_policy="enforce")
    qid = await api.submit(
        MESSAGE, sender="s@example.org", recipients=["a@example.net"], config=cfg, requiretls=True
    )
    log = await _run_once(cfg)
    assert any(f"{qid}: to=<a@example.net>" in ln and "dsn=5.7.30" in ln for ln in log.lines)
    await _run_once(cfg)  # the notice
    (notice,) = server.messages
    assert notice.rcpt_tos == ["s@example.org"]
    assert server.wire.mail == ["FROM:<>"]  # no REQUIRETLS on the redacted notice
    text = notice.content.decode()
    assert "Content-Type: text/rfc822-headers" in text
    assert "Subject: secret" in text
    assert "TOP-SECRET-BODY" not in text
    assert "Status: 5.7.30" in text
    # The message's "TLS-Required: No" is carried over to its notice (Postfix).
    assert "\r\nTLS-Required: No\r\n" in text.split("\r\n\r\n", 1)[0] + "\r\n"


def test_sendmail_requiretls_flag_is_queued(tmp_path: Path) -> None:
    cfg = queue_settings(tmp_path)
    args = ["-o", f"queue_directory={tmp_path}", "sendmail", "--requiretls"]
    done = run_cli([*args, "-f", "s@example.org", "a@example.net"], stdin=b"Subject: x\n\nhi\n")
    assert done.returncode == 0, done.stderr
    (qid,) = _all_ids(cfg)
    data = _queued_envelope(cfg, qid)
    assert b"\nsendopts 32\n" in data

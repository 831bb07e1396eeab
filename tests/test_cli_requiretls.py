"""`mailcarrier deliver --requiretls` (RFC 8689) against aiosmtpd with STARTTLS that announces
REQUIRETLS: MAIL FROM carries it, the tls= field says so; with enforcement and no certificate
matching, the message bounces with 5.7.30 (exit 69). The queued form (`sendmail
--requiretls`) is tested in tests/queue/test_requiretls_queue.py."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator

import pytest

from mailcarrier.cli import run
from tests.support.peers.aiosmtpd_requiretls import RequireTlsAiosmtpdServer, RequireTlsHandler
from tests.support.tls import Pki


@pytest.fixture
def server(pki: Pki) -> Iterator[RequireTlsAiosmtpdServer]:
    context = pki.server_context(pki.leaf("127.0.0.1"))
    srv = RequireTlsAiosmtpdServer(RequireTlsHandler(), context).start()
    try:
        yield srv
    finally:
        srv.stop()


def _deliver(server: RequireTlsAiosmtpdServer, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["-o", "smtp_tls_security_level=encrypt", *extra, "deliver", "--nexthop"]
    argv += [server.nexthop, "-f", "s@example.org", "-r", "u@example.net", "--json"]
    code = run(
        [*argv, "--requiretls"], stdin=io.BytesIO(b"Subject: x\n\nhi\n"), stdout=out, stderr=err
    )
    return code, out.getvalue(), err.getvalue()


def test_deliver_requiretls_flag(server: RequireTlsAiosmtpdServer) -> None:
    code, _, err = _deliver(server)
    assert code == 0, err
    assert server.wire.mail == ["FROM:<s@example.org> REQUIRETLS"]
    assert ", tls=encrypt/requiretls:nocertmatch, dsn=2.0.0, status=sent" in err


def test_deliver_requiretls_enforced_bounces_69(server: RequireTlsAiosmtpdServer) -> None:
    code, out, err = _deliver(server, "-o", "smtp_requiretls_policy=enforce")
    assert code == 69, err
    (entry,) = json.loads(out)["recipients"]
    assert (entry["status"], entry["dsn"]) == ("bounced", "5.7.30")
    assert entry["diagnostic"].startswith(
        "Sender requested REQUIRETLS, but my configured TLS security level 'encrypt' disables "
        "certificate matching."
    )
    assert server.wire.mail == []

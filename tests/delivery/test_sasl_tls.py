"""SASL over STARTTLS: which security options apply depends on whether the server
certificate was verified (smtp_sasl_tls_verified_security_options) or not
(smtp_sasl_tls_security_options)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from mailcarrier import DeliveryStatus, deliver, make_request
from mailcarrier.log import MemoryLog
from tests.support.peers.aiosmtpd_server import RecordingHandler, free_port
from tests.support.settings import make_settings
from tests.support.tls import Pki


class _Auth(RecordingHandler):
    def __init__(self) -> None:
        super().__init__()
        self.mechanisms: list[str] = []

    def __call__(self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        self.mechanisms.append(mechanism)
        return AuthResult(success=data.password == b"pw", handled=False)


@pytest.mark.parametrize(
    ("level", "expected"),
    [("verify", ["PLAIN"]), ("encrypt", [])],
    ids=["verified-allows-plain", "unverified-refuses-plain"],
)
async def test_verified_options_apply_only_to_verified_servers(
    tmp_path: Path, level: str, expected: list[str]
) -> None:
    pki = Pki(trustme.CA(), tmp_path)
    handler = _Auth()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=pki.server_context(pki.leaf("mx.sasl.test")),
        require_starttls=True,
        authenticator=handler,
        auth_require_tls=True,
        auth_exclude_mechanism=["LOGIN"],  # only PLAIN is offered
    )
    controller.start()
    passwd = tmp_path / "passwd"
    nexthop = f"[127.0.0.1]:{port}"
    passwd.write_text(f"{nexthop} user:pw\n")
    settings = make_settings(
        smtp_tls_security_level=level,
        smtp_tls_CAfile=pki.cafile(),
        smtp_tls_verify_cert_match="mx.sasl.test",
        smtp_sasl_auth_enable="yes",
        smtp_sasl_password_maps=f"texthash:{passwd}",
        smtp_sasl_tls_security_options="noplaintext, noanonymous",
        smtp_sasl_tls_verified_security_options="noanonymous",
    )
    log = MemoryLog()
    try:
        request = make_request(
            b"x\n", sender="s@example.org", recipients=["r@example.net"], nexthop=nexthop
        )
        (status,) = (await deliver(request, config=settings, log=log)).recipients
    finally:
        controller.stop()
    assert handler.mechanisms == expected
    if expected:
        assert status.status is DeliveryStatus.SENT, status
    else:
        assert status.status is DeliveryStatus.DEFERRED
        assert "no mechanism available" in status.diagnostic or "mechanism" in status.diagnostic

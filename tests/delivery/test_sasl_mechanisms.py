"""SASL end to end, the mechanisms: each one against aiosmtpd's AUTH (PLAIN, LOGIN built in;
CRAM-MD5, XOAUTH2 and SCRAM as handler methods, SCRAM computed independently of scramp), the
choice of the strongest offered, when no AUTH is attempted, and over TLS SCRAM-PLUS channel
binding and EXTERNAL with a client certificate. Failures are in test_sasl_failures.py, security
options in test_sasl_security.py, shared pieces in helpers.py."""

from __future__ import annotations

import base64
import ssl
from pathlib import Path

import pytest
from aiosmtpd.smtp import SMTP, AuthResult, auth_mechanism

from tests.delivery.helpers import SENT, authenticate_over_tls, deliver, sasl_config
from tests.support.peers.aiosmtpd_auth import USER, AuthHandler
from tests.support.peers.aiosmtpd_server import AiosmtpdServer

# --- mechanisms against aiosmtpd ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("mechanisms", "extra", "expected"),
    [
        ("PLAIN", {"smtp_sasl_security_options": "noanonymous"}, "PLAIN"),
        ("LOGIN", {"smtp_sasl_security_options": "noanonymous"}, "LOGIN"),
        ("CRAM-MD5", {}, "CRAM-MD5"),  # default options: noplaintext, noanonymous
        ("SCRAM-SHA-256", {}, "SCRAM-SHA-256"),
        ("XOAUTH2", {"smtp_sasl_security_options": ""}, "XOAUTH2"),
    ],
)
async def test_each_mechanism(
    tmp_path: Path,
    auth_handler: AuthHandler,
    auth_server: AiosmtpdServer,
    mechanisms: str,
    extra: dict[str, str],
    expected: str,
) -> None:
    config = sasl_config(
        tmp_path, auth_server.nexthop, smtp_sasl_mechanism_filter=mechanisms, **extra
    )
    result = await deliver(auth_server.nexthop, config)
    assert result.recipients[0].status is SENT, result.recipients[0].diagnostic
    assert auth_handler.attempts == [expected]
    assert len(auth_server.messages) == 1


async def test_strongest_offered_is_chosen(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    result = await deliver(auth_server.nexthop, sasl_config(tmp_path, auth_server.nexthop))
    assert result.recipients[0].status is SENT
    # aiosmtpd offers CRAM-MD5 LOGIN PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS XOAUTH2; no TLS,
    # so no -PLUS; XOAUTH2 is opt-in.
    assert auth_handler.attempts == ["SCRAM-SHA-256"]


async def test_no_password_entry_means_no_auth(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = sasl_config(tmp_path, "[other.example]")
    result = await deliver(auth_server.nexthop, config)
    assert result.recipients[0].status is SENT
    assert auth_handler.attempts == []


async def test_auth_disabled_means_no_auth(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = sasl_config(tmp_path, auth_server.nexthop, smtp_sasl_auth_enable="no")
    assert (await deliver(auth_server.nexthop, config)).recipients[0].status is SENT
    assert auth_handler.attempts == []


async def test_host_name_key(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = sasl_config(tmp_path, "127.0.0.1")  # the server's host name, not the destination
    assert (await deliver(auth_server.nexthop, config)).recipients[0].status is SENT
    assert auth_handler.attempts == ["SCRAM-SHA-256"]


# --- over TLS: SCRAM-PLUS channel binding, EXTERNAL -----------------------------------------------


class ExternalHandler(AuthHandler):
    @auth_mechanism("EXTERNAL")
    async def auth_external(self, server: SMTP, args: list[str]) -> AuthResult:
        assert server.transport is not None  # set while a session runs
        ssl_object = server.transport.get_extra_info("ssl_object")
        self.attempts.append("EXTERNAL")
        has_cert = ssl_object is not None and bool(ssl_object.getpeercert())
        authzid = base64.b64decode(args[1]) if len(args) > 1 and args[1] != "=" else b""
        return AuthResult(success=has_cert and authzid == USER.encode(), handled=False)


@pytest.mark.parametrize(
    ("version", "binding"),
    [(ssl.TLSVersion.TLSv1_2, "tls-unique"), (ssl.TLSVersion.TLSv1_3, "tls-server-end-point")],
)
async def test_scram_plus_channel_binding(
    tmp_path: Path, version: ssl.TLSVersion, binding: str
) -> None:
    verdict, handler = await authenticate_over_tls(tmp_path, AuthHandler(), max_version=version)
    assert verdict is None, verdict
    assert handler.attempts == ["SCRAM-SHA-256-PLUS"]
    assert handler.binding is not None and handler.binding[0] == binding


async def test_scram_plus_binding_mismatch_fails(tmp_path: Path) -> None:
    handler = AuthHandler()

    async def wrong(server: SMTP, args: list[str]) -> AuthResult:
        handler.binding = ("tls-unique", b"not-this-channel")
        return await AuthHandler._scram(handler, server, args, "SCRAM-SHA-256-PLUS", True)

    handler.auth_scram_plus = wrong  # type: ignore[method-assign]
    handler.auth_scram_plus.__auth_mechanism_name__ = "SCRAM-SHA-256-PLUS"  # type: ignore[attr-defined]
    verdict, _ = await authenticate_over_tls(tmp_path, handler, max_version=ssl.TLSVersion.TLSv1_2)
    assert verdict is not None and "said: 535" in verdict.diagnostic
    assert handler.scram_errors == ["channel binding mismatch"]


async def test_external_with_client_certificate(tmp_path: Path) -> None:
    verdict, handler = await authenticate_over_tls(
        tmp_path, ExternalHandler(), max_version=ssl.TLSVersion.TLSv1_3, client_cert=True,
        smtp_sasl_mechanism_filter="external",
    )  # fmt: skip
    assert verdict is None, verdict
    assert handler.attempts == ["EXTERNAL"]

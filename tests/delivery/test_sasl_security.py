"""SASL end to end, the security options: no mechanism left without TLS (noplaintext), a filter
that leaves nothing, configuration errors, a stripped STARTTLS (scripted server recording every
byte: no credential may appear), and smtp_sasl_tls_security_options over TLS. Shared pieces are
in helpers.py; the verified-certificate options are in test_sasl_tls.py."""

from __future__ import annotations

import asyncio
import base64
import ssl
from pathlib import Path

import pytest

from mailcarrier.errors import ConfigError
from mailcarrier.log import MemoryLog
from tests.delivery.helpers import (
    DEFERRED,
    Scripted,
    authenticate_over_tls,
    deliver,
    greet_without_starttls,
    sasl_config,
    serve_rest,
)
from tests.support.peers.aiosmtpd_auth import PASSWORD, USER, AuthHandler, start_server
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.settings import make_settings

# --- security options -----------------------------------------------------------------------------


async def test_plaintext_refused_without_tls(tmp_path: Path) -> None:
    handler = AuthHandler()
    server = start_server(
        handler,
        auth_exclude_mechanism=["CRAM-MD5", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "XOAUTH2"],
    )
    try:
        config = sasl_config(tmp_path, server.nexthop)  # default: noplaintext, noanonymous
        status = (await deliver(server.nexthop, config)).recipients[0]
    finally:
        server.stop()
    assert status.status is DEFERRED and status.dsn == "4.7.0"
    assert status.diagnostic == (
        "SASL authentication failed; cannot authenticate to server 127.0.0.1[127.0.0.1]: "
        "no mechanism available"
    )
    assert handler.attempts == [] and server.messages == []


async def test_filter_leaves_nothing(tmp_path: Path, auth_server: AiosmtpdServer) -> None:
    log = MemoryLog()
    config = sasl_config(tmp_path, auth_server.nexthop, smtp_sasl_mechanism_filter="gssapi")
    status = (await deliver(auth_server.nexthop, config, log)).recipients[0]
    assert status.status is DEFERRED
    assert status.diagnostic == (
        "SASL authentication failed: server 127.0.0.1[127.0.0.1] offered no compatible "
        "authentication mechanisms for this type of connection security"
    )
    assert any("offered no supported AUTH mechanisms: 'CRAM-MD5 LOGIN" in ln for ln in log.lines)


async def test_unsupported_sasl_type(tmp_path: Path, auth_server: AiosmtpdServer) -> None:
    config = sasl_config(tmp_path, auth_server.nexthop, smtp_sasl_type="dovecot")
    with pytest.raises(
        ConfigError, match='smtp_sasl_type: unsupported SASL client implementation "dovecot"'
    ):
        await deliver(auth_server.nexthop, config)


async def test_missing_password_maps(auth_server: AiosmtpdServer) -> None:
    config = make_settings(smtp_sasl_auth_enable="yes")
    with pytest.raises(ConfigError, match="smtp_sasl_password_maps"):
        await deliver(auth_server.nexthop, config)


# --- scripted server: stripped STARTTLS -----------------------------------------------------------


def _secret_forms() -> list[bytes]:
    raw = [PASSWORD.encode(), f"\0{USER}\0{PASSWORD}".encode(), USER.encode()]
    return raw + [base64.b64encode(r) for r in raw]


@pytest.mark.parametrize(
    "overrides",
    [
        {"smtp_tls_security_level": "may"},  # default security options: noplaintext
        # TLS required by policy: never plaintext, even with options that would allow it.
        {"smtp_tls_security_level": "encrypt", "smtp_sasl_security_options": "noanonymous"},
    ],
)
async def test_stripped_starttls_sends_no_credentials(
    tmp_path: Path, overrides: dict[str, str]
) -> None:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[bytes]
    ) -> None:
        await greet_without_starttls(reader, writer, received, "PLAIN LOGIN")
        await serve_rest(reader, writer, received)

    async with Scripted(script) as server:
        config = sasl_config(tmp_path, server.nexthop, **overrides)
        status = (await deliver(server.nexthop, config)).recipients[0]
    assert status.status is DEFERRED
    assert b"AUTH" not in server.wire.upper()
    for secret in _secret_forms():
        assert secret not in server.wire


# --- over TLS: smtp_sasl_tls_security_options -----------------------------------------------------


async def test_tls_options_allow_plain_over_tls(tmp_path: Path) -> None:
    verdict, handler = await authenticate_over_tls(
        tmp_path, AuthHandler(), max_version=ssl.TLSVersion.TLSv1_3,
        smtp_sasl_mechanism_filter="plain", smtp_sasl_tls_security_options="noanonymous",
    )  # fmt: skip
    assert verdict is None and handler.attempts == ["PLAIN"]


async def test_tls_default_options_still_refuse_plain(tmp_path: Path) -> None:
    # smtp_sasl_tls_security_options defaults to $smtp_sasl_security_options (noplaintext).
    verdict, handler = await authenticate_over_tls(
        tmp_path, AuthHandler(), max_version=ssl.TLSVersion.TLSv1_3,
        smtp_sasl_mechanism_filter="plain",
    )  # fmt: skip
    assert verdict is not None and verdict.diagnostic.endswith("no mechanism available")
    assert handler.attempts == []

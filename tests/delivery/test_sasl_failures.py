"""SASL end to end, the failures: a 535 and what soft bounce makes of it, the 535 failure cache
(smtp_sasl_auth_cache_name), moving on to the next server, and hostile 334 challenges from a
scripted server (garbage base64, endless or oversized challenges, a protocol loop). Shared pieces
are in helpers.py."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mailcarrier.delivery import auth_step
from mailcarrier.log import MemoryLog
from mailcarrier.transport.connection import Peer
from mailcarrier.transport.connector import open_tcp
from mailcarrier.transport.session import Session, SessionOptions
from tests.delivery.helpers import (
    BOUNCED,
    DEFERRED,
    SENT,
    Scripted,
    deliver,
    greet_without_starttls,
    password_map,
    read_line,
    sasl_config,
    serve_rest,
)
from tests.support.peers.aiosmtpd_auth import (
    CRAM_CHALLENGE,
    PASSWORD,
    USER,
    AuthHandler,
    start_server,
)
from tests.support.peers.aiosmtpd_server import AiosmtpdServer

# --- failures: 535, soft bounce, the cache --------------------------------------------------------


async def test_535_defers_with_soft_bounce(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    log = MemoryLog()
    config = sasl_config(tmp_path, auth_server.nexthop, creds=f"{USER}:wrong")
    result = await deliver(auth_server.nexthop, config, log)
    status = result.recipients[0]
    assert status.status is DEFERRED and status.dsn == "4.7.8"
    assert status.diagnostic == (
        "SASL authentication failed; server 127.0.0.1[127.0.0.1] said: "
        "535 5.7.8 Authentication credentials invalid"
    )
    assert auth_server.messages == []
    assert any(
        "status=deferred (SASL authentication failed; server 127.0.0.1[127.0.0.1] said: 535" in line
        for line in log.lines
    )


async def test_535_bounces_without_soft_bounce(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = sasl_config(
        tmp_path, auth_server.nexthop, creds=f"{USER}:wrong", smtp_sasl_auth_soft_bounce="no"
    )
    status = (await deliver(auth_server.nexthop, config)).recipients[0]
    assert status.status is BOUNCED and status.dsn == "5.7.8"


async def test_general_soft_bounce_wins(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = sasl_config(
        tmp_path, auth_server.nexthop, creds=f"{USER}:wrong",
        smtp_sasl_auth_soft_bounce="no", soft_bounce="yes",
    )  # fmt: skip
    status = (await deliver(auth_server.nexthop, config)).recipients[0]
    assert status.status is DEFERRED and status.dsn == "4.7.8"


async def test_xoauth2_error_challenge_then_535(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = sasl_config(
        tmp_path, auth_server.nexthop, creds=f"{USER}:expired-token",
        smtp_sasl_mechanism_filter="xoauth2", smtp_sasl_security_options="",
    )  # fmt: skip
    status = (await deliver(auth_server.nexthop, config)).recipients[0]
    assert status.status is DEFERRED
    assert "said: 535" in status.diagnostic


async def test_auth_cache_skips_same_bad_password(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    pytest.importorskip("berkeleydb", reason="btree: tables need berkeleydb (make extras)")
    cache = f"btree:{tmp_path}/sasl_auth_cache"
    config = sasl_config(
        tmp_path, auth_server.nexthop, creds=f"{USER}:wrong", smtp_sasl_auth_cache_name=cache
    )
    first = (await deliver(auth_server.nexthop, config)).recipients[0]
    second = (await deliver(auth_server.nexthop, config)).recipients[0]
    assert auth_handler.attempts == ["SCRAM-SHA-256"]  # not retried
    assert first.status is DEFERRED and second.status is DEFERRED
    assert second.diagnostic == (
        "SASL [CACHED] authentication failed; server 127.0.0.1 said: "
        "535 5.7.8 Authentication credentials invalid"
    )
    assert second.dsn == "4.7.8"
    # The password was fixed: tried again at once, and delivered.
    fixed = sasl_config(tmp_path, auth_server.nexthop, smtp_sasl_auth_cache_name=cache)
    third = (await deliver(auth_server.nexthop, fixed)).recipients[0]
    assert third.status is SENT
    assert auth_handler.attempts == ["SCRAM-SHA-256", "SCRAM-SHA-256"]


async def test_auth_cache_expires(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = sasl_config(
        tmp_path, auth_server.nexthop, creds=f"{USER}:wrong", smtp_sasl_auth_cache_time="0"
    )
    await deliver(auth_server.nexthop, config)
    await asyncio.sleep(0.01)
    await deliver(auth_server.nexthop, config)
    assert len(auth_handler.attempts) == 2


async def test_failure_moves_to_next_server(tmp_path: Path) -> None:
    bad, good = AuthHandler(), AuthHandler()
    first, second = start_server(bad), start_server(good)
    try:
        nexthop = f"{first.nexthop}, {second.nexthop}"
        # Keyed by each destination of the list ([host]:port): one wrong, one right.
        maps = password_map(
            tmp_path,
            {first.nexthop: f"{USER}:wrong", second.nexthop: f"{USER}:{PASSWORD}"},
            "multi",
        )
        config = sasl_config(tmp_path, "unused", smtp_sasl_password_maps=maps)
        log = MemoryLog()
        status = (await deliver(nexthop, config, log)).recipients[0]
        assert status.status is SENT, status.diagnostic
        assert bad.attempts == ["SCRAM-SHA-256"] and good.attempts == ["SCRAM-SHA-256"]
        assert len(second.messages) == 1 and not first.messages
        assert (
            "4QTEST: SASL authentication failed; server 127.0.0.1[127.0.0.1] said: "
            "535 5.7.8 Authentication credentials invalid"
        ) in log.lines
    finally:
        first.stop()
        second.stop()


# --- scripted server: hostile challenges ----------------------------------------------------------


async def _hostile(tmp_path: Path, challenges: Callable[[int], bytes]) -> tuple[Any, bytes]:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[bytes]
    ) -> None:
        await greet_without_starttls(reader, writer, received, "CRAM-MD5")
        await read_line(reader, received)  # AUTH CRAM-MD5
        n = 0
        while True:
            writer.write(challenges(n))
            n += 1
            line = await read_line(reader, received)
            if line == b"*\r\n":
                writer.write(b"501 5.7.0 cancelled\r\n")
                break
        await serve_rest(reader, writer, received)

    async with Scripted(script) as server:
        status = (await deliver(server.nexthop, sasl_config(tmp_path, server.nexthop))).recipients[
            0
        ]
        return status, server.wire


async def test_garbage_base64_challenge(tmp_path: Path) -> None:
    status, wire = await _hostile(tmp_path, lambda n: b"334 !!!not base64!!!\r\n")
    assert status.status is DEFERRED and status.dsn == "4.7.0"
    assert status.diagnostic == (
        "SASL authentication failed; cannot authenticate to server 127.0.0.1[127.0.0.1]: "
        "malformed base64 in server challenge"
    )
    assert wire.endswith(b"AUTH CRAM-MD5\r\n*\r\n") or b"*\r\nQUIT" in wire
    assert b"MAIL FROM" not in wire


async def test_endless_challenges(tmp_path: Path) -> None:
    challenge = b"334 " + base64.b64encode(CRAM_CHALLENGE) + b"\r\n"
    status, wire = await _hostile(tmp_path, lambda n: challenge if n == 0 else b"334 \r\n")
    assert status.status is DEFERRED
    # CRAM-MD5 answers one challenge; the second one is a mechanism error, cancelled.
    assert "more than one server challenge" in status.diagnostic
    assert b"*\r\n" in wire


async def test_protocol_loop(tmp_path: Path) -> None:
    # LOGIN answers anything twice, then errors; XOAUTH2 answers once. Use a mechanism that
    # never runs out: the deferred-initial-response path cannot loop either, so drive the
    # limit with the session directly.
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[bytes]
    ) -> None:
        await greet_without_starttls(reader, writer, received, "X-ENDLESS")
        await read_line(reader, received)
        while True:
            writer.write(b"334 \r\n")
            if await read_line(reader, received) == b"*\r\n":
                writer.write(b"501 cancelled\r\n")
                break
        await serve_rest(reader, writer, received)

    class Endless(auth_step.make_mechanism.__globals__["Mechanism"]):  # type: ignore[misc,name-defined]
        name = "X-ENDLESS"

        def step(self, challenge: bytes) -> bytes:
            return b""

    async with Scripted(script) as server:
        conn = await open_tcp(Peer("127.0.0.1", "127.0.0.1", server.port), timeout=5)
        session = Session(conn, SessionOptions(helo_name="client.example"))
        assert await session.start() is None
        outcome = await session.authenticate(Endless(), max_rounds=100)
        await session.quit()
    assert outcome.problem == "authentication protocol loop" and outcome.rounds == 101
    assert outcome.reply is not None and outcome.reply.code == 501
    assert server.wire.count(b"\r\n") > 100


async def test_oversized_challenge(tmp_path: Path) -> None:
    status, _ = await _hostile(tmp_path, lambda n: b"334 " + b"A" * 16000 + b"\r\n")
    assert status.status is DEFERRED
    # The reply parser's line limit (2048) stops it before the challenge limit would.
    assert "while performing SASL authentication: reply line longer than" in status.diagnostic

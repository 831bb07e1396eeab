"""SASL end to end: mechanisms against aiosmtpd's AUTH (PLAIN, LOGIN built in; CRAM-MD5,
XOAUTH2 and SCRAM as handler methods, SCRAM computed independently of scramp), soft bounce,
the 535 failure cache, security options refusing plaintext, a stripped STARTTLS (scripted
server recording every byte: no credential may appear), hostile 334 challenges, and over TLS
SCRAM-PLUS channel binding and EXTERNAL with a client certificate."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ssl
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, auth_mechanism

import mailcarrier
from mailcarrier import DeliveryStatus
from mailcarrier.config.settings import Settings
from mailcarrier.delivery import auth_step
from mailcarrier.errors import ConfigError
from mailcarrier.log import MemoryLog
from mailcarrier.transport.connection import Peer, open_tcp
from mailcarrier.transport.session import Session, SessionOptions
from tests.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler, free_port
from tests.sasl.scram_server import ScramServer

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED
USER, PASSWORD = "alice", "s3cret-Pa55"
CRAM_CHALLENGE = b"<1896.697170952@mail.example>"


class AuthHandler(RecordingHandler):
    """aiosmtpd handler with extra AUTH mechanisms and a record of every attempt."""

    def __init__(self, password: str = PASSWORD, **kw: Any) -> None:
        super().__init__(**kw)
        self.password = password
        self.attempts: list[str] = []
        self.binding: tuple[str, bytes] | None = None  # server-side channel binding
        self.scram_errors: list[str] = []

    def check(self, mechanism: str, login: bytes, password: bytes) -> AuthResult:
        self.attempts.append(mechanism)
        ok = login == USER.encode() and password == self.password.encode()
        return AuthResult(success=ok, handled=False, auth_data=LoginPassword(login, password))

    def __call__(
        self, server: SMTP, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        return self.check(mechanism, data.login, data.password)

    @auth_mechanism("CRAM-MD5")
    async def auth_cram(self, server: SMTP, args: list[str]) -> AuthResult:
        answer = await server.challenge_auth(CRAM_CHALLENGE)
        self.attempts.append("CRAM-MD5")
        if not isinstance(answer, bytes):
            return AuthResult(success=False, handled=True)
        user, _, digest = answer.partition(b" ")
        want = hmac.new(self.password.encode(), CRAM_CHALLENGE, hashlib.md5).hexdigest()
        return AuthResult(success=user == USER.encode() and digest == want.encode(), handled=False)

    @auth_mechanism("XOAUTH2")
    async def auth_xoauth2(self, server: SMTP, args: list[str]) -> AuthResult:
        self.attempts.append("XOAUTH2")
        blob = base64.b64decode(args[1]) if len(args) > 1 else b""
        if blob == f"user={USER}\x01auth=Bearer {self.password}\x01\x01".encode():
            return AuthResult(success=True)
        await server.challenge_auth(b'{"status":"401","schemes":"bearer"}')
        return AuthResult(success=False, handled=False)

    async def _scram(self, server: SMTP, args: list[str], name: str, plus: bool) -> AuthResult:
        self.attempts.append(name)
        binding_type, data = self.binding if self.binding else ("", None)
        scram = ScramServer(
            "sha256", USER, self.password, plus_offered=True,
            binding_type=binding_type, binding_data=data,
        )  # fmt: skip
        try:
            first = base64.b64decode(args[1])
            client_final = await server.challenge_auth(scram.first(first))
            if not isinstance(client_final, bytes):
                return AuthResult(success=False, handled=True)
            server_final = scram.final(client_final)
        except (ValueError, KeyError):
            server_final = None
            scram.error = "malformed"
        if server_final is None:
            self.scram_errors.append(scram.error)
            return AuthResult(success=False, handled=False)
        if not isinstance(await server.challenge_auth(server_final), bytes):
            return AuthResult(success=False, handled=True)
        return AuthResult(success=True)

    @auth_mechanism("SCRAM-SHA-256")
    async def auth_scram(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._scram(server, args, "SCRAM-SHA-256", False)

    @auth_mechanism("SCRAM-SHA-256-PLUS")
    async def auth_scram_plus(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._scram(server, args, "SCRAM-SHA-256-PLUS", True)


@pytest.fixture
def auth_handler() -> AuthHandler:
    return AuthHandler()


def _start(handler: AuthHandler, **kw: Any) -> AiosmtpdServer:
    kw.setdefault("auth_require_tls", False)
    return AiosmtpdServer(handler, authenticator=handler, **kw).start()


@pytest.fixture
def auth_server(auth_handler: AuthHandler) -> Iterator[AiosmtpdServer]:
    server = _start(auth_handler)
    try:
        yield server
    finally:
        server.stop()


def _passwd(tmp_path: Path, entries: dict[str, str], name: str = "sasl_passwd") -> str:
    path = tmp_path / name
    path.write_text("".join(f"{k} {v}\n" for k, v in entries.items()))
    return f"texthash:{path}"


def _config(tmp_path: Path, nexthop: str, creds: str = f"{USER}:{PASSWORD}", **kw: str) -> Settings:
    overrides = {
        "smtp_helo_name": "client.example",
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": _passwd(tmp_path, {nexthop: creds}),
        **kw,
    }
    return Settings.defaults().with_overrides(overrides)


async def _deliver(nexthop: str, config: Settings, log: MemoryLog | None = None) -> Any:
    request = mailcarrier.make_request(
        b"Subject: t\r\n\r\nbody\r\n", sender="a@example.org", recipients=["b@example.net"],
        nexthop=nexthop, queue_id="4QTEST",
    )  # fmt: skip
    return await mailcarrier.deliver(request, config=config, log=log or MemoryLog())


# --- mechanisms against aiosmtpd --------------------------------------------------------------


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
    config = _config(tmp_path, auth_server.nexthop, smtp_sasl_mechanism_filter=mechanisms, **extra)
    result = await _deliver(auth_server.nexthop, config)
    assert result.recipients[0].status is SENT, result.recipients[0].diagnostic
    assert auth_handler.attempts == [expected]
    assert len(auth_server.messages) == 1


async def test_strongest_offered_is_chosen(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    result = await _deliver(auth_server.nexthop, _config(tmp_path, auth_server.nexthop))
    assert result.recipients[0].status is SENT
    # aiosmtpd offers CRAM-MD5 LOGIN PLAIN SCRAM-SHA-256 SCRAM-SHA-256-PLUS XOAUTH2; no TLS,
    # so no -PLUS; XOAUTH2 is opt-in.
    assert auth_handler.attempts == ["SCRAM-SHA-256"]


async def test_no_password_entry_means_no_auth(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = _config(tmp_path, "[other.example]")
    result = await _deliver(auth_server.nexthop, config)
    assert result.recipients[0].status is SENT
    assert auth_handler.attempts == []


async def test_auth_disabled_means_no_auth(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = _config(tmp_path, auth_server.nexthop, smtp_sasl_auth_enable="no")
    assert (await _deliver(auth_server.nexthop, config)).recipients[0].status is SENT
    assert auth_handler.attempts == []


async def test_host_name_key(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = _config(tmp_path, "127.0.0.1")  # the server's host name, not the destination
    assert (await _deliver(auth_server.nexthop, config)).recipients[0].status is SENT
    assert auth_handler.attempts == ["SCRAM-SHA-256"]


# --- failures: 535, soft bounce, the cache -------------------------------------------------


async def test_535_defers_with_soft_bounce(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    log = MemoryLog()
    config = _config(tmp_path, auth_server.nexthop, creds=f"{USER}:wrong")
    result = await _deliver(auth_server.nexthop, config, log)
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
    config = _config(
        tmp_path, auth_server.nexthop, creds=f"{USER}:wrong", smtp_sasl_auth_soft_bounce="no"
    )
    status = (await _deliver(auth_server.nexthop, config)).recipients[0]
    assert status.status is BOUNCED and status.dsn == "5.7.8"


async def test_general_soft_bounce_wins(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = _config(
        tmp_path, auth_server.nexthop, creds=f"{USER}:wrong",
        smtp_sasl_auth_soft_bounce="no", soft_bounce="yes",
    )  # fmt: skip
    status = (await _deliver(auth_server.nexthop, config)).recipients[0]
    assert status.status is DEFERRED and status.dsn == "4.7.8"


async def test_xoauth2_error_challenge_then_535(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = _config(
        tmp_path, auth_server.nexthop, creds=f"{USER}:expired-token",
        smtp_sasl_mechanism_filter="xoauth2", smtp_sasl_security_options="",
    )  # fmt: skip
    status = (await _deliver(auth_server.nexthop, config)).recipients[0]
    assert status.status is DEFERRED
    assert "said: 535" in status.diagnostic


async def test_auth_cache_skips_same_bad_password(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    cache = f"btree:{tmp_path}/sasl_auth_cache"
    config = _config(
        tmp_path, auth_server.nexthop, creds=f"{USER}:wrong", smtp_sasl_auth_cache_name=cache
    )
    first = (await _deliver(auth_server.nexthop, config)).recipients[0]
    second = (await _deliver(auth_server.nexthop, config)).recipients[0]
    assert auth_handler.attempts == ["SCRAM-SHA-256"]  # not retried
    assert first.status is DEFERRED and second.status is DEFERRED
    assert second.diagnostic == (
        "SASL [CACHED] authentication failed; server 127.0.0.1 said: "
        "535 5.7.8 Authentication credentials invalid"
    )
    assert second.dsn == "4.7.8"
    # The password was fixed: tried again at once, and delivered.
    fixed = _config(tmp_path, auth_server.nexthop, smtp_sasl_auth_cache_name=cache)
    third = (await _deliver(auth_server.nexthop, fixed)).recipients[0]
    assert third.status is SENT
    assert auth_handler.attempts == ["SCRAM-SHA-256", "SCRAM-SHA-256"]


async def test_auth_cache_expires(
    tmp_path: Path, auth_handler: AuthHandler, auth_server: AiosmtpdServer
) -> None:
    config = _config(
        tmp_path, auth_server.nexthop, creds=f"{USER}:wrong", smtp_sasl_auth_cache_time="0"
    )
    await _deliver(auth_server.nexthop, config)
    await asyncio.sleep(0.01)
    await _deliver(auth_server.nexthop, config)
    assert len(auth_handler.attempts) == 2


async def test_failure_moves_to_next_server(tmp_path: Path) -> None:
    bad, good = AuthHandler(), AuthHandler()
    first, second = _start(bad), _start(good)
    try:
        nexthop = f"{first.nexthop}, {second.nexthop}"
        # Keyed by each destination of the list ([host]:port): one wrong, one right.
        maps = _passwd(
            tmp_path,
            {first.nexthop: f"{USER}:wrong", second.nexthop: f"{USER}:{PASSWORD}"},
            "multi",
        )
        config = _config(tmp_path, "unused", smtp_sasl_password_maps=maps)
        log = MemoryLog()
        status = (await _deliver(nexthop, config, log)).recipients[0]
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


# --- security options -------------------------------------------------------------------------


async def test_plaintext_refused_without_tls(tmp_path: Path) -> None:
    handler = AuthHandler()
    server = _start(
        handler,
        auth_exclude_mechanism=["CRAM-MD5", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS", "XOAUTH2"],
    )
    try:
        config = _config(tmp_path, server.nexthop)  # default: noplaintext, noanonymous
        status = (await _deliver(server.nexthop, config)).recipients[0]
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
    config = _config(tmp_path, auth_server.nexthop, smtp_sasl_mechanism_filter="gssapi")
    status = (await _deliver(auth_server.nexthop, config, log)).recipients[0]
    assert status.status is DEFERRED
    assert status.diagnostic == (
        "SASL authentication failed: server 127.0.0.1[127.0.0.1] offered no compatible "
        "authentication mechanisms for this type of connection security"
    )
    assert any("offered no supported AUTH mechanisms: 'CRAM-MD5 LOGIN" in ln for ln in log.lines)


async def test_unsupported_sasl_type(tmp_path: Path, auth_server: AiosmtpdServer) -> None:
    config = _config(tmp_path, auth_server.nexthop, smtp_sasl_type="dovecot")
    with pytest.raises(
        ConfigError, match='smtp_sasl_type: unsupported SASL client implementation "dovecot"'
    ):
        await _deliver(auth_server.nexthop, config)


async def test_missing_password_maps(auth_server: AiosmtpdServer) -> None:
    config = Settings.defaults().with_overrides({"smtp_sasl_auth_enable": "yes"})
    with pytest.raises(ConfigError, match="smtp_sasl_password_maps"):
        await _deliver(auth_server.nexthop, config)


# --- scripted server: stripped STARTTLS, hostile challenges -----------------------------------

Script = Callable[[asyncio.StreamReader, asyncio.StreamWriter, list[bytes]], Awaitable[None]]


class Scripted:
    """A scripted server on loopback that records every byte the client sent."""

    def __init__(self, script: Script) -> None:
        self.script = script
        self.received: list[bytes] = []
        self.port = free_port()

    async def __aenter__(self) -> Scripted:
        async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                await self.script(reader, writer, self.received)
            except (ConnectionError, asyncio.IncompleteReadError):
                pass
            finally:
                writer.close()

        self.server = await asyncio.start_server(serve, "127.0.0.1", self.port)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()
        await self.server.wait_closed()

    @property
    def nexthop(self) -> str:
        return f"[127.0.0.1]:{self.port}"

    @property
    def wire(self) -> bytes:
        return b"".join(self.received)


async def _line(reader: asyncio.StreamReader, received: list[bytes]) -> bytes:
    line = await reader.readline()
    received.append(line)
    if not line:
        raise ConnectionError
    return line


async def _greet(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[bytes], auth: str
) -> None:
    writer.write(b"220 mitm.example ESMTP\r\n")
    await _line(reader, received)  # EHLO
    # The man in the middle removed STARTTLS from the list.
    writer.write(b"250-mitm.example\r\n250-PIPELINING\r\n250 AUTH " + auth.encode() + b"\r\n")


async def _rest(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[bytes]
) -> None:
    while True:
        line = await _line(reader, received)
        verb = line[:4].upper()
        if verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            return
        if verb == b"DATA":
            writer.write(b"354 go\r\n")
            while (await _line(reader, received)) != b".\r\n":
                pass
        writer.write(b"250 2.0.0 ok\r\n")


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
        await _greet(reader, writer, received, "PLAIN LOGIN")
        await _rest(reader, writer, received)

    async with Scripted(script) as server:
        config = _config(tmp_path, server.nexthop, **overrides)
        status = (await _deliver(server.nexthop, config)).recipients[0]
    assert status.status is DEFERRED
    assert b"AUTH" not in server.wire.upper()
    for secret in _secret_forms():
        assert secret not in server.wire


async def _hostile(tmp_path: Path, challenges: Callable[[int], bytes]) -> tuple[Any, bytes]:
    async def script(
        reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[bytes]
    ) -> None:
        await _greet(reader, writer, received, "CRAM-MD5")
        await _line(reader, received)  # AUTH CRAM-MD5
        n = 0
        while True:
            writer.write(challenges(n))
            n += 1
            line = await _line(reader, received)
            if line == b"*\r\n":
                writer.write(b"501 5.7.0 cancelled\r\n")
                break
        await _rest(reader, writer, received)

    async with Scripted(script) as server:
        status = (await _deliver(server.nexthop, _config(tmp_path, server.nexthop))).recipients[0]
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
        await _greet(reader, writer, received, "X-ENDLESS")
        await _line(reader, received)
        while True:
            writer.write(b"334 \r\n")
            if await _line(reader, received) == b"*\r\n":
                writer.write(b"501 cancelled\r\n")
                break
        await _rest(reader, writer, received)

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


# --- over TLS: SCRAM-PLUS channel binding, EXTERNAL ------------------------------------------


class ExternalHandler(AuthHandler):
    @auth_mechanism("EXTERNAL")
    async def auth_external(self, server: SMTP, args: list[str]) -> AuthResult:
        ssl_object = server.transport.get_extra_info("ssl_object")
        self.attempts.append("EXTERNAL")
        has_cert = ssl_object is not None and bool(ssl_object.getpeercert())
        authzid = base64.b64decode(args[1]) if len(args) > 1 and args[1] != "=" else b""
        return AuthResult(success=has_cert and authzid == USER.encode(), handled=False)


async def _tls_session(
    tmp_path: Path,
    handler: AuthHandler,
    *,
    max_version: ssl.TLSVersion,
    client_cert: bool = False,
    **overrides: str,
) -> tuple[Any, AuthHandler]:
    ca = trustme.CA()
    server_cert = ca.issue_cert("127.0.0.1")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_cert.configure_cert(server_ctx)
    server_ctx.maximum_version = max_version
    if client_cert:
        ca.configure_trust(server_ctx)
        server_ctx.verify_mode = ssl.CERT_OPTIONAL
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    cert_file = ""
    if client_cert:
        issued = ca.issue_cert("client.example")
        issued.configure_cert(client_ctx)
        cert_file = str(tmp_path / "client.pem")
        issued.private_key_and_cert_chain_pem.write_to_path(cert_file)
    # The server-side binding data, computed from the server's own view of the channel.
    der = ssl.PEM_cert_to_DER_cert(server_cert.cert_chain_pems[0].bytes().decode())
    server = _start(handler, ssl_context=server_ctx)
    try:
        peer = Peer("127.0.0.1", "127.0.0.1", server.port)
        conn = await open_tcp(peer, timeout=5, ssl_context=client_ctx, server_hostname="127.0.0.1")
        ssl_object = conn.writer.get_extra_info("ssl_object")
        unique = ssl_object.get_channel_binding("tls-unique")
        if unique and ssl_object.version() == "TLSv1.2":
            handler.binding = ("tls-unique", unique)
        else:
            handler.binding = ("tls-server-end-point", hashlib.sha256(der).digest())
        session = Session(conn, SessionOptions(helo_name="client.example"))
        assert await session.start() is None
        config = _config(tmp_path, "127.0.0.1", smtp_tls_cert_file=cert_file, **overrides)
        agent = config.for_transport("smtp")
        request = mailcarrier.make_request(
            b"x", sender="a@example.org", recipients=["b@example.net"], nexthop=server.nexthop
        )
        verdict = await auth_step.authenticate(
            config, agent, session, peer, request, log=MemoryLog()
        )
        await session.quit()
        return verdict, handler
    finally:
        server.stop()


@pytest.mark.parametrize(
    ("version", "binding"),
    [(ssl.TLSVersion.TLSv1_2, "tls-unique"), (ssl.TLSVersion.TLSv1_3, "tls-server-end-point")],
)
async def test_scram_plus_channel_binding(
    tmp_path: Path, version: ssl.TLSVersion, binding: str
) -> None:
    verdict, handler = await _tls_session(tmp_path, AuthHandler(), max_version=version)
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
    verdict, _ = await _tls_session(tmp_path, handler, max_version=ssl.TLSVersion.TLSv1_2)
    assert verdict is not None and "said: 535" in verdict.diagnostic
    assert handler.scram_errors == ["channel binding mismatch"]


async def test_tls_options_allow_plain_over_tls(tmp_path: Path) -> None:
    verdict, handler = await _tls_session(
        tmp_path, AuthHandler(), max_version=ssl.TLSVersion.TLSv1_3,
        smtp_sasl_mechanism_filter="plain", smtp_sasl_tls_security_options="noanonymous",
    )  # fmt: skip
    assert verdict is None and handler.attempts == ["PLAIN"]


async def test_tls_default_options_still_refuse_plain(tmp_path: Path) -> None:
    # smtp_sasl_tls_security_options defaults to $smtp_sasl_security_options (noplaintext).
    verdict, handler = await _tls_session(
        tmp_path, AuthHandler(), max_version=ssl.TLSVersion.TLSv1_3,
        smtp_sasl_mechanism_filter="plain",
    )  # fmt: skip
    assert verdict is not None and verdict.diagnostic.endswith("no mechanism available")
    assert handler.attempts == []


async def test_external_with_client_certificate(tmp_path: Path) -> None:
    verdict, handler = await _tls_session(
        tmp_path, ExternalHandler(), max_version=ssl.TLSVersion.TLSv1_3, client_cert=True,
        smtp_sasl_mechanism_filter="external",
    )  # fmt: skip
    assert verdict is None, verdict
    assert handler.attempts == ["EXTERNAL"]

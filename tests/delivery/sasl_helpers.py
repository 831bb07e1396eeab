"""Shared pieces of the SASL delivery tests (test_sasl_mechanisms.py, test_sasl_failures.py,
test_sasl_security.py): an aiosmtpd AUTH handler with extra mechanisms (CRAM-MD5, XOAUTH2, SCRAM
computed independently of scramp) and its fixtures, the settings and delivery of one message, a
scripted loopback server that records every byte the client sent, and an AUTH exchange run by
hand over TLS. The fixtures are bound by name in each test module, as tests/tls/tls_fixtures.py's
are."""

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


def start_server(handler: AuthHandler, **kw: Any) -> AiosmtpdServer:
    kw.setdefault("auth_require_tls", False)
    return AiosmtpdServer(handler, authenticator=handler, **kw).start()


@pytest.fixture
def auth_server(auth_handler: AuthHandler) -> Iterator[AiosmtpdServer]:
    server = start_server(auth_handler)
    try:
        yield server
    finally:
        server.stop()


def password_map(tmp_path: Path, entries: dict[str, str], name: str = "sasl_passwd") -> str:
    path = tmp_path / name
    path.write_text("".join(f"{k} {v}\n" for k, v in entries.items()))
    return f"texthash:{path}"


def sasl_config(
    tmp_path: Path, nexthop: str, creds: str = f"{USER}:{PASSWORD}", **kw: str
) -> Settings:
    overrides = {
        "smtp_helo_name": "client.example",
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": password_map(tmp_path, {nexthop: creds}),
        **kw,
    }
    return Settings.defaults().with_overrides(overrides)


async def deliver(nexthop: str, config: Settings, log: MemoryLog | None = None) -> Any:
    request = mailcarrier.make_request(
        b"Subject: t\r\n\r\nbody\r\n", sender="a@example.org", recipients=["b@example.net"],
        nexthop=nexthop, queue_id="4QTEST",
    )  # fmt: skip
    return await mailcarrier.deliver(request, config=config, log=log or MemoryLog())


# --- scripted server: every byte the client sent --------------------------------------------------

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


async def read_line(reader: asyncio.StreamReader, received: list[bytes]) -> bytes:
    line = await reader.readline()
    received.append(line)
    if not line:
        raise ConnectionError
    return line


async def greet_without_starttls(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[bytes], auth: str
) -> None:
    writer.write(b"220 mitm.example ESMTP\r\n")
    await read_line(reader, received)  # EHLO
    # The man in the middle removed STARTTLS from the list.
    writer.write(b"250-mitm.example\r\n250-PIPELINING\r\n250 AUTH " + auth.encode() + b"\r\n")


async def serve_rest(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, received: list[bytes]
) -> None:
    while True:
        line = await read_line(reader, received)
        verb = line[:4].upper()
        if verb == b"QUIT":
            writer.write(b"221 bye\r\n")
            return
        if verb == b"DATA":
            writer.write(b"354 go\r\n")
            while (await read_line(reader, received)) != b".\r\n":
                pass
        writer.write(b"250 2.0.0 ok\r\n")


# --- an AUTH exchange over TLS --------------------------------------------------------------------


async def authenticate_over_tls(
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
    server = start_server(handler, ssl_context=server_ctx)
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
        config = sasl_config(tmp_path, "127.0.0.1", smtp_tls_cert_file=cert_file, **overrides)
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

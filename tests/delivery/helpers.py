"""Shared pieces of the SASL delivery tests (test_sasl_mechanisms.py, test_sasl_failures.py,
test_sasl_security.py): the settings and delivery of one message, a scripted loopback server
that records every byte the client sent, and an AUTH exchange run by hand over TLS. The AUTH
server is tests/support/peers/aiosmtpd_auth.py; its fixtures are in conftest.py here."""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import trustme

import mailcarrier
from mailcarrier import DeliveryStatus
from mailcarrier.config.settings import Settings
from mailcarrier.delivery import auth_step
from mailcarrier.log import MemoryLog
from mailcarrier.status import DeliveryResult
from mailcarrier.transport.connection import Peer
from mailcarrier.transport.connector import open_tcp
from mailcarrier.transport.session import Session, SessionOptions
from tests.support.deliver import deliver_to
from tests.support.peers.aiosmtpd_auth import PASSWORD, USER, AuthHandler, start_server
from tests.support.peers.aiosmtpd_server import free_port
from tests.support.settings import HELO_NAME, make_settings

SENT, DEFERRED, BOUNCED = DeliveryStatus.SENT, DeliveryStatus.DEFERRED, DeliveryStatus.BOUNCED


def password_map(tmp_path: Path, entries: dict[str, str], name: str = "sasl_passwd") -> str:
    path = tmp_path / name
    path.write_text("".join(f"{k} {v}\n" for k, v in entries.items()))
    return f"texthash:{path}"


def sasl_config(
    tmp_path: Path, nexthop: str, creds: str = f"{USER}:{PASSWORD}", **kw: str
) -> Settings:
    layer = {
        "smtp_helo_name": HELO_NAME,
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": password_map(tmp_path, {nexthop: creds}),
    }
    return make_settings(layer, **kw)


async def deliver(nexthop: str, config: Settings, log: MemoryLog | None = None) -> DeliveryResult:
    body = b"Subject: t\r\n\r\nbody\r\n"
    result, _ = await deliver_to(nexthop, body, queue_id="4QTEST", config=config, log=log)
    return result


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

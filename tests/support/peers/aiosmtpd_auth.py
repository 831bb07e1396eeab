"""aiosmtpd with more AUTH mechanisms than its own, and a record of every attempt.

`AuthHandler` adds CRAM-MD5, XOAUTH2 and SCRAM-SHA-256(-PLUS) (the SCRAM side is
scram_server.py, computed independently of scramp, the client's library) to aiosmtpd's PLAIN
and LOGIN, accepts `USER` with its `password`, and records each mechanism tried in
`attempts`. `start_server(handler)` runs it on loopback (AUTH offered without TLS unless told
otherwise). The fixtures `auth_handler` and `auth_server` are in tests/delivery/conftest.py.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, auth_mechanism

from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.peers.scram_server import ScramServer

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


def start_server(handler: AuthHandler, **kw: Any) -> AiosmtpdServer:
    kw.setdefault("auth_require_tls", False)
    return AiosmtpdServer(handler, authenticator=handler, **kw).start()

"""aiosmtpd with STARTTLS that announces REQUIRETLS (RFC 8689) after it, for the REQUIRETLS tests.

Stock aiosmtpd knows STARTTLS (`tls_context`) but not REQUIRETLS: `RequireTlsHandler` adds
the keyword to the EHLO reply of a session that has done STARTTLS (never before, as RFC 8689
3 requires), or never when `offer_requiretls` is off; `RequireTlsAiosmtpdServer` takes the
``REQUIRETLS`` and DSN parameters off MAIL FROM before aiosmtpd validates the command (it
answers 555 to parameters it does not know) and records every MAIL argument exactly as it
arrived (`wire.mail`), so tests see what the client sent. `RequireTlsServers` starts them
for a test (a certificate for a host name from a test PKI) and stops them after it.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, Envelope, Session

from tests.support.peers.aiosmtpd_dsn import MAIL_DSN, DsnAiosmtpdServer, DsnSMTP, _DsnController
from tests.support.peers.aiosmtpd_server import RecordingHandler

if TYPE_CHECKING:
    from tests.support.tls import Pki

_MAIL_PARAMS = (*MAIL_DSN, "REQUIRETLS")


@dataclass
class RequireTlsHandler(RecordingHandler):
    offer_requiretls: bool = True

    async def handle_EHLO(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        hostname: str,
        responses: list[str],
    ) -> list[str]:
        out = await super().handle_EHLO(server, session, envelope, hostname, responses)
        if self.offer_requiretls and session.ssl is not None:
            return [*out[:-1], "250-REQUIRETLS", out[-1]]
        return out


class _RequireTlsSMTP(DsnSMTP):
    async def smtp_MAIL(self, arg: str | None) -> None:
        self._recorder.mail.append(arg or "")
        words = (arg or "").split(" ")
        kept = " ".join(w for w in words if not w.upper().startswith(_MAIL_PARAMS))
        await SMTP.smtp_MAIL(self, kept)


class _Controller(_DsnController):
    def factory(self) -> SMTP:
        return _RequireTlsSMTP(self.handler, self.recorder, **self.SMTP_kwargs)


class RequireTlsAiosmtpdServer(DsnAiosmtpdServer):
    """STARTTLS with `context` (None: no STARTTLS at all), REQUIRETLS as the handler says."""

    def __init__(
        self, handler: RequireTlsHandler, context: ssl.SSLContext | None, **kw: Any
    ) -> None:
        super().__init__(handler, **kw)
        if context is not None:
            kw["tls_context"] = context
        kw.setdefault("data_size_limit", 0)
        kw.setdefault("enable_SMTPUTF8", True)
        self.controller = _Controller(handler, self.wire, hostname=self.host, port=self.port, **kw)

    def start(self) -> RequireTlsAiosmtpdServer:
        self.controller.start()
        return self


class RequireTlsServers:
    """The servers one test starts (`start`), all stopped by `stop_all`."""

    def __init__(self) -> None:
        self.started: list[RequireTlsAiosmtpdServer] = []

    def start(
        self,
        pki: Pki | None,
        host: str,
        *,
        offer: bool = True,
        cert_name: str = "",
    ) -> RequireTlsAiosmtpdServer:
        """A server with STARTTLS and a certificate for `cert_name` (default: `host`) from
        `pki` (None: no STARTTLS), offering REQUIRETLS unless `offer` is off."""
        context = pki.server_context(pki.leaf(cert_name or host)) if pki is not None else None
        server = RequireTlsAiosmtpdServer(RequireTlsHandler(offer_requiretls=offer), context)
        self.started.append(server.start())
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()

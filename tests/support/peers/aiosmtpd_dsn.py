"""aiosmtpd that takes RFC 3461 DSN parameters and records every MAIL/RCPT argument as sent.

Stock aiosmtpd answers ``555`` to any MAIL parameter it does not know (RET, ENVID) and to
every RCPT parameter (NOTIFY, ORCPT). `DsnAiosmtpdServer` strips those parameters before
aiosmtpd validates the command, and keeps the arguments exactly as they arrived in
`WireRecorder`, so tests can compare the client's DSN parameters byte for byte while the rest
of the conversation is aiosmtpd's own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP

from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler

MAIL_DSN = ("RET=", "ENVID=")
RCPT_DSN = ("NOTIFY=", "ORCPT=")


@dataclass
class WireRecorder:
    """Arguments of MAIL and RCPT commands exactly as received (after the verb)."""

    mail: list[str] = field(default_factory=list)
    rcpt: list[str] = field(default_factory=list)


def _strip(arg: str | None, prefixes: tuple[str, ...]) -> str | None:
    if arg is None:
        return None
    words = arg.split(" ")
    return " ".join(w for w in words if not w.upper().startswith(prefixes))


class DsnSMTP(SMTP):
    def __init__(self, handler: Any, recorder: WireRecorder, **kw: Any) -> None:
        super().__init__(handler, **kw)
        self._recorder = recorder

    async def smtp_MAIL(self, arg: str | None) -> None:
        self._recorder.mail.append(arg or "")
        await super().smtp_MAIL(_strip(arg, MAIL_DSN))

    async def smtp_RCPT(self, arg: str | None) -> None:
        self._recorder.rcpt.append(arg or "")
        await super().smtp_RCPT(_strip(arg, RCPT_DSN))


class _DsnController(Controller):
    def __init__(self, handler: Any, recorder: WireRecorder, **kw: Any) -> None:
        super().__init__(handler, **kw)
        self.recorder = recorder

    def factory(self) -> SMTP:
        return DsnSMTP(self.handler, self.recorder, **self.SMTP_kwargs)


class DsnAiosmtpdServer(AiosmtpdServer):
    def __init__(self, handler: RecordingHandler, host: str = "127.0.0.1", **kw: Any) -> None:
        super().__init__(handler, host, **kw)
        self.wire = WireRecorder()
        kw.setdefault("data_size_limit", 0)
        kw.setdefault("enable_SMTPUTF8", True)
        self.controller = _DsnController(handler, self.wire, hostname=host, port=self.port, **kw)

"""Who reports a NOTIFY=SUCCESS delivery (Postfix smtp_rcpt_done): the next hop when it
announced DSN; otherwise us, as "relayed" (SMTP) or "delivered" (LMTP with
lmtp_assume_final)."""

from __future__ import annotations

from pathlib import Path

from aiosmtpd.controller import UnixSocketController
from aiosmtpd.lmtp import LMTP

from mailcarrier.status import ACTION_FORWARDED
from tests.support.deliver import deliver_to
from tests.support.peers.aiosmtpd_dsn import DsnAiosmtpdServer
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler
from tests.support.settings import make_settings


async def _action(nexthop: str, transport: str = "smtp", **over: str) -> str:
    result, _ = await deliver_to(
        nexthop,
        b"Subject: s\n\nx\n",
        sender="s@example.org",
        recipients=["r@example.net"],
        transport=transport,
        notify="SUCCESS",
        config=make_settings(**over),
    )
    (status,) = result.recipients
    assert status.status == "sent", status
    return status.action


async def test_next_hop_with_dsn_takes_the_request() -> None:
    server = DsnAiosmtpdServer(RecordingHandler()).start()
    try:
        assert await _action(server.nexthop) == ACTION_FORWARDED
    finally:
        server.stop()


async def test_next_hop_without_dsn_means_relayed() -> None:
    server = AiosmtpdServer(RecordingHandler(extra_keywords=("PIPELINING",))).start()
    try:
        assert await _action(server.nexthop) == "relayed"
    finally:
        server.stop()


class _Lmtp(UnixSocketController):
    def factory(self) -> LMTP:
        return LMTP(self.handler)


class _LmtpHandler(RecordingHandler):
    async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
        return "250 2.0.0 Ok"


async def test_lmtp_assume_final_means_delivered(short_tmp: Path) -> None:
    path = str(short_tmp / "lmtp")
    controller = _Lmtp(_LmtpHandler(extra_keywords=("PIPELINING",)), unix_socket=path)
    controller.start()
    try:
        assert await _action(f"unix:{path}", "lmtp") == "relayed"
        assert await _action(f"unix:{path}", "lmtp", lmtp_assume_final="yes") == "delivered"
    finally:
        controller.stop()

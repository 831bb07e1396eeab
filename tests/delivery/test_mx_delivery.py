"""Delivery through real DNS: a dnslib server on 127.0.0.1 serves MX and address records that
point at loopback servers (127.0.0.0/8 only), and the agent routes as Postfix does: MX order,
next MX when one is down, fallback relays, relay lists, null MX, NXDOMAIN, loop detection."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from dnslib import RR

from mailcarrier import DeliveryStatus, deliver, make_request
from mailcarrier.config import Settings
from mailcarrier.status import RecipientStatus
from tests.support.deliver import deliver_to
from tests.support.dns import ZoneResolver, serve_zone
from tests.support.peers.aiosmtpd_dsn import DsnAiosmtpdServer
from tests.support.peers.aiosmtpd_server import AiosmtpdServer, RecordingHandler, free_port
from tests.support.settings import loopback_dns, make_settings

ZONE = """
mx.test.            300 IN MX 10 mx1.mx.test.
mx1.mx.test.        300 IN A 127.0.0.1
two.test.           300 IN MX 10 down.two.test.
two.test.           300 IN MX 20 up.two.test.
down.two.test.      300 IN A 127.0.0.2
up.two.test.        300 IN A 127.0.0.1
alldown.test.       300 IN MX 10 a.alldown.test.
alldown.test.       300 IN MX 20 b.alldown.test.
a.alldown.test.     300 IN A 127.0.0.3
b.alldown.test.     300 IN A 127.0.0.4
nullmx.test.        300 IN MX 0 .
self.test.          300 IN MX 10 me.self.test.
me.self.test.       300 IN A 127.0.0.1
xn--fa-hia.de.      300 IN MX 10 mx.xn--fa-hia.de.
mx.xn--fa-hia.de.   300 IN A 127.0.0.1
"""


@pytest.fixture(scope="module")
def dns_zone() -> Iterator[tuple[int, ZoneResolver]]:
    zone = ZoneResolver(records=RR.fromZone(ZONE))
    with serve_zone(zone) as port:
        yield port, zone


@pytest.fixture
def dns_port(dns_zone: tuple[int, ZoneResolver]) -> int:
    return dns_zone[0]


def _config(dns_port: int, **extra: str) -> Settings:
    return make_settings(loopback_dns(dns_port), {"smtp_connect_timeout": "2s"}, **extra)


async def _send(
    nexthop: str, config: Settings, rcpt: str = "u@mx.test"
) -> tuple[RecipientStatus, list[str]]:
    result, log = await deliver_to(
        nexthop, b"Subject: mx\n\nhi\n", sender="s@example.org", recipients=[rcpt], config=config
    )
    return result.recipients[0], log.lines


async def test_mx_lookup_delivers_to_the_exchanger(
    dns_port: int, smtp_server: AiosmtpdServer
) -> None:
    status, _ = await _send(f"mx.test:{smtp_server.port}", _config(dns_port))
    assert status.status is DeliveryStatus.SENT
    assert status.relay == f"mx1.mx.test[127.0.0.1]:{smtp_server.port}"
    assert len(smtp_server.messages) == 1


async def test_utf8_domain_goes_out_and_is_looked_up_as_the_same_a_labels(
    dns_zone: tuple[int, ZoneResolver],
) -> None:
    """IDNA 2008 (UTS #46 non-transitional) for the envelope and for DNS alike: "faß.de" is
    xn--fa-hia.de in both (Python's IDNA 2003 codec would make the envelope "fass.de")."""
    port, zone = dns_zone
    with zone.lock:
        zone.queries.clear()
    handler = RecordingHandler(extra_keywords=("PIPELINING",))
    server = DsnAiosmtpdServer(handler, enable_SMTPUTF8=False)
    server.start()
    try:
        status, _ = await _send(f"faß.de:{server.port}", _config(port), "user@faß.de")
    finally:
        server.stop()
    assert status.status is DeliveryStatus.SENT
    assert status.relay == f"mx.xn--fa-hia.de[127.0.0.1]:{server.port}"
    assert server.wire.rcpt == ["TO:<user@xn--fa-hia.de>"]
    with zone.lock:
        assert zone.queries == [("xn--fa-hia.de.", "MX"), ("mx.xn--fa-hia.de.", "A")]


async def test_first_mx_down_second_used(dns_port: int, smtp_server: AiosmtpdServer) -> None:
    status, lines = await _send(f"two.test:{smtp_server.port}", _config(dns_port), "u@two.test")
    assert status.status is DeliveryStatus.SENT
    assert status.relay == f"up.two.test[127.0.0.1]:{smtp_server.port}"
    assert f"connect to down.two.test[127.0.0.2]:{smtp_server.port}: Connection refused" in lines


async def test_all_mx_down_then_fallback_relay(dns_port: int, smtp_server: AiosmtpdServer) -> None:
    port = smtp_server.port
    config = _config(dns_port, smtp_fallback_relay=f"[127.0.0.1]:{port}")
    status, lines = await _send(f"alldown.test:{port}", config, "u@alldown.test")
    assert status.status is DeliveryStatus.SENT
    assert status.relay == f"127.0.0.1[127.0.0.1]:{port}"
    assert any("a.alldown.test[127.0.0.3]" in line for line in lines)
    assert any("b.alldown.test[127.0.0.4]" in line for line in lines)


async def test_all_mx_down_without_fallback_defers(dns_port: int) -> None:
    port = free_port()
    status, _ = await _send(f"alldown.test:{port}", _config(dns_port), "u@alldown.test")
    assert status.status is DeliveryStatus.DEFERRED
    assert status.dsn == "4.4.1"
    assert status.diagnostic == f"connect to b.alldown.test[127.0.0.4]:{port}: Connection refused"
    assert status.relay == "none"


async def test_relay_list_tries_destinations_in_order(
    dns_port: int, smtp_server: AiosmtpdServer
) -> None:
    dead = free_port()
    status, _ = await _send(
        f"[127.0.0.1]:{dead}, [127.0.0.1]:{smtp_server.port}", _config(dns_port)
    )
    assert status.status is DeliveryStatus.SENT
    assert status.relay.endswith(f":{smtp_server.port}")


async def test_null_mx_bounces(dns_port: int) -> None:
    status, _ = await _send("nullmx.test", _config(dns_port), "u@nullmx.test")
    assert status.status is DeliveryStatus.BOUNCED
    assert status.dsn == "5.1.10"
    assert "nullmx.test" in status.diagnostic and "does not accept mail" in status.diagnostic


async def test_nxdomain_bounces_and_relayhost_nxdomain_defers(dns_port: int) -> None:
    status, _ = await _send("nosuch.test", _config(dns_port), "u@nosuch.test")
    assert status.status is DeliveryStatus.BOUNCED
    assert "Host not found" in status.diagnostic
    # The same failure for a relay host (not the recipient's domain) is a configuration
    # problem: deferred with 4.3.5, never bounced.
    relayed, lines = await _send("[relay.nosuch.test]", _config(dns_port), "u@example.net")
    assert (relayed.status, relayed.dsn) == (DeliveryStatus.DEFERRED, "4.3.5")
    assert "warning: relayhost configuration problem" in lines


async def test_loop_detection(dns_port: int) -> None:
    config = _config(dns_port, inet_interfaces="127.0.0.1")
    status, _ = await _send("self.test", config, "u@self.test")
    assert status.status is DeliveryStatus.BOUNCED
    assert status.dsn == "5.4.6"
    assert "mail for self.test loops back to myself" in status.diagnostic


async def test_loop_handed_to_best_mx_transport(dns_port: int, smtp_server: AiosmtpdServer) -> None:
    config = _config(
        dns_port,
        inet_interfaces="127.0.0.1",
        best_mx_transport=f"smtp:[127.0.0.1]:{smtp_server.port}",
    )
    status, _ = await _send("self.test", config, "u@self.test")
    assert status.status is DeliveryStatus.SENT
    assert status.relay == f"127.0.0.1[127.0.0.1]:{smtp_server.port}"


async def test_loop_handed_to_a_master_cf_service(
    tmp_path: Path, dns_port: int, smtp_server: AiosmtpdServer
) -> None:
    """best_mx_transport may name a master.cf smtp service: its -o settings apply."""
    (tmp_path / "master.cf").write_text(
        "backup unix - - n - - smtp -o smtp_helo_name=backup.example\n"
    )
    (tmp_path / "main.cf").write_text("")
    over = {**loopback_dns(dns_port), "smtp_connect_timeout": "2s"}
    over |= {"inet_interfaces": "127.0.0.1", "smtp_helo_name": "main.example"}
    over["best_mx_transport"] = f"backup:[127.0.0.1]:{smtp_server.port}"
    status, _ = await _send("self.test", Settings.load(tmp_path, over), "u@self.test")
    assert status.status is DeliveryStatus.SENT
    assert [m.helo for m in smtp_server.messages] == ["backup.example"]
    # A name that is neither smtp, lmtp nor a service is refused (the loop then bounces).
    over["best_mx_transport"] = f"bakup:[127.0.0.1]:{smtp_server.port}"
    status, lines = await _send("self.test", Settings.load(tmp_path, over), "u@self.test")
    assert status.dsn == "5.4.6"
    assert any("best_mx_transport: unsupported value" in line for line in lines)


async def test_srv_lookup_for_submission(
    dns_zone: tuple[int, ZoneResolver], smtp_server: AiosmtpdServer
) -> None:
    port, zone = dns_zone
    with zone.lock:
        zone.records += RR.fromZone(
            f"_submission._tcp.srv.test. 300 IN SRV 0 0 {smtp_server.port} up.srv.test.\n"
            "up.srv.test. 300 IN A 127.0.0.1\n"
        )
    config = _config(port, use_srv_lookup="submission")
    status, _ = await _send("srv.test:submission", config, "u@example.net")
    assert status.status is DeliveryStatus.SENT
    assert status.relay == f"up.srv.test[127.0.0.1]:{smtp_server.port}"


class _Busy:
    """A server that greets with 421 and hangs up: a fault to count sessions with."""

    def __init__(self) -> None:
        self.contacts: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.contacts.append(writer.get_extra_info("sockname")[0])
        writer.write(b"421 4.3.2 busy\r\n")
        await writer.drain()
        writer.close()


async def test_mx_session_limit(dns_zone: tuple[int, ZoneResolver]) -> None:
    port, zone = dns_zone
    with zone.lock:
        zone.records += RR.fromZone(
            "limit.test. 300 IN MX 10 a.limit.test.\n"
            "limit.test. 300 IN MX 20 b.limit.test.\n"
            "limit.test. 300 IN MX 30 c.limit.test.\n"
            "a.limit.test. 300 IN A 127.0.0.5\n"
            "b.limit.test. 300 IN A 127.0.0.6\n"
            "c.limit.test. 300 IN A 127.0.0.7\n"
        )
    busy = _Busy()
    smtp_port = free_port()
    servers = [
        await asyncio.start_server(busy.handle, f"127.0.0.{n}", smtp_port) for n in (5, 6, 7)
    ]
    try:
        config = _config(port, smtp_mx_session_limit="2")
        status, lines = await _send(f"limit.test:{smtp_port}", config, "u@limit.test")
    finally:
        for server in servers:
            server.close()
    assert busy.contacts == ["127.0.0.5", "127.0.0.6"]
    assert status.status is DeliveryStatus.DEFERRED
    assert status.diagnostic.startswith("host b.limit.test[127.0.0.6] refused to talk to me: 421")
    assert any("a.limit.test[127.0.0.5] refused to talk to me" in line for line in lines)


async def test_srv_lookup_for_lmtp(dns_zone: tuple[int, ZoneResolver]) -> None:
    """use_srv_lookup = lmtp: ``inet:domain`` finds the LMTP servers by _lmtp._tcp SRV."""
    from aiosmtpd.controller import Controller
    from aiosmtpd.lmtp import LMTP

    from tests.support.peers.aiosmtpd_server import RecordingHandler

    class _LmtpController(Controller):
        def factory(self) -> LMTP:
            return LMTP(self.handler)

    class _Handler(RecordingHandler):
        async def handle_DATA(self, server: object, session: object, envelope: object) -> str:
            await super().handle_DATA(server, session, envelope)  # type: ignore[arg-type]
            return "250 2.0.0 <r@example.net> delivered"

    port, zone = dns_zone
    handler = _Handler(extra_keywords=("PIPELINING",))
    lmtp_port = free_port()
    controller = _LmtpController(handler, hostname="127.0.0.1", port=lmtp_port)
    controller.start()
    with zone.lock:
        zone.records += RR.fromZone(
            f"_lmtp._tcp.lmtp-srv.test. 300 IN SRV 0 0 {lmtp_port} store.lmtp-srv.test.\n"
            "store.lmtp-srv.test. 300 IN A 127.0.0.1\n"
        )
    try:
        config = _config(port, use_srv_lookup="lmtp")
        request = make_request(
            b"Subject: s\n\nx\n",
            sender="s@example.org",
            recipients=["r@example.net"],
            nexthop="inet:lmtp-srv.test",
            transport="lmtp",
        )
        (status,) = (await deliver(request, config=config)).recipients
    finally:
        controller.stop()
    assert status.status is DeliveryStatus.SENT
    assert status.relay == f"store.lmtp-srv.test[127.0.0.1]:{lmtp_port}"
    assert len(handler.messages) == 1

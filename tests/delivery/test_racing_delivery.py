"""RFC 8305 connection racing through the agent, with real sockets on loopback.

The MX host has an IPv6 address (::1) whose listener never completes a connection (its
accept backlog is full, so the kernel drops the SYNs) and an IPv4 address (127.0.0.1) with
a working server. With smtp_happy_eyeballs the IPv4 attempt starts after the attempt delay
and wins; without it, the IPv6 attempt must time out first.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest
from dnslib import RR

from mailcarrier import DeliveryStatus
from tests.support.deliver import deliver_to
from tests.support.dns import ZoneResolver, serve_zone
from tests.support.peers.aiosmtpd_server import AiosmtpdServer
from tests.support.settings import make_settings


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


pytestmark = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback")


@pytest.fixture
def black_hole_v6(smtp_server: AiosmtpdServer) -> Iterator[int]:
    """A listener on [::1] at the SMTP server's port that never accepts: connects hang."""
    listener = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
    listener.bind(("::1", smtp_server.port))
    listener.listen(0)
    fillers = []
    for _ in range(4):  # fill the accept queue; later SYNs are dropped
        f = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        f.setblocking(False)
        f.connect_ex(("::1", smtp_server.port))
        fillers.append(f)
    time.sleep(0.05)
    try:
        yield smtp_server.port
    finally:
        for f in fillers:
            f.close()
        listener.close()


@pytest.fixture
def dual_dns() -> Iterator[int]:
    zone = ZoneResolver(
        records=RR.fromZone(
            "race.test. 300 IN MX 10 mx.race.test.\n"
            "mx.race.test. 300 IN AAAA ::1\n"
            "mx.race.test. 300 IN A 127.0.0.1\n"
        )
    )
    with serve_zone(zone) as port:
        yield port


async def _deliver(port: int, dns: int, **over: str) -> tuple[object, list[str]]:
    dual_stack = {
        "dns_nameservers": f"127.0.0.1:{dns}",
        "inet_protocols": "all",
        "smtp_address_preference": "ipv6",
        "smtp_connect_timeout": "3s",
    }
    result, log = await deliver_to(
        f"race.test:{port}",
        b"x\n",
        sender="s@example.org",
        recipients=["r@race.test"],
        config=make_settings(dual_stack, **over),
    )
    (status,) = result.recipients
    return status, log.lines


async def test_racing_lets_ipv4_win_over_a_hanging_ipv6(
    smtp_server: AiosmtpdServer, black_hole_v6: int, dual_dns: int
) -> None:
    status, lines = await _deliver(
        black_hole_v6, dual_dns, smtp_happy_eyeballs="yes", smtp_happy_eyeballs_delay="0.2s"
    )
    assert status.status is DeliveryStatus.SENT  # type: ignore[attr-defined]
    assert status.relay == f"mx.race.test[127.0.0.1]:{black_hole_v6}"  # type: ignore[attr-defined]
    # The IPv6 attempt was abandoned when IPv4 won: it is not a failure to report.
    assert not any("::1" in line and "timed out" in line for line in lines)


async def test_without_racing_ipv6_times_out_first(
    smtp_server: AiosmtpdServer, black_hole_v6: int, dual_dns: int
) -> None:
    status, lines = await _deliver(black_hole_v6, dual_dns, smtp_connect_timeout="1s")
    assert status.status is DeliveryStatus.SENT  # type: ignore[attr-defined]
    assert any("connect to mx.race.test[::1]" in line and "timed out" in line for line in lines)

"""smtp_bind_address / smtp_bind_address6: the client's source address, per family."""

from __future__ import annotations

import asyncio
import socket

import pytest

from mailcarrier import DeliveryStatus, deliver, make_request
from mailcarrier.errors import ConfigError
from tests.support.settings import make_settings


async def _source_address(host: str, **over: str) -> tuple[str, str]:
    """Connect to a server on `host` that records the client address and refuses (421)."""
    seen: list[str] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(writer.get_extra_info("peername")[0])
        writer.write(b"421 4.3.2 not today\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, host, 0)
    port = server.sockets[0].getsockname()[1]
    nexthop = f"[ipv6:{host}]:{port}" if ":" in host else f"[{host}]:{port}"
    try:
        request = make_request(b"x\n", sender="", recipients=["r@example.net"], nexthop=nexthop)
        result = await deliver(request, config=make_settings(over))
    finally:
        server.close()
        await server.wait_closed()
    (status,) = result.recipients
    assert status.status is DeliveryStatus.DEFERRED
    return seen[0], status.diagnostic


async def test_ipv4_bind_address() -> None:
    source, diagnostic = await _source_address("127.0.0.1", smtp_bind_address="127.0.0.2")
    assert source == "127.0.0.2"
    assert "refused to talk to me: 421 4.3.2 not today" in diagnostic


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
async def test_ipv6_uses_bind_address6_not_the_ipv4_one() -> None:
    source, _ = await _source_address(
        "::1", smtp_bind_address="127.0.0.2", smtp_bind_address6="::1"
    )
    assert source == "::1"


async def test_unusable_bind_address_defers_with_the_reason() -> None:
    request = make_request(b"x\n", sender="", recipients=["r@example.net"], nexthop="[127.0.0.1]:9")
    config = make_settings(smtp_bind_address="192.0.2.1")
    (status,) = (await deliver(request, config=config)).recipients
    assert status.status is DeliveryStatus.DEFERRED
    assert status.diagnostic.startswith("connect to 127.0.0.1[127.0.0.1]:9: ")


def test_bind_address_must_be_an_address() -> None:
    with pytest.raises(ConfigError, match="smtp_bind_address"):
        make_settings(smtp_bind_address="not an address")

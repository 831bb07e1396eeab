"""Reuse of TLS sessions (smtp_tls_connection_reuse, or the policy's connection_reuse=yes).

A TLS session taken from the connection cache is parked again after the transaction under
keys that include its TLS policy, so it goes on being reused, message after message, with
one TLS handshake; and it is never shared with a destination whose TLS policy, or whose
certificate check (the names a "verify" certificate must match), differs."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller

from mailcarrier import DeliveryStatus
from mailcarrier.delivery.agent import DeliveryAgent
from tests.support.deliver import caching_agent, deliver_via
from tests.support.peers.aiosmtpd_server import RecordingHandler, free_port
from tests.support.settings import make_settings
from tests.support.tls import SECRET, Pki, StartServer, Zone, add_mx, tls_settings
from tests.support.tls_server import TlsServerScript

_CONN_USE = re.compile(r", conn_use=(\d+), ")


async def _deliver(agent: DeliveryAgent, nexthop: str) -> Any:
    body = b"Subject: reuse\n\n" + SECRET + b"\n"
    result = await deliver_via(
        agent, nexthop, body, sender="s@example.org", recipients=["u@tls.test"]
    )
    (status,) = result.recipients
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    return status


@pytest.mark.parametrize("how", ["parameter", "policy"])
async def test_tls_session_is_reused_for_many_messages(
    pki: Pki, tls_server: StartServer, tmp_path: Path, how: str
) -> None:
    server = tls_server(TlsServerScript(pki.server_context(pki.leaf("127.0.0.1"))))
    nexthop = f"[127.0.0.1]:{server.port}"
    if how == "parameter":
        params = {"smtp_tls_security_level": "encrypt", "smtp_tls_connection_reuse": "yes"}
    else:
        policy = tmp_path / "tls_policy"
        policy.write_text(f"{nexthop} encrypt connection_reuse=yes\n")
        params = {"smtp_tls_policy_maps": f"texthash:{policy}"}
    config = make_settings({"smtp_tls_loglevel": "1", "smtp_connect_timeout": "3s"}, params)
    agent, cache, log = caching_agent(config)
    try:
        uses = [(await _deliver(agent, nexthop)).conn_use for _ in range(5)]
    finally:
        await cache.close_all()
    assert uses == [1, 2, 3, 4, 5]
    assert server.capture.connections == 1
    assert server.capture.tls_sessions == 1  # one TLS handshake for the five messages
    assert len(server.capture.messages) == 5
    assert SECRET not in bytes(server.capture.plain)
    established = [x for x in log.lines if "TLS connection established to" in x]
    assert len(established) == 1, log.lines
    lines = [x for x in log.lines if ": to=<u@tls.test>" in x]
    # Postfix shows conn_use= from the second use of a connection on.
    shown = [m.group(1) if (m := _CONN_USE.search(x)) else None for x in lines]
    assert shown == [None, "2", "3", "4", "5"]
    assert all(", tls=encrypt, dsn=2.0.0, status=sent" in x for x in lines)


class _Counting(RecordingHandler):
    def __init__(self) -> None:
        super().__init__()
        self.ehlo = 0

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        self.ehlo += 1
        return await super().handle_EHLO(server, session, envelope, hostname, responses)


@pytest.mark.parametrize(
    ("level", "expected"),
    [("encrypt", [1, 2, 3]), ("verify", [1, 2, 1])],
)
async def test_reparked_tls_session_keys_carry_the_tls_policy(
    pki: Pki, dns_zone: Zone, level: str, expected: list[int]
) -> None:
    """After a reuse by destination, the session is parked again under its address key with
    the TLS policy: another destination on the same server reuses it at "encrypt", but not
    at "verify", where the certificate was checked against the other host's name."""
    dns_port, zone = dns_zone
    add_mx(zone, "one.tls.test", "mx1.tls.test")
    add_mx(zone, "two.tls.test", "mx2.tls.test")
    handler = _Counting()
    port = free_port()
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        tls_context=pki.server_context(pki.leaf("mx1.tls.test", "mx2.tls.test")),
        require_starttls=True,
    )
    controller.start()
    try:
        config = tls_settings(
            dns_port,
            smtp_tls_security_level=level,
            smtp_tls_CAfile=pki.cafile(),
            smtp_tls_connection_reuse="yes",
        )
        agent, cache, _ = caching_agent(config)
        try:
            uses = [
                (await _deliver(agent, f"one.tls.test:{port}")).conn_use,
                (await _deliver(agent, f"one.tls.test:{port}")).conn_use,
                (await _deliver(agent, f"two.tls.test:{port}")).conn_use,
            ]
        finally:
            await cache.close_all()
    finally:
        controller.stop()
    assert uses == expected
    assert len(handler.messages) == 3
    connections = 1 if expected[-1] > 1 else 2
    assert handler.ehlo == 2 * connections  # EHLO before and after STARTTLS

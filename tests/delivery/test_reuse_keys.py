"""The connection-cache keys of a destination and the message's TLS rules (delivery/reuse.py).

A session parked by ordinary mail is never taken by a REQUIRETLS message (RFC 8689), nor a
session set up for a REQUIRETLS message by ordinary mail (Postfix puts the REQUIRETLS level in
its reuse keys: smtp_key.c SMTP_KEY_FLAG_REQTLS_LEVEL); and a session opened under one
MTA-STS policy of a destination is never reused under another (the destination key carries
the policy, looked up before the cache is). Real servers: aiosmtpd with STARTTLS and
REQUIRETLS, trustme certificates, the loopback dnslib zone and the MTA-STS policy server.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

import mailcarrier
from mailcarrier import DeliveryStatus
from mailcarrier.config.settings import Settings
from mailcarrier.delivery.agent import DeliveryAgent
from mailcarrier.status import RecipientStatus
from tests.support.deliver import caching_agent
from tests.support.peers.aiosmtpd_requiretls import RequireTlsServers
from tests.support.sts_server import PolicyAnswer, PolicyServer, add_policy_host, policy_text
from tests.support.tls import Pki, Zone, add_mx, tls_field, tls_settings

BODY = b"Subject: reuse\n\nBODY\n"


async def _send(
    agent: DeliveryAgent, nexthop: str, config: Settings, *, requiretls: bool
) -> RecipientStatus:
    request = mailcarrier.make_request(
        BODY,
        sender="s@example.org",
        recipients=["u@example.net"],
        nexthop=nexthop,
        requiretls=requiretls,
        queue_id="4Qx1Ab2Cd3",
        config=config,
    )
    result = await agent.deliver(request)
    return result.recipients[0]


async def test_requiretls_never_takes_a_plaintext_session_of_ordinary_mail(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(None, "mx.p.signed.test")  # no STARTTLS at all
    add_mx(zone, "p.signed.test", "mx.p.signed.test")
    nexthop = f"p.signed.test:{server.port}"
    config = tls_settings(port, smtp_dns_support_level="dnssec", smtp_tls_security_level="may")
    agent, cache, _log = caching_agent(config)
    try:
        plain = await _send(agent, nexthop, config, requiretls=False)
        assert plain.status is DeliveryStatus.SENT, plain.diagnostic
        assert len(cache) == 1  # the plaintext session is parked
        secret = await _send(agent, nexthop, config, requiretls=True)
    finally:
        await cache.close_all()
    # Not sent over the parked plaintext session: bounced, as on a fresh one.
    assert (secret.status, secret.dsn) == (DeliveryStatus.BOUNCED, "5.7.30"), secret.diagnostic
    assert server.wire.mail == ["FROM:<s@example.org>"]
    assert len(server.messages) == 1


async def test_ordinary_mail_never_takes_a_requiretls_session(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(pki, "mx.r.signed.test")
    add_mx(zone, "r.signed.test", "mx.r.signed.test")
    nexthop = f"r.signed.test:{server.port}"
    config = tls_settings(
        port,
        smtp_dns_support_level="dnssec",
        smtp_tls_security_level="verify",
        smtp_tls_CAfile=pki.cafile(),
        smtp_tls_connection_reuse="yes",
    )
    agent, cache, log = caching_agent(config)
    try:
        first = await _send(agent, nexthop, config, requiretls=True)
        second = await _send(agent, nexthop, config, requiretls=False)
        third = await _send(agent, nexthop, config, requiretls=True)
    finally:
        await cache.close_all()
    for status in (first, second, third):
        assert status.status is DeliveryStatus.SENT, status.diagnostic
    # Ordinary mail went over a session of its own, without REQUIRETLS on MAIL FROM; the
    # second REQUIRETLS message reused the first one's session (conn_use 2).
    assert server.wire.mail == [
        "FROM:<s@example.org> REQUIRETLS",
        "FROM:<s@example.org>",
        "FROM:<s@example.org> REQUIRETLS",
    ]
    assert (first.conn_use, second.conn_use, third.conn_use) == (1, 1, 2)
    lines = [x for x in log.lines if ": to=<" in x]
    assert [tls_field([x]) for x in lines] == [
        "verify/requiretls",
        "verify",
        "verify/requiretls",
    ]


@pytest.fixture
def policy_server(pki: Pki) -> Iterator[PolicyServer]:
    server = PolicyServer(pki.server_context(pki.leaf("mta-sts.reuse.test", "mta-sts.same.test")))
    yield server
    server.stop()


async def test_a_session_is_never_reused_under_another_mta_sts_policy(
    pki: Pki,
    dns_zone: Zone,
    servers: RequireTlsServers,
    policy_server: PolicyServer,
    tmp_path: Path,
) -> None:
    port, zone = dns_zone
    # The MX host's certificate is for another name: fine at "may", refused under enforce.
    server = servers.start(pki, "mx.elsewhere.test")
    add_mx(zone, "reuse.test", "mx.reuse.test")
    nexthop = f"reuse.test:{server.port}"
    config = tls_settings(
        port,
        smtp_tls_security_level="may",
        smtp_tls_CAfile=pki.cafile(),
        smtp_tls_connection_reuse="yes",
        smtp_mta_sts_https_port=str(policy_server.port),
        data_directory=str(tmp_path / "data"),
    )
    agent, cache, log = caching_agent(config)
    try:
        before = await _send(agent, nexthop, config, requiretls=False)
        assert before.status is DeliveryStatus.SENT, before.diagnostic
        assert len(cache) == 1  # the opportunistic TLS session is parked
        # The domain now publishes an MTA-STS policy in enforce mode.
        add_policy_host(zone, "reuse.test")
        policy_server.answers["mta-sts.reuse.test"] = PolicyAnswer(
            policy_text("enforce", "mx.reuse.test")
        )
        after = await _send(agent, nexthop, config, requiretls=False)
    finally:
        await cache.close_all()
    # Not sent over the session made under no policy: a fresh session, refused under enforce.
    assert (after.status, after.dsn) == (DeliveryStatus.DEFERRED, "4.7.5"), after.diagnostic
    assert len(server.messages) == 1
    lines = [x for x in log.lines if ": to=<" in x]
    assert [tls_field([x]) for x in lines] == ["may", "!sts"]


async def test_sessions_are_reused_under_the_same_mta_sts_policy(
    pki: Pki,
    dns_zone: Zone,
    servers: RequireTlsServers,
    policy_server: PolicyServer,
    tmp_path: Path,
) -> None:
    port, zone = dns_zone
    server = servers.start(pki, "mx.same.test")
    add_mx(zone, "same.test", "mx.same.test")
    add_policy_host(zone, "same.test")
    policy_server.answers["mta-sts.same.test"] = PolicyAnswer(
        policy_text("enforce", "mx.same.test")
    )
    nexthop = f"same.test:{server.port}"
    config = tls_settings(
        port,
        smtp_tls_CAfile=pki.cafile(),
        smtp_tls_connection_reuse="yes",
        smtp_mta_sts_https_port=str(policy_server.port),
        data_directory=str(tmp_path / "data"),
    )
    agent, cache, log = caching_agent(config)
    try:
        uses = [(await _send(agent, nexthop, config, requiretls=False)) for _ in range(3)]
    finally:
        await cache.close_all()
    assert [(u.status, u.conn_use) for u in uses] == [(DeliveryStatus.SENT, n) for n in (1, 2, 3)]
    lines = [x for x in log.lines if ": to=<" in x]
    assert [tls_field([x]) for x in lines] == ["sts", "sts", "sts"]

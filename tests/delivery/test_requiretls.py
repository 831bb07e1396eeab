"""REQUIRETLS (RFC 8689) deliveries against aiosmtpd with STARTTLS on loopback, names from the
loopback dnslib zone (AD bit set for names under signed.test), trustme certificates.

A REQUIRETLS message is sent only over verified TLS to a server found by a DNSSEC-validated
MX that announces REQUIRETLS after STARTTLS, with REQUIRETLS on MAIL FROM; any shortfall
bounces it with 5.7.30 (delivery/requiretls_step.py). "TLS-Required: No" lowers the TLS
policy of its message only, and not below what REQUIRETLS asks."""

from __future__ import annotations

import pytest

import mailcarrier
from mailcarrier import DeliveryStatus
from mailcarrier.config.settings import Settings
from mailcarrier.status import RecipientStatus
from tests.support.deliver import deliver_request
from tests.support.peers.aiosmtpd_requiretls import (
    RequireTlsAiosmtpdServer,
    RequireTlsHandler,
    RequireTlsServers,
)
from tests.support.tls import Pki, Zone, add_mx, tls_field, tls_settings

BODY = b"Subject: secret\n\nTOP-SECRET-BODY\n"


def _config(port: int, pki: Pki, **params: str) -> Settings:
    params.setdefault("smtp_tls_security_level", "verify")
    return tls_settings(
        port, smtp_dns_support_level="dnssec", smtp_tls_CAfile=pki.cafile(), **params
    )


async def _send(
    nexthop: str,
    config: Settings,
    *,
    requiretls: bool = True,
    body: bytes = BODY,
) -> tuple[RecipientStatus, list[str]]:
    request = mailcarrier.make_request(
        body,
        sender="s@example.org",
        recipients=["u@example.net"],
        nexthop=nexthop,
        requiretls=requiretls,
        queue_id="4Qx1Ab2Cd3",
        config=config,
    )
    result, log = await deliver_request(request, config=config)
    return result.recipients[0], log.lines


async def test_delivered_with_requiretls_on_mail_from(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(pki, "mx.a.signed.test")
    add_mx(zone, "a.signed.test", "mx.a.signed.test")
    status, lines = await _send(f"a.signed.test:{server.port}", _config(port, pki))
    assert (status.status, status.dsn) == (DeliveryStatus.SENT, "2.0.0"), status.diagnostic
    assert server.wire.mail == ["FROM:<s@example.org> REQUIRETLS"]
    assert server.messages[0].content.endswith(b"TOP-SECRET-BODY\r\n")
    assert tls_field(lines) == "verify/requiretls"


async def test_bounced_when_the_server_lacks_requiretls(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(pki, "mx.b.signed.test", offer=False)
    add_mx(zone, "b.signed.test", "mx.b.signed.test")
    status, lines = await _send(f"b.signed.test:{server.port}", _config(port, pki))
    assert (status.status, status.dsn, status.diagnostic) == (
        DeliveryStatus.BOUNCED,
        "5.7.30",
        "Sender requested REQUIRETLS, but no server was found that supports REQUIRETLS. "
        "The last attempted server was mx.b.signed.test[127.0.0.1]",
    )
    assert server.wire.mail == [] and server.messages == []
    assert tls_field(lines) == "verify/!requiretls:none"


async def test_bounced_when_tls_is_not_offered(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(None, "mx.c.signed.test")
    add_mx(zone, "c.signed.test", "mx.c.signed.test")
    status, lines = await _send(f"c.signed.test:{server.port}", _config(port, pki))
    assert (status.status, status.dsn, status.diagnostic) == (
        DeliveryStatus.BOUNCED,
        "5.7.30",
        "Sender requested REQUIRETLS, but TLS service was not offered by host "
        "mx.c.signed.test[127.0.0.1]",
    )
    assert server.wire.mail == []
    assert tls_field(lines) == "!verify/!requiretls:nostarttls"


async def test_bounced_when_the_certificate_does_not_match(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(pki, "mx.d.signed.test", cert_name="elsewhere.example")
    add_mx(zone, "d.signed.test", "mx.d.signed.test")
    status, lines = await _send(f"d.signed.test:{server.port}", _config(port, pki))
    assert (status.status, status.dsn, status.diagnostic) == (
        DeliveryStatus.BOUNCED,
        "5.7.30",
        "Sender requested REQUIRETLS, but no matching server certificate was found. "
        "The last attempted server was mx.d.signed.test[127.0.0.1]",
    )
    assert server.wire.mail == []
    assert tls_field(lines) == "!verify/!requiretls:nocertmatch"


async def test_bounced_when_the_certificate_is_not_trusted(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers, tmp_path: object
) -> None:
    port, zone = dns_zone
    server = servers.start(pki, "mx.u.signed.test")
    add_mx(zone, "u.signed.test", "mx.u.signed.test")
    other = Pki(__import__("trustme").CA(), pki.tmp / "other")
    other.tmp.mkdir()
    config = _config(port, other)  # the server's CA is not trusted
    status, _ = await _send(f"u.signed.test:{server.port}", config)
    assert (status.status, status.dsn) == (DeliveryStatus.BOUNCED, "5.7.30")
    assert status.diagnostic == (
        "Sender requested REQUIRETLS, but no trusted server certificate was found. "
        "The last attempted server was mx.u.signed.test[127.0.0.1]"
    )
    assert server.wire.mail == []


async def test_bounced_when_the_mx_is_not_dnssec_valid(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    """The MX answer of e.tls.test has no AD bit: the server is never contacted."""
    port, zone = dns_zone
    server = servers.start(pki, "mx.e.signed.test")
    add_mx(zone, "e.tls.test", "mx.e.signed.test")
    status, lines = await _send(f"e.tls.test:{server.port}", _config(port, pki))
    assert (status.status, status.dsn, status.diagnostic) == (
        DeliveryStatus.BOUNCED,
        "5.7.30",
        "Sender requested REQUIRETLS, but the MX host name mx.e.signed.test was not found "
        "securely (no DNSSEC-validated MX record and no MTA-STS policy). The last attempted "
        "server was mx.e.signed.test",
    )
    assert status.relay == "mx.e.signed.test[127.0.0.1]:" + str(server.port)
    assert server.wire.mail == [] and server.messages == []
    assert tls_field(lines) == "verify?/!requiretls:nocertmatch"


async def test_next_mx_is_tried_before_bouncing(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    """A 5.7.30 at the first MX does not stop the second one (SOFT_NON_FINAL): both MX
    hosts are tried (one server answers for both names), then the message bounces."""
    port, zone = dns_zone
    context = pki.server_context(pki.leaf("mx1.f.signed.test", "mx2.f.signed.test"))
    server = RequireTlsAiosmtpdServer(RequireTlsHandler(offer_requiretls=False), context)
    servers.started.append(server.start())
    add_mx(zone, "f.signed.test", "mx1.f.signed.test")
    add_mx(zone, "f.signed.test", "mx2.f.signed.test")
    config = _config(port, pki, smtp_randomize_addresses="no")
    status, lines = await _send(f"f.signed.test:{server.port}", config)
    assert (status.status, status.dsn) == (DeliveryStatus.BOUNCED, "5.7.30")
    first, second = ("mx1.f.signed.test", "mx2.f.signed.test")
    if status.diagnostic.endswith(f"{first}[127.0.0.1]"):
        first, second = second, first
    assert status.diagnostic.endswith(f"The last attempted server was {second}[127.0.0.1]")
    assert (
        "4Qx1Ab2Cd3: Sender requested REQUIRETLS, but no server was found that "
        f"supports REQUIRETLS. The last attempted server was {first}[127.0.0.1]"
    ) in lines, lines


async def test_level_without_certificate_matching_bounces(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(pki, "mx.g.signed.test")
    add_mx(zone, "g.signed.test", "mx.g.signed.test")
    config = _config(port, pki, smtp_tls_security_level="may")
    status, _ = await _send(f"g.signed.test:{server.port}", config)
    assert (status.status, status.dsn, status.diagnostic) == (
        DeliveryStatus.BOUNCED,
        "5.7.30",
        "Sender requested REQUIRETLS, but my configured TLS security level 'may' disables "
        "certificate matching. The last attempted server was mx.g.signed.test",
    )
    assert server.wire.mail == []


async def test_opportunistic_policy_sends_without_requiretls_and_with_ret_hdrs(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(pki, "mx.h.signed.test", offer=False)
    add_mx(zone, "h.signed.test", "mx.h.signed.test")
    config = _config(port, pki, smtp_requiretls_policy="opportunistic")
    status, lines = await _send(f"h.signed.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert server.wire.mail == ["FROM:<s@example.org> RET=HDRS"]
    assert tls_field(lines) == "verify/requiretls:none"
    assert any(
        "4Qx1Ab2Cd3: Sender requested REQUIRETLS, but REQUIRETLS support was not offered by "
        "host mx.h.signed.test[127.0.0.1]" in line
        for line in lines
    )


async def test_default_policy_is_opportunistic_for_address_literals(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    """Postfix's default smtp_requiretls_policy: cidr:{0.0.0.0/0 opportunistic} for a
    [literal] next hop; REQUIRETLS is still sent to a server that has it."""
    port, _ = dns_zone
    server = servers.start(pki, "localhost", cert_name="127.0.0.1")
    config = _config(port, pki, smtp_tls_security_level="encrypt")
    status, lines = await _send(f"[127.0.0.1]:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert server.wire.mail == ["FROM:<s@example.org> REQUIRETLS"]
    assert tls_field(lines) == "encrypt/requiretls:nocertmatch"


async def test_without_requiretls_nothing_changes(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(pki, "mx.i.signed.test")
    add_mx(zone, "i.signed.test", "mx.i.signed.test")
    status, lines = await _send(
        f"i.signed.test:{server.port}", _config(port, pki), requiretls=False
    )
    assert status.status is DeliveryStatus.SENT
    assert server.wire.mail == ["FROM:<s@example.org>"]
    assert tls_field(lines) == "verify"


async def test_requiretls_enable_no_ignores_the_request(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(pki, "mx.j.signed.test", offer=False)
    add_mx(zone, "j.tls.test", "mx.j.signed.test")  # insecure MX: would bounce
    config = _config(port, pki, requiretls_enable="no")
    status, _ = await _send(f"j.tls.test:{server.port}", config)
    assert status.status is DeliveryStatus.SENT, status.diagnostic
    assert server.wire.mail == ["FROM:<s@example.org>"]


# --- TLS-Required: No ------------------------------------------------------------------------
NOT_REQUIRED = b"Subject: no tls needed\nTLS-Required: No\n\nhello\n"


@pytest.mark.parametrize("level", ["encrypt", "verify"])
async def test_tls_required_no_lowers_the_level_to_may(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers, level: str
) -> None:
    port, zone = dns_zone
    server = servers.start(None, "mx.k.signed.test")
    add_mx(zone, "k.signed.test", "mx.k.signed.test")
    config = _config(port, pki, smtp_tls_security_level=level)
    nexthop = f"k.signed.test:{server.port}"
    plain, _ = await _send(nexthop, config, requiretls=False, body=BODY)
    assert (plain.status, plain.dsn) == (DeliveryStatus.DEFERRED, "4.7.4")
    lowered, lines = await _send(nexthop, config, requiretls=False, body=NOT_REQUIRED)
    assert lowered.status is DeliveryStatus.SENT, lowered.diagnostic
    assert tls_field(lines) == "may:none"
    # The header stays in the message.
    assert b"TLS-Required: No\r\n" in server.messages[0].content


async def test_tls_required_no_does_not_lower_requiretls(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(None, "mx.l.signed.test")
    add_mx(zone, "l.signed.test", "mx.l.signed.test")
    status, _ = await _send(f"l.signed.test:{server.port}", _config(port, pki), body=NOT_REQUIRED)
    assert (status.status, status.dsn) == (DeliveryStatus.BOUNCED, "5.7.30")
    assert server.messages == []


async def test_tls_required_enable_no_ignores_the_header(
    pki: Pki, dns_zone: Zone, servers: RequireTlsServers
) -> None:
    port, zone = dns_zone
    server = servers.start(None, "mx.m.signed.test")
    add_mx(zone, "m.signed.test", "mx.m.signed.test")
    config = _config(port, pki, tls_required_enable="no")
    status, _ = await _send(
        f"m.signed.test:{server.port}", config, requiretls=False, body=NOT_REQUIRED
    )
    assert (status.status, status.dsn) == (DeliveryStatus.DEFERRED, "4.7.4")

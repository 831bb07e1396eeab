"""Destination syntax of smtp(8)/lmtp(8): every form, and clear errors for bad ones."""

from __future__ import annotations

import pytest

from mailcarrier.errors import UsageError
from mailcarrier.routing.nexthop import (
    NextHopKind,
    parse_nexthop,
    resolve_port,
    split_destinations,
)


@pytest.mark.parametrize(
    ("text", "kind", "host", "port"),
    [
        ("example.com", NextHopKind.DOMAIN, "example.com", 25),
        ("Example.COM.", NextHopKind.DOMAIN, "example.com", 25),
        ("example.com:2525", NextHopKind.DOMAIN, "example.com", 2525),
        ("example.com:submission", NextHopKind.DOMAIN, "example.com", 587),
        ("[mail.example.com]", NextHopKind.HOST, "mail.example.com", 25),
        ("[mail.example.com]:587", NextHopKind.HOST, "mail.example.com", 587),
        ("[192.0.2.1]", NextHopKind.ADDRESS, "192.0.2.1", 25),
        ("[192.0.2.1]:2525", NextHopKind.ADDRESS, "192.0.2.1", 2525),
        ("[ipv6:2001:db8::1]", NextHopKind.ADDRESS, "2001:db8::1", 25),
        ("[ipv6:::1]:2525", NextHopKind.ADDRESS, "::1", 2525),
        ("[IPv6:2001:DB8:0::1]:25", NextHopKind.ADDRESS, "2001:db8::1", 25),
        # Internationalized names are kept as given; lookups convert them (idn.py).
        ("faß.de", NextHopKind.DOMAIN, "faß.de", 25),
        ("FAß.de:2525", NextHopKind.DOMAIN, "faß.de", 2525),
        ("[mx.bücher.example]", NextHopKind.HOST, "mx.bücher.example", 25),
    ],
)
def test_smtp_forms(text: str, kind: NextHopKind, host: str, port: int) -> None:
    hop = parse_nexthop(text)
    assert (hop.kind, hop.host, hop.port) == (kind, host, port)
    assert hop.text == text
    assert hop.is_literal is (kind is not NextHopKind.DOMAIN)


@pytest.mark.parametrize(
    ("text", "kind", "host", "port"),
    [
        ("unix:/var/run/lmtp", NextHopKind.UNIX, "/var/run/lmtp", 0),
        ("unix:private/dovecot-lmtp", NextHopKind.UNIX, "private/dovecot-lmtp", 0),
        ("inet:mail.example.com", NextHopKind.HOST, "mail.example.com", 24),
        ("inet:mail.example.com:2424", NextHopKind.HOST, "mail.example.com", 2424),
        ("inet:[192.0.2.7]", NextHopKind.ADDRESS, "192.0.2.7", 24),
        ("inet:[192.0.2.7]:2424", NextHopKind.ADDRESS, "192.0.2.7", 2424),
        ("inet:[ipv6:::1]:2424", NextHopKind.ADDRESS, "::1", 2424),
        ("inet:127.0.0.1:2424", NextHopKind.ADDRESS, "127.0.0.1", 2424),
        ("mail.example.com:2424", NextHopKind.HOST, "mail.example.com", 2424),
        ("[127.0.0.1]:2424", NextHopKind.ADDRESS, "127.0.0.1", 2424),
        ("inet:lmtp.bücher.example", NextHopKind.HOST, "lmtp.bücher.example", 24),
    ],
)
def test_lmtp_forms(text: str, kind: NextHopKind, host: str, port: int) -> None:
    hop = parse_nexthop(text, transport="lmtp")
    assert (hop.kind, hop.host, hop.port) == (kind, host, port)


def test_lmtp_default_port_comes_from_lmtp_tcp_port_without_a_service_entry(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    def no_services(name: str, proto: str) -> int:
        raise OSError("no such service")

    monkeypatch.setattr(socket, "getservbyname", no_services)
    assert parse_nexthop("inet:host.example", transport="lmtp", lmtp_tcp_port="2003").port == 2003


@pytest.mark.parametrize(
    "text",
    [
        "",
        "[127.0.0.1",
        "[127.0.0.1]x",
        "[ipv6:not-an-address]",
        "[bad_host!]",
        "exa mple.com",
        "example.com:0",
        "example.com:70000",
        "example.com:nosuchservice",
        "-bad-.example",
        "ab--c.bücher.example",  # IDNA refuses it
        "[" + "\u00fc" * 70 + ".example]",  # a label over 63 octets in A-labels
        "unix:/path",
        "<a@b>",
    ],
)
def test_bad_smtp_destinations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_nexthop(text)
    if text:
        assert text.strip() in str(info.value) or "destination" in str(info.value)


@pytest.mark.parametrize("text", ["unix:", "inet:", "inet:[::1", "inet:[ipv6:zz]"])
def test_bad_lmtp_destinations_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_nexthop(text, transport="lmtp")


def test_unknown_transport() -> None:
    with pytest.raises(UsageError, match="unknown transport"):
        parse_nexthop("example.com", transport="uucp")


def test_lists_split_on_commas_and_white_space() -> None:
    assert split_destinations(" [a.example]:587, b.example\n\t[192.0.2.1] ,") == [
        "[a.example]:587",
        "b.example",
        "[192.0.2.1]",
    ]


def test_ports() -> None:
    assert resolve_port("25", what="x") == 25
    assert resolve_port("smtp", what="x") == 25
    with pytest.raises(UsageError, match="out of range"):
        resolve_port("65536", what="x")

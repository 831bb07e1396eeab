"""config/listen.py: the http_listen grammar, by example and with hypothesis."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.config.listen import ListenAddress, parse_listen


@pytest.mark.parametrize(
    ("text", "host", "port", "loopback"),
    [
        ("127.0.0.1:9154", "127.0.0.1", 9154, True),
        (" localhost:0 ", "127.0.0.1", 0, True),
        ("LOCALHOST:80", "127.0.0.1", 80, True),
        ("[::1]:9154", "::1", 9154, True),
        ("[::]:9154", "::", 9154, False),
        ("0.0.0.0:9154", "0.0.0.0", 9154, False),
        ("192.0.2.7:65535", "192.0.2.7", 65535, False),
        ("[2001:DB8::1]:1", "2001:db8::1", 1, False),
    ],
)
def test_addresses(text: str, host: str, port: int, loopback: bool) -> None:
    address = parse_listen(text)
    assert (address.host, address.port, address.loopback) == (host, port, loopback)


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", '"" is not ADDRESS:PORT'),
        ("9154", '"9154" is not ADDRESS:PORT'),
        (":9154", '":9154" is not ADDRESS:PORT'),
        ("::1:9154", '"::1:9154": an IPv6 address goes in brackets: [ADDRESS]:PORT'),
        ("[::1]", '"[::1]" is not [IPV6]:PORT'),
        ("host.example:80", '"host.example" in "host.example:80" is not a numerical address'),
        ("127.0.0.1:http", '"http" in "127.0.0.1:http" is not a port number (0 to 65535)'),
        ("127.0.0.1:-1", '"-1" in "127.0.0.1:-1" is not a port number'),
        ("127.0.0.1:65536", '"65536" in "127.0.0.1:65536" is not a port number'),
    ],
)
def test_refusals(text: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        parse_listen(text)
    assert reason in str(caught.value)


_ADDRESSES = st.one_of(st.ip_addresses(v=4).map(str), st.ip_addresses(v=6).map(lambda a: f"[{a}]"))


@given(_ADDRESSES, st.integers(0, 65535))
def test_every_address_and_port_round_trips(host: str, port: int) -> None:
    address = parse_listen(f"{host}:{port}")
    assert address == parse_listen(str(address))
    assert address.port == port
    assert address.loopback == ipaddress.ip_address(host.strip("[]")).is_loopback


@given(st.text(max_size=40))
def test_any_text_is_an_address_or_one_value_error(text: str) -> None:
    try:
        address = parse_listen(text)
    except ValueError as exc:
        assert str(exc) and "\n" not in str(exc)
    else:
        assert isinstance(address, ListenAddress) and 0 <= address.port <= 65535

"""Extra value checks declared in the parameter table (Param.check)."""

from __future__ import annotations

import pytest

from mailcarrier.config import Settings
from mailcarrier.errors import ConfigError


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("smtp_bind_address", "::1", "not a numerical IPv4 address"),
        ("smtp_bind_address", "host.example", "not a numerical IPv4 address"),
        ("lmtp_bind_address", "300.1.1.1", "not a numerical IPv4 address"),
        ("smtp_bind_address6", "127.0.0.1", "not a numerical IPv6 address"),
        ("smtp_line_length_limit", "1", "too small"),
        ("lmtp_line_length_limit", "1", "too small"),
    ],
)
def test_bad_values_name_the_parameter(name: str, value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        Settings.defaults().with_overrides({name: value})
    assert info.value.parameter == name


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("smtp_bind_address", ""),
        ("smtp_bind_address", "192.0.2.7"),
        ("smtp_bind_address6", "2001:db8::7"),
        ("smtp_line_length_limit", "0"),
        ("smtp_line_length_limit", "2"),
    ],
)
def test_good_values(name: str, value: str) -> None:
    assert Settings.defaults().with_overrides({name: value}).value(name) is not None

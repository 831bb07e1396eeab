"""fleetsyntax.py: rates, per-destination limits, server URLs and password sources, and the
errors settings.py reports for them with the parameter and file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.config.fleetsyntax import (
    DestinationLimits,
    Rate,
    check_password_source,
    parse_limits,
    parse_rate,
    parse_server,
)
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "rate"),
    [
        ("600/1h", Rate(600, 3600.0)),
        ("10/s", Rate(10, 1.0)),
        ("5/30s", Rate(5, 30.0)),
        ("1/2d", Rate(1, 172800.0)),
        ("100/1H", Rate(100, 3600.0)),
        ("7/45", Rate(7, 45.0)),
    ],
)
def test_rates(text: str, rate: Rate) -> None:
    assert parse_rate(text) == rate


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("600", '"600" is not a rate (want COUNT/PERIOD, e.g. 600/1h)'),
        ("600/", '"600/" has no period (want COUNT/PERIOD, e.g. 600/1h)'),
        ("0/1h", '"0/1h": the count and the period must be above zero'),
        ("5/0s", '"5/0s": the count and the period must be above zero'),
        ("5/1y", '"5/1y" is not a rate (want COUNT/PERIOD, e.g. 600/1h)'),
        ("-5/1h", '"-5/1h" is not a rate (want COUNT/PERIOD, e.g. 600/1h)'),
    ],
)
def test_bad_rates(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_rate(text)
    assert str(raised.value) == message


@given(st.integers(1, 10**6), st.integers(1, 10**4), st.sampled_from("smhdw"))
def test_rate_grammar(count: int, number: int, unit: str) -> None:
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[unit]
    rate = parse_rate(f"{count}/{number}{unit}")
    assert (rate.count, rate.period, rate.burst) == (count, float(number * seconds), 1)
    assert rate.interval == pytest.approx(number * seconds / count)


def test_limits() -> None:
    assert parse_limits("connections=2 rate=100/1h burst=10") == DestinationLimits(
        2, Rate(100, 3600.0, 10)
    )
    assert parse_limits("connections=0") == DestinationLimits(0, None)
    assert parse_limits("rate=5/1m, connections=3") == DestinationLimits(3, Rate(5, 60.0))
    assert parse_limits("rate=0") == DestinationLimits(None, None, no_rate=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty limit (want connections=N, rate=N/PERIOD, burst=N)"),
        ("connections=two", 'connections="two" is not a number of at least 0'),
        ("conections=2", '"conections=2" is not connections=N, rate=N/PERIOD or burst=N'),
        ("connections", '"connections" is not connections=N, rate=N/PERIOD or burst=N'),
        ("burst=3", "burst= without rate="),
        ("rate=1/1h burst=0", 'burst="0" is not a number of at least 1'),
        ("connections=1 connections=2", '"connections" given twice'),
        ("rate=fast", '"fast" is not a rate (want COUNT/PERIOD, e.g. 600/1h)'),
    ],
)
def test_bad_limits(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_limits(text)
    assert str(raised.value) == message


def test_servers() -> None:
    assert parse_server("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert parse_server("rediss://redis.example:6380") == "rediss://redis.example:6380"
    assert parse_server("unix:/run/redis/redis.sock") == "unix:///run/redis/redis.sock"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("http://h", '"http://h": want a redis:// or rediss:// URL, or unix:/path'),
        ("127.0.0.1:6379", '"127.0.0.1:6379": want a redis:// or rediss:// URL, or unix:/path'),
        ("redis://", '"redis://": no host name (want redis://HOST[:PORT][/DB])'),
        ("redis://h:port", '"redis://h:port": bad port'),
        ("redis://h/x", '"redis://h/x": the database is a number'),
        ("unix:run/redis.sock", '"unix:run/redis.sock": a unix: server is an absolute socket path'),
        (
            "redis://u:pw@h",
            '"redis://...@h": no credentials in the URL (use shared_state_password_file)',
        ),
    ],
)
def test_bad_servers(text: str, message: str) -> None:
    with pytest.raises(ValueError) as raised:
        parse_server(text)
    assert str(raised.value) == message


def test_password_sources() -> None:
    check_password_source("")
    check_password_source("/etc/mailcarrier/redis.pw")
    check_password_source("texthash:/etc/mailcarrier/redis_passwords")
    with pytest.raises(ValueError, match="not a password"):
        check_password_source("hunter2")


def test_errors_name_parameter_and_line(tmp_path: Path) -> None:
    (tmp_path / "main.cf").write_text(
        "# fleet\nfleet_destination_rate_limit = 600/1h\nshared_state_server = redis://a:1 ftp://b\n"
    )
    with pytest.raises(ConfigError) as raised:
        Settings.load(tmp_path)
    assert str(raised.value) == (
        f"{tmp_path}/main.cf:3: parameter shared_state_server: "
        '"ftp://b": want a redis:// or rediss:// URL, or unix:/path'
    )
    for name, value, message in [
        ("fleet_destination_rate_limit", "lots", '"lots" is not a rate'),
        ("shared_state_password_file", "s3cret", "not a password"),
        ("node_id", "a b", '"a b" is not a node name'),
        ("fleet_destination_concurrency_limit", "-1", "below the minimum 0"),
    ]:
        with pytest.raises(ConfigError, match=message) as raised:
            Settings.defaults().with_overrides({name: value})
        assert raised.value.parameter == name


def test_defaults_are_single_node() -> None:
    p = Settings.defaults().params
    assert p.shared_state_server == ""
    assert p.fleet_destination_concurrency_limit == 0
    assert p.fleet_destination_rate_limit == ""
    assert (p.fleet_lease_time, p.fleet_busy_retry_time, p.fleet_timeout) == (30.0, 1.0, 2.0)
    assert p.data_directory.endswith("/data")

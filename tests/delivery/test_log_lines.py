"""Postfix-format delivery log lines (log.py): golden files, delay formatting, syslog prefix.

Golden cases live in tests/golden/log/: each ``NAME.in`` is a JSON recipient status and
``NAME.ref`` the exact line Postfix would log for it. Delay formatting is checked against a
small reference model of Postfix's rule (two significant digits, at most
delay_logging_resolution_limit decimals, values of 10s and more as whole seconds, rounded
half up, trailing zeros dropped).
"""

from __future__ import annotations

import io
import json
import time
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailcarrier.log import MemoryLog, delivery_line, format_delay, syslog_prefix
from mailcarrier.loghandlers import stream_log, syslog_log
from mailcarrier.status import Delays, DeliveryStatus, RecipientStatus
from tests.support.settings import make_settings

GOLDEN = Path(__file__).resolve().parent.parent / "golden" / "log"
CASES = sorted(p.stem for p in GOLDEN.glob("*.in"))


def _status(spec: dict[str, Any]) -> RecipientStatus:
    delays = [float(x) for x in spec["delays"]]
    return RecipientStatus(
        address=str(spec["address"]),
        status=DeliveryStatus(str(spec["status"])),
        dsn=str(spec["dsn"]),
        diagnostic=str(spec["diagnostic"]),
        relay=str(spec.get("relay", "none")),
        delays=Delays(*delays),
        conn_use=int(spec.get("conn_use", 1)),
        orig_address=str(spec.get("orig_address", "")),
        soft_bounced=bool(spec.get("soft_bounced", False)),
    )


def test_golden_cases_exist() -> None:
    assert len(CASES) >= 8
    assert all((GOLDEN / f"{name}.ref").exists() for name in CASES)


@pytest.mark.parametrize("name", CASES)
def test_golden_log_line(name: str) -> None:
    spec = json.loads((GOLDEN / f"{name}.in").read_text())
    expected = (GOLDEN / f"{name}.ref").read_text().rstrip("\n")
    resolution = int(spec.get("resolution", 2))
    assert delivery_line(str(spec["queue_id"]), _status(spec), resolution) == expected


def test_conn_use_only_when_above_one() -> None:
    base = RecipientStatus("b@example.net", DeliveryStatus.SENT, "2.0.0", "250 Ok", "h[a]:25")
    for conn_use, shown in [(1, False), (2, True), (17, True)]:
        line = delivery_line("Q", RecipientStatus(**{**_fields(base), "conn_use": conn_use}))
        assert (f", conn_use={conn_use}, " in line) is shown
        assert ", conn_use=1, " not in line


def _fields(status: RecipientStatus) -> dict[str, Any]:
    return {name: getattr(status, name) for name in RecipientStatus.__slots__}


def test_field_order_is_postfix_order() -> None:
    status = RecipientStatus(
        "to@example.net",
        DeliveryStatus.DEFERRED,
        "4.4.2",
        "why",
        "h[a]:25",
        Delays(1, 2, 3, 4),
        conn_use=2,
        orig_address="orig@example.net",
    )
    line = delivery_line("QID", status)
    keys = [part.split("=", 1)[0] for part in line.split(": ", 1)[1].split(", ")]
    assert keys == [
        "to",
        "orig_to",
        "relay",
        "conn_use",
        "delay",
        "delays",
        "dsn",
        "status",
    ]
    assert line.endswith("status=deferred (why)")


def postfix_delay(seconds: float, resolution: int = 2) -> str:
    """Reference model of Postfix's delay formatting (format_tv with 2 significant digits)."""
    value = Decimal(repr(max(0.0, seconds)))
    if value >= 10:
        places = 0
    elif value >= 1:
        places = min(1, resolution)
    else:
        places = resolution
    quantum = Decimal(1).scaleb(-places)
    rounded = value.quantize(quantum, rounding=ROUND_HALF_UP)
    if rounded >= 10 and places:
        rounded = rounded.quantize(Decimal(1), rounding=ROUND_HALF_UP)
    text = format(rounded, "f")
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "0"),
        (0.0, "0"),
        (0.004, "0"),
        (0.006, "0.01"),
        (0.01, "0.01"),
        (0.0149, "0.01"),
        (0.05, "0.05"),
        (0.1, "0.1"),
        (0.12, "0.12"),
        (0.5, "0.5"),
        (0.999, "1"),
        (1, "1"),
        (1.04, "1"),
        (1.2, "1.2"),
        (2.44, "2.4"),
        (9.94, "9.9"),
        (9.96, "10"),
        (10, "10"),
        (10.4, "10"),
        (59.2, "59"),
        (3600.3, "3600"),
        (-1.0, "0"),
    ],
)
def test_format_delay(seconds: float, expected: str) -> None:
    assert postfix_delay(seconds) == expected
    assert format_delay(seconds) == expected


@pytest.mark.parametrize(
    ("seconds", "resolution", "expected"),
    [
        (0.0004, 3, "0"),
        (0.0021, 3, "0.002"),
        (0.0021, 2, "0"),
        (0.3333, 3, "0.33"),
        (0.3333, 0, "0"),
        (0.7, 0, "1"),
        (5.4321, 6, "5.4"),
        (0.000123, 6, "0.00012"),
    ],
)
def test_format_delay_resolution(seconds: float, resolution: int, expected: str) -> None:
    assert format_delay(seconds, resolution) == expected


@pytest.mark.parametrize("seconds", [12.7, 10.5, 4201.504])
def test_format_delay_rounds_large_values(seconds: float) -> None:
    assert format_delay(seconds) == postfix_delay(seconds)


def test_syslog_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        when = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
        assert (
            syslog_prefix(when, "mail.example.org", "postfix", "smtp", 4242)
            == "Nov 14 22:13:20 mail postfix/smtp[4242]: "
        )
        # syslog pads a one-digit day with a space.
        assert syslog_prefix(1_699_056_000.0, "h", "mc", "lmtp", 1).startswith("Nov  4 ")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_stream_log_writes_prefixed_lines() -> None:
    out = io.StringIO()
    sink = stream_log(out, hostname="relay.example", syslog_name="postfix", clock=lambda: 0, pid=7)
    sink.info("smtp", "4ABC: to=<b@example.net>, relay=none")
    sink.warning("smtp", "something odd")
    lines = out.getvalue().splitlines()
    assert lines[0].endswith(" relay postfix/smtp[7]: 4ABC: to=<b@example.net>, relay=none")
    assert lines[1].endswith(" relay postfix/smtp[7]: warning: something odd")


def test_memory_log_lines() -> None:
    sink = MemoryLog()
    sink.info("smtp", "a")
    sink.warning("lmtp", "b")
    assert sink.lines == ["a", "warning: b"]
    assert sink.records == [("info", "smtp", "a"), ("warning", "lmtp", "b")]


class _FakeSyslog:
    LOG_PID = 1
    LOG_INFO = 6
    LOG_WARNING = 4
    LOG_MAIL = 16

    def __init__(self) -> None:
        self.calls: list[tuple[object, ...]] = []

    def openlog(self, ident: str, option: int, facility: int) -> None:
        self.calls.append(("openlog", ident, option, facility))

    def syslog(self, priority: int, text: str) -> None:
        self.calls.append(("syslog", priority, text))


def test_syslog_sink_uses_postfix_identities() -> None:
    fake = _FakeSyslog()
    sink = syslog_log("postfix", "mail", module=fake)
    sink.info("smtp", "ABC: to=<a@b>, status=sent")
    sink.info("smtp", "ABC: second")
    sink.warning("qmgr", "something odd")
    facility = __import__("syslog").LOG_MAIL
    assert fake.calls == [
        ("openlog", "postfix/smtp", 1, facility),
        ("syslog", 6, "ABC: to=<a@b>, status=sent"),
        ("syslog", 6, "ABC: second"),  # same identity: no second openlog
        ("openlog", "postfix/qmgr", 1, facility),
        ("syslog", 4, "warning: something odd"),
    ]


def test_syslog_facility_is_validated() -> None:
    import pytest

    from mailcarrier.errors import ConfigError

    with pytest.raises(ConfigError, match="syslog_facility"):
        make_settings(syslog_facility="nosuch")
    assert make_settings(syslog_facility="local3")


def _delay_by_decimals(seconds: float, resolution: int) -> str:
    """format_delay as it was written before its floors were searched with bisect: 0 below
    half the last digit, then the first of 1, 2, ... `resolution` decimals whose floor
    (10**0, 10**-1, ...) `seconds` reaches, the last for everything smaller."""
    if seconds >= 10:
        return str(int(seconds + 0.5))
    if seconds < float(f"5e-{resolution + 1}"):
        return "0"
    form = f"%.{resolution}f"
    for d in range(1, resolution):
        if seconds >= 10 ** (1 - d):
            form = f"%.{d}f"
            break
    text = form % seconds
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text or "0"


@given(
    st.one_of(
        st.floats(-1, 10, exclude_max=True),
        st.floats(0, 1e-3),
        st.sampled_from([0.0, -0.0, 0.005, 0.00499999, 0.05, 0.1, 0.995, 1.0, 9.95, 9.96]),
        st.floats(allow_infinity=False),
    ),
    st.integers(0, 6),
)
def test_format_delay_is_the_first_floor_reached(seconds: float, resolution: int) -> None:
    """format_delay (floors searched with bisect) prints what the search of the floors one
    by one printed, at every resolution the parameter allows (NaN as "nan")."""
    assert format_delay(seconds, resolution) == _delay_by_decimals(seconds, resolution)

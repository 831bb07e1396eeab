"""Turning expanded main.cf text into typed values: booleans, numbers, times, sizes, lists.

Each converter raises `ValueError` with a message that names the bad value; `settings.py`
wraps it in a `ConfigError` naming the parameter and file:line. Lists are split on commas and
white space, keeping ``{ ... }`` groups (``inline:{ a=b, c=d }``) in one piece as Postfix does.
Table specifications inside MAPS values are checked with `mailcarrier.tables.spec`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Final

from mailcarrier.config.fleetsyntax import (
    check_node_id,
    check_password_source,
    check_servers,
    parse_rate,
)
from mailcarrier.config.listen import parse_listen
from mailcarrier.config.paramtype import Param, ParamType
from mailcarrier.tables.spec import parse_spec
from mailcarrier.tables.text import split_braced

Value = bool | int | float | str | tuple[str, ...]

_TIME_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
# Postfix takes integral times; fractions are accepted too so tests can use "0.5s".
_TIME_RE: Final = re.compile(r"(\d+(?:\.\d+)?)([smhdw]?)")
_INT_RE: Final = re.compile(r"[+-]?\d+")


def parse_time(text: str, unit: str = "s") -> float:
    """``30s``, ``5m``, ``1d``; a bare number is in `unit`."""
    m = _TIME_RE.fullmatch(text.strip())
    if not m:
        raise ValueError(f'bad time value "{text}" (want a number and one of s, m, h, d, w)')
    return float(m.group(1)) * _TIME_UNITS[m.group(2) or unit]


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low == "yes":
        return True
    if low == "no":
        return False
    raise ValueError(f'bad boolean value "{text}" (want yes or no)')


def parse_int(text: str) -> int:
    if not _INT_RE.fullmatch(text.strip()):
        raise ValueError(f'bad numerical value "{text}"')
    return int(text.strip())


def split_list(text: str) -> tuple[str, ...]:
    """Split on commas and white space; ``{...}`` groups stay whole."""
    return tuple(split_braced(text))


def _check_range(param: Param, number: float, text: str) -> None:
    if param.minimum is not None and number < param.minimum:
        raise ValueError(f'value "{text}" is below the minimum {param.minimum}')
    if param.maximum is not None and number > param.maximum:
        raise ValueError(f'value "{text}" is above the maximum {param.maximum}')


def _check_choice(param: Param, item: str) -> None:
    if param.choices and item.lower() not in param.choices:
        raise ValueError(f'unknown value "{item}" (want one of {", ".join(param.choices)})')


def _check_line_limit(number: object) -> None:
    # 0 means "no limit"; 1 leaves no room after the space that starts a broken line's
    # continuation (Postfix loops forever on it).
    if number == 1:
        raise ValueError('value "1" is too small (use 0 for no limit, or at least 2)')


def _check_ipv4(value: object) -> None:
    try:
        ipaddress.IPv4Address(str(value))
    except ValueError:
        raise ValueError(f'"{value}" is not a numerical IPv4 address') from None


def _check_ipv6(value: object) -> None:
    try:
        ipaddress.IPv6Address(str(value))
    except ValueError:
        raise ValueError(f'"{value}" is not a numerical IPv6 address') from None


def parse_feedback(text: str) -> tuple[float, str]:
    """A concurrency feedback value (qmgr): a number in [0, 1], ``1/N``, ``1/concurrency``
    or ``1/sqrt_concurrency``. Returns (fixed amount, "") or (0, "concurrency"|"sqrt")."""
    value = text.strip().replace(" ", "")
    if value == "1/concurrency":
        return 0.0, "concurrency"
    if value == "1/sqrt_concurrency":
        return 0.0, "sqrt"
    try:
        if value.startswith("1/"):
            denominator = float(value[2:])
            if denominator < 1:
                raise ValueError
            number = 1.0 / denominator
        else:
            number = float(value)
    except (ValueError, ZeroDivisionError):
        raise ValueError(
            f'"{text}" is not a feedback value (a number from 0 to 1, 1/N, 1/concurrency '
            "or 1/sqrt_concurrency)"
        ) from None
    if not 0.0 <= number <= 1.0:
        raise ValueError(f'value "{text}" is outside the range 0..1')
    return number, ""


def _check_feedback(value: object) -> None:
    parse_feedback(str(value))


def _check_rate(text: str) -> None:
    if text:
        parse_rate(text)


def _check_listen(text: str) -> None:
    if text.strip():
        parse_listen(text)


def _check_absolute(text: str) -> None:
    if text and not text.startswith("/"):
        raise ValueError(f'"{text}" is not an absolute file name')


# Extra checks named by `Param.check`.
CHECKS: Final[dict[str, Callable[[object], None]]] = {
    "linelimit": _check_line_limit,
    "ipv4": _check_ipv4,
    "ipv6": _check_ipv6,
    "feedback": _check_feedback,
    # Fleet mode (fleetsyntax.py).
    "shared_state_server": lambda value: check_servers(str(value)),
    "password_source": lambda value: check_password_source(str(value)),
    "node_id": lambda value: check_node_id(str(value)),
    "rate": lambda value: _check_rate(str(value)),
    # The metrics and status listener (listen.py).
    "http_listen": lambda value: _check_listen(str(value)),
    "absolute_or_empty": lambda value: _check_absolute(str(value)),
}


def convert(param: Param, text: str) -> Value:
    """The typed value of `text` (already expanded) for `param`."""
    if any(c in text for c in "\r\n\0"):
        # main.cf cannot hold these (lines are joined with spaces), but -o and the API can;
        # in a host name or an address they would inject SMTP commands.
        raise ValueError("value contains CR, LF or NUL")
    kind = param.type
    if kind is ParamType.BOOL:
        return parse_bool(text)
    if kind in (ParamType.INT, ParamType.SIZE):
        number = parse_int(text)
        _check_range(param, number, text)
        if param.check:
            CHECKS[param.check](number)
        return number
    if kind is ParamType.TIME:
        seconds = parse_time(text, param.unit)
        # Minimums are in the parameter's own unit, as Postfix states them.
        _check_range(param, seconds / _TIME_UNITS[param.unit], text)
        return seconds
    if kind is ParamType.LIST:
        items = split_list(text)
        for item in items:
            _check_choice(param, item)
        return items
    if kind is ParamType.MAPS:
        items = split_list(text)
        for item in items:
            parse_spec(item)  # raises ValueError naming the bad table
        return items
    value = text.strip()
    if value:
        _check_choice(param, value)
        if param.check:
            CHECKS[param.check](value)
    return value

"""The grammar of the fleet parameters (issue 19): rates, per-destination limits, servers.

`parse_rate("600/1h")` is a `Rate` (a count per period, in Postfix time units);
`parse_limits("connections=2 rate=100/1h burst=10")` is a `DestinationLimits`, the value of a
`fleet_limit_maps` entry; `parse_server(text)` checks one `shared_state_server` item
(``redis://``, ``rediss://`` or ``unix:/path``) and gives the URL the redis client takes;
`check_password_source` refuses a password written in main.cf. Each raises ValueError with
one line saying what is wrong; settings.py adds the parameter and file:line, and
fleet/limits.py the table's file:line. Pure: no I/O. The engine that uses them is fleet/.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass
from typing import Final

__all__ = [
    "DestinationLimits",
    "Rate",
    "check_node_id",
    "check_password_source",
    "check_servers",
    "parse_limits",
    "parse_rate",
    "parse_server",
]

# COUNT/PERIOD; the period in Postfix's time units (convert.py's, which imports this module).
_RATE: Final = re.compile(r"(\d+)/(\d*)([smhdw]?)", re.IGNORECASE)
_UNITS: Final = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_TABLE: Final = re.compile(r"[a-z][a-z0-9_]*:\S")


@dataclass(frozen=True, slots=True)
class Rate:
    """`count` messages per `period` seconds, `burst` of them at once (at least 1)."""

    count: int
    period: float
    burst: int = 1

    @property
    def interval(self) -> float:
        """Seconds between two messages at the steady rate (the GCRA emission interval)."""
        return self.period / self.count

    def with_burst(self, burst: int) -> Rate:
        return Rate(self.count, self.period, burst)

    def __str__(self) -> str:
        return f"{self.count}/{self.period:g}s burst={self.burst}"


@dataclass(frozen=True, slots=True)
class DestinationLimits:
    """One `fleet_limit_maps` value; None: not given there (the main.cf default holds)."""

    connections: int | None = None
    rate: Rate | None = None
    no_rate: bool = False  # ``rate=0``: this destination has no rate limit


def parse_rate(text: str) -> Rate:
    """``N/period`` (``600/1h``, ``10/s``, ``5/30s``); the period is a Postfix time."""
    found = _RATE.fullmatch(text.strip())
    if found is None:
        raise ValueError(f'"{text}" is not a rate (want COUNT/PERIOD, e.g. 600/1h)')
    count = int(found.group(1))
    if not found.group(2) and not found.group(3):
        raise ValueError(f'"{text}" has no period (want COUNT/PERIOD, e.g. 600/1h)')
    period = float(found.group(2) or 1) * _UNITS[(found.group(3) or "s").lower()]
    if count < 1 or period <= 0:
        raise ValueError(f'"{text}": the count and the period must be above zero')
    return Rate(count, period)


def _positive(name: str, text: str, minimum: int) -> int:
    if not text.isdigit() or int(text) < minimum:
        raise ValueError(f'{name}="{text}" is not a number of at least {minimum}')
    return int(text)


def parse_limits(text: str) -> DestinationLimits:
    """``connections=N rate=N/period burst=N`` in any order, each at most once."""
    seen: dict[str, str] = {}
    for word in text.replace(",", " ").split():
        name, eq, value = word.partition("=")
        name = name.lower()
        if not eq or name not in ("connections", "rate", "burst"):
            raise ValueError(f'"{word}" is not connections=N, rate=N/PERIOD or burst=N')
        if name in seen:
            raise ValueError(f'"{name}" given twice')
        seen[name] = value
    if not seen:
        raise ValueError("empty limit (want connections=N, rate=N/PERIOD, burst=N)")
    connections = None
    if "connections" in seen:
        connections = _positive("connections", seen["connections"], 0)
    rate = None
    no_rate = seen.get("rate") == "0"
    if "rate" in seen and not no_rate:
        rate = parse_rate(seen["rate"])
    if "burst" in seen:
        burst = _positive("burst", seen["burst"], 1)
        if rate is None:
            raise ValueError("burst= without rate=")
        rate = rate.with_burst(burst)
    return DestinationLimits(connections, rate, no_rate)


def parse_server(text: str) -> str:
    """The redis client's URL for one `shared_state_server` item."""
    if text.startswith("unix:"):
        path = text.removeprefix("unix:").removeprefix("//")
        if not path.startswith("/"):
            raise ValueError(f'"{text}": a unix: server is an absolute socket path')
        return "unix://" + path
    parts = urllib.parse.urlsplit(text)
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(f'"{text}": want a redis:// or rediss:// URL, or unix:/path')
    if parts.password or parts.username:
        raise ValueError(
            f'"{parts.scheme}://...@{parts.hostname}": no credentials in the URL '
            "(use shared_state_password_file)"
        )
    try:
        port = parts.port
    except ValueError:
        raise ValueError(f'"{text}": bad port') from None
    if not parts.hostname or port == 0:
        raise ValueError(f'"{text}": no host name (want {parts.scheme}://HOST[:PORT][/DB])')
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise ValueError(f'"{text}": the database is a number')
    return text


def check_password_source(text: str) -> None:
    """`shared_state_password_file` is a file (an absolute path) or a table (type:name),
    never the password itself: main.cf and ``-o`` are readable by every local user."""
    if text and not text.startswith("/") and not _TABLE.match(text):
        raise ValueError("want an absolute file name or a type:name table, not a password")


def check_servers(text: str) -> None:
    """Every item of `shared_state_server`."""
    for item in text.replace(",", " ").split():
        parse_server(item)


def check_node_id(text: str) -> None:
    if text and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", text):
        raise ValueError(f'"{text}" is not a node name (letters, digits, ".", "_", "-")')

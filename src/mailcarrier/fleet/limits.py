"""The fleet limits of one destination: main.cf defaults, overridden by `fleet_limit_maps`.

A destination is keyed as the scheduler keys it: ``transport:nexthop`` (``smtp:example.com``,
``smtp:[192.0.2.1]:2525``); `fleet_limit_maps` is asked for that, then for the next hop
alone. Its value (fleetsyntax.parse_limits) may set ``connections=``, ``rate=`` and
``burst=``; what it leaves out is `fleet_destination_concurrency_limit`,
`fleet_destination_rate_limit` and `fleet_destination_rate_burst`. Answers are kept per
destination for the life of the settings (a reload makes new ones).

`FleetLimits.load()` checks every entry of the tables' source files when the node starts
(``key value`` lines: texthash:, hash:, lmdb:, cdb:, ...), so that a malformed entry stops it
with the file and line rather than surprising it later; a value that is malformed anyway
(another kind of table) is a warning, and the defaults hold for that destination. Tables that
ask a server are refused: the limits are asked before each connection, on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailcarrier.config.fleetsyntax import DestinationLimits, Rate, parse_limits, parse_rate
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError
from mailcarrier.tables import Maps, TableError
from mailcarrier.tables.text import logical_lines

__all__ = ["FleetLimits", "Limits"]

_PARAM: Final = "fleet_limit_maps"
# Table kinds whose source is ``key value`` lines (postmap's input).
_KEY_VALUE: Final = frozenset({"texthash", "hash", "btree", "lmdb", "cdb", "dbm", "sdbm"})


@dataclass(frozen=True, slots=True)
class Limits:
    connections: int  # 0: none
    rate: Rate | None

    @property
    def any(self) -> bool:
        return bool(self.connections or self.rate)


class FleetLimits:
    def __init__(self, default: Limits, maps: Maps | None) -> None:
        self.default = default
        self.maps = maps
        self._known: dict[str, tuple[Limits, str]] = {}

    @classmethod
    def load(cls, settings: Settings) -> FleetLimits:
        p = settings.params
        rate = None
        if p.fleet_destination_rate_limit:
            rate = parse_rate(p.fleet_destination_rate_limit)
            rate = rate.with_burst(p.fleet_destination_rate_burst)
        default = Limits(p.fleet_destination_concurrency_limit, rate)
        maps = None
        if p.fleet_limit_maps:
            try:
                maps = settings.open_maps(_PARAM)
            except TableError as exc:
                raise ConfigError(f"{_PARAM}: {exc}", parameter=_PARAM) from None
            if maps.network:
                raise ConfigError(
                    f"{_PARAM}: a table that asks a server cannot be used here "
                    "(use a file table: texthash:, hash:, lmdb:, cdb:)",
                    parameter=_PARAM,
                )
            for table in maps.tables:
                if table.kind in _KEY_VALUE and table.files():
                    _check_source(table.files()[0])
        return cls(default, maps)

    def for_destination(self, transport: str, nexthop: str) -> tuple[Limits, str]:
        """The limits, and a warning ("" when none) about a malformed table value."""
        key = f"{transport}:{nexthop}"
        known = self._known.get(key)
        if known is None:
            known = self._known[key] = self._look_up(key, nexthop)
        return known

    def _look_up(self, key: str, nexthop: str) -> tuple[Limits, str]:
        if self.maps is None:
            return self.default, ""
        try:
            found = self.maps.find(key) or self.maps.find(nexthop)
        except TableError as exc:
            return self.default, f"{_PARAM}: {exc}"
        if found is None:
            return self.default, ""
        try:
            given = parse_limits(found.value)
        except ValueError as exc:
            return self.default, f"{_PARAM}: {found.table}: {found.key}: {exc}"
        return _merge(self.default, given), ""


def _merge(default: Limits, given: DestinationLimits) -> Limits:
    connections = default.connections if given.connections is None else given.connections
    rate = None if given.no_rate else (given.rate or default.rate)
    return Limits(connections, rate)


def _check_source(path: Path) -> None:
    if not path.exists():
        return  # an index without its source: checked when asked
    for lineno, text in logical_lines(path):
        key, _, value = text.replace("\t", " ").partition(" ")
        try:
            parse_limits(value)
        except ValueError as exc:
            raise ConfigError(
                f"{_PARAM}: {key}: {exc}", parameter=_PARAM, filename=str(path), lineno=lineno
            ) from None

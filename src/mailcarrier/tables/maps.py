"""Lists of tables with Postfix's maps semantics: ask each table in order, first match wins.

`Maps.find(key)` asks the tables in list order; `find_address` and `find_domain` walk the key
search orders of `search.py` key by key, asking all tables for one key before the next key,
as Postfix's mail_addr_find and domain lookups do, and skip pattern tables for partial keys.
`open_maps` opens a list given as main.cf text or as already-split items.

Each search has an async twin (`find_async`, `find_address_async`, `find_domain_async`) for
callers on an event loop: network tables are then asked with `Table.lookup_async`, which
never blocks the loop; file tables are still asked with their plain `lookup` (no thread, no
extra await). `network` says whether any table waits on a server. A lookup that fails for
now raises `TableLookupError` (the caller defers); `take_warnings` drains what the tables
noticed on the way (a server down, an empty result).
"""

from __future__ import annotations

from collections.abc import Awaitable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from mailcarrier.tables.base import Table
from mailcarrier.tables.cfgfile import MainCfLookup
from mailcarrier.tables.registry import open_table
from mailcarrier.tables.search import Key, address_keys, domain_keys
from mailcarrier.tables.text import split_braced

if TYPE_CHECKING:
    from mailcarrier.tables.proxy import ProxyService


@dataclass(frozen=True, slots=True)
class Match:
    value: str
    key: str  # the key that matched (e.g. "@example.com")
    table: str  # the type:name of the table that matched
    extension: str = ""  # address extension not part of the matched key


class Maps:
    def __init__(self, tables: Iterable[Table], name: str = "") -> None:
        self.tables: tuple[Table, ...] = tuple(tables)
        self.name = name
        self._network = tuple(table for table in self.tables if table.network)
        self.network = bool(self._network)
        # The one table of a list of one network table: `find_value_async` gives its own
        # lookup to await, without a coroutine of ours around it.
        only = len(self.tables) == 1 and self.network
        self._only_network = self.tables[0] if only else None

    def __bool__(self) -> bool:
        return bool(self.tables)

    @property
    def warnings(self) -> list[str]:
        return [w for table in self.tables for w in table.warnings]

    def files(self) -> tuple[Path, ...]:
        return tuple(path for table in self.tables for path in table.files())

    def find(self, key: str, *, partial: bool = False) -> Match | None:
        for table in self.tables:
            if partial and not table.fixed:
                continue
            value = table.lookup(key)
            if value is not None:
                return Match(value, key, table.spec)
        return None

    def _walk(self, keys: list[Key]) -> Match | None:
        for key in keys:
            found = self.find(key.text, partial=key.partial)
            if found is not None:
                return Match(found.value, found.key, found.table, key.extension)
        return None

    async def find_async(self, key: str, *, partial: bool = False) -> Match | None:
        for table in self.tables:
            if partial and not table.fixed:
                continue
            value = await table.lookup_async(key) if table.network else table.lookup(key)
            if value is not None:
                return Match(value, key, table.spec)
        return None

    def find_value_async(self, key: str, *, partial: bool = False) -> Awaitable[str | None]:
        """`find_async(key)`'s value (None: not found), without making the `Match`: for
        callers that read nothing else (the TLS policy, asked for every delivery). A list
        of one network table gives that table's lookup itself: one coroutine frame less to
        pass through each time the lookup waits for its server (or for the answer of the
        same lookup on its way)."""
        only = self._only_network
        if only is not None and (only.fixed or not partial):
            return only.lookup_async(key)
        return self._find_value_async(key, partial)

    async def _find_value_async(self, key: str, partial: bool) -> str | None:
        for table in self.tables:
            if partial and not table.fixed:
                continue
            value = await table.lookup_async(key) if table.network else table.lookup(key)
            if value is not None:
                return value
        return None

    async def _walk_async(self, keys: list[Key]) -> Match | None:
        for key in keys:
            found = await self.find_async(key.text, partial=key.partial)
            if found is not None:
                return Match(found.value, found.key, found.table, key.extension)
        return None

    def take_warnings(self) -> list[str]:
        """Warnings of the lookups since the last call (network tables only)."""
        out: list[str] = []
        for table in self._network:
            if table.lookup_warnings:
                out.extend(table.take_warnings())
        return out

    def find_address(
        self, address: str, *, recipient_delimiter: str = "", local: bool = False
    ) -> Match | None:
        keys = address_keys(address, recipient_delimiter=recipient_delimiter, local=local)
        return self._walk(keys)

    def find_domain(self, domain: str, *, parent_matches_subdomains: bool = False) -> Match | None:
        keys = domain_keys(domain, parent_matches_subdomains=parent_matches_subdomains)
        return self._walk(keys)

    async def find_address_async(
        self, address: str, *, recipient_delimiter: str = "", local: bool = False
    ) -> Match | None:
        keys = address_keys(address, recipient_delimiter=recipient_delimiter, local=local)
        return await self._walk_async(keys)

    async def find_domain_async(
        self, domain: str, *, parent_matches_subdomains: bool = False
    ) -> Match | None:
        keys = domain_keys(domain, parent_matches_subdomains=parent_matches_subdomains)
        return await self._walk_async(keys)

    async def find_domain_value_async(
        self, domain: str, *, parent_matches_subdomains: bool = False
    ) -> str | None:
        """`find_domain_async(domain)`'s value, without making a `Match`."""
        keys = domain_keys(domain, parent_matches_subdomains=parent_matches_subdomains)
        for key in keys:
            value = await self.find_value_async(key.text, partial=key.partial)
            if value is not None:
                return value
        return None


def open_maps(
    specs: str | Iterable[str],
    base_dir: Path | None = None,
    name: str = "",
    *,
    main_cf: MainCfLookup | None = None,
    proxy: ProxyService | None = None,
) -> Maps:
    items = split_braced(specs) if isinstance(specs, str) else list(specs)
    return Maps((open_table(item, base_dir, main_cf=main_cf, proxy=proxy) for item in items), name)

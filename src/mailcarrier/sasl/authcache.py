"""The SASL authentication failure cache: smtp_sasl_auth_cache_name, smtp_sasl_auth_cache_time.

Postfix's smtp_sasl_auth_cache.c: after a 535 reply, remember ``host;username`` ->
``time;base64(SHA-1(password));dsn;reply text``; while an entry is younger than
`smtp_sasl_auth_cache_time` and the password is unchanged, do not try AUTH again: defer (or
bounce) with the remembered reply, logged as "SASL [CACHED] authentication failed". An entry
whose password changed or that expired is deleted when found; so is one that does not
parse as Postfix's sscanf() reads it, with Postfix's warning ("bad smtp_sasl_auth_cache
entry: ..."), which `take_warnings` hands to the caller to log.

Storage is the table the name gives, in Postfix's own format, so that Postfix's smtp(8) and
mailcarrier share it and ``postmap -q "host;user" btree:/path`` reads it: ``btree:/path``
and ``hash:/path`` are Berkeley DB files (``/path.db``), ``lmdb:/path`` an LMDB file
(``/path.lmdb``), a bare absolute path a ``hash:`` table (postmap's default type on Debian),
each changed in place under Postfix's locks and synced (tables/updatable.py). Postfix insists
on ``proxy:`` (one writer, its proxywrite service); mailcarrier also takes the name without
it. Inside Postfix (a proxy service given, postfix/) a ``proxy:`` name is changed through
proxywrite as smtp(8) does (tables/proxy.py); standalone the inner table is opened directly.
An empty name keeps the cache in memory for the life of the process. The clock is injected.

In fleet mode the entries are shared with the other nodes (`find_async` and `store_async`
take the fleet's `SharedEntries`, fleet/shared.py): a 535 that one node learned spares the
others the same refused login, for the same `smtp_sasl_auth_cache_time`. The local table is
asked first and stays the record; the fleet's copy expires by itself.
"""

from __future__ import annotations

import base64
import hashlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from mailcarrier.errors import ConfigError
from mailcarrier.tables.base import TableError
from mailcarrier.tables.indexed import index_path
from mailcarrier.tables.proxy import ProxyService, ProxyUpdatableTable
from mailcarrier.tables.updatable import UPDATABLE_KINDS, UpdatableTable, open_updatable

if TYPE_CHECKING:
    from mailcarrier.fleet.shared import SharedEntries

__all__ = ["AuthFailureCache", "CacheName", "CachedFailure", "cache_name", "cache_path"]

_PARAM: Final = "smtp_sasl_auth_cache_name"
_BARE_KIND: Final = "hash"  # postmap's default_database_type on Debian
# sscanf(entry, "%lu;%[^;];%[^;];%[^\n]"): %lu skips white space and takes a sign; each
# %[...] needs at least one character.
_ENTRY: Final = re.compile(r"[ \t\n\v\f\r]*([+-]?)([0-9]+);([^;]+);([^;]+);([^\n]+)", re.DOTALL)
# dsn_valid(): 2, 4 or 5, a dot, 1-3 digits, a dot, 1-3 digits, then the end or white space.
_DSN: Final = re.compile(r"[245]\.[0-9]{1,3}\.[0-9]{1,3}(?:[ \t\n\v\f\r]|\Z)")
_ULONG: Final = 1 << 64


@dataclass(frozen=True, slots=True)
class CachedFailure:
    dsn: str
    text: str  # the server's complete 535 reply
    stamp: float


@dataclass(frozen=True, slots=True)
class CacheName:
    """A parsed cache name: the table type, its source path, and whether it said proxy:."""

    kind: str
    source: Path
    proxied: bool

    @property
    def spec(self) -> str:
        return f"{self.kind}:{self.source}"

    @property
    def index(self) -> Path:
        return index_path(self.source, UPDATABLE_KINDS[self.kind])


def cache_name(name: str, parameter: str = _PARAM) -> CacheName | None:
    """The table behind a cache name; None for an empty name (memory only)."""
    name = name.strip()
    if not name:
        return None
    if any(c in name for c in ", \t"):
        raise ConfigError(
            f'{parameter}: SASL authentication cache name "{name}" contains multiple values',
            parameter=parameter,
            value=name,
        )
    spec = name
    while spec.startswith("proxy:"):
        spec = spec.removeprefix("proxy:")
    kind, colon, rest = spec.partition(":")
    if colon and not kind.startswith("/"):
        if kind not in UPDATABLE_KINDS:
            raise ConfigError(
                f'{parameter}: unsupported table type "{kind}" in "{name}" '
                f"(want btree:, hash:, lmdb: or an absolute path)",
                parameter=parameter,
                value=name,
            )
        path = rest
    else:
        kind, path = _BARE_KIND, spec
    if not path.startswith("/"):
        raise ConfigError(
            f'{parameter}: "{name}" must name an absolute path', parameter=parameter, value=name
        )
    return CacheName(kind, Path(path), name != spec)


def cache_path(name: str, parameter: str = _PARAM) -> Path | None:
    """The file behind a cache name; None for an empty name (memory only)."""
    found = cache_name(name, parameter)
    return found.index if found is not None else None


def password_hash(password: str) -> str:
    """smtp_sasl_auth_cache_make_pass(): base64 of the password's SHA-1 (unsalted: Postfix's)."""
    digest = hashlib.sha1(password.encode("utf-8", "surrogateescape")).digest()
    return base64.b64encode(digest).decode("ascii")


class AuthFailureCache:
    """535 replies remembered per ``host;username``, with the password's hash."""

    def __init__(
        self,
        ttl: float,
        table: UpdatableTable | None = None,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.ttl = ttl
        self.table = table
        self.clock = clock
        self.name = table.spec if table is not None else ""
        self._memory: dict[str, str] = {}
        self._warnings: list[str] = []

    @classmethod
    def open(
        cls,
        name: str,
        ttl: float,
        *,
        clock: Callable[[], float] = time.time,
        proxy: ProxyService | None = None,
    ) -> AuthFailureCache:
        """The cache `name` gives. `proxy`: Postfix's proxymap client (Postfix-native
        mode), whose proxywrite service takes a ``proxy:`` name's changes. A missing
        library is a `ConfigError` naming the parameter and what to install."""
        found = cache_name(name)
        if found is None:
            return cls(ttl, clock=clock)
        if found.proxied and proxy is not None:
            return cls(ttl, ProxyUpdatableTable(found.spec, proxy.for_writing()), clock=clock)
        try:
            table = open_updatable(found.kind, found.source)
        except TableError as exc:
            raise ConfigError(f"{_PARAM}: {exc}", parameter=_PARAM, value=name) from None
        return cls(ttl, table, clock=clock)

    @property
    def path(self) -> Path | None:
        """The file of a directly opened table (None: memory, or proxywrite's)."""
        index = getattr(self.table, "index", None)
        return index if isinstance(index, Path) else None

    # --- Postfix's entry format --------------------------------------------------------
    @staticmethod
    def _key(host: str, username: str) -> str:
        return f"{host.lower()};{username}"

    def _value(self, password: str, dsn: str, text: str) -> str:
        return f"{int(self.clock())};{password_hash(password)};{dsn};{text}"

    def _judge(self, entry: str, password: str) -> CachedFailure | None:
        """The failure an entry remembers, or None when it is to be deleted (malformed,
        with Postfix's warning; expired; another password)."""
        match = _ENTRY.match(entry)
        if match is None or not _DSN.match(match[4]):
            self._warnings.append(f"bad smtp_sasl_auth_cache entry: {entry[:100]}")
            return None
        stamp = int(match[2]) % _ULONG  # strtoul: a minus sign wraps around
        if match[1] == "-":
            stamp = (_ULONG - stamp) % _ULONG
        if (stamp + int(self.ttl)) % _ULONG < self.clock():
            return None
        if match[3] != password_hash(password):
            return None
        return CachedFailure(match[4], match[5], float(stamp))

    def _deleted_warning(self, key: str) -> None:
        self._warnings.append(f"SASL auth failure map {self.name}: entry not deleted: {key}")

    # --- public -----------------------------------------------------------------------
    def find(self, host: str, username: str, password: str) -> CachedFailure | None:
        """The remembered failure for this host, user and (unchanged) password, if fresh.
        A table that cannot answer raises `TableError`."""
        key = self._key(host, username)
        entry = self._memory.get(key) if self.table is None else self.table.lookup(key)
        if entry is None:
            return None
        found = self._judge(entry, password)
        if found is None:
            # Expired, password changed, or malformed: forget it (as Postfix does).
            if self.table is None:
                del self._memory[key]
            elif not self.table.delete(key):
                self._deleted_warning(key)
        return found

    async def find_async(
        self, host: str, username: str, password: str, shared: SharedEntries | None = None
    ) -> CachedFailure | None:
        """`find` without blocking the loop on proxywrite; then, when this node knows of
        no failure, the fleet's (`shared`), judged as a local entry is."""
        found = await self._find_local(host, username, password)
        if found is not None or shared is None:
            return found
        key = self._key(host, username)
        entry = await shared.get(key)
        if entry is None:
            return None
        found = self._judge(entry, password)
        if found is None:  # expired, another password, malformed: not the fleet's either
            await shared.delete(key)
        return found

    async def _find_local(self, host: str, username: str, password: str) -> CachedFailure | None:
        if self.table is None:
            return self.find(host, username, password)
        key = self._key(host, username)
        entry = await self.table.lookup_async(key)
        if entry is None:
            return None
        found = self._judge(entry, password)
        if found is None and not await self.table.delete_async(key):
            self._deleted_warning(key)
        return found

    def store(self, host: str, username: str, password: str, dsn: str, text: str) -> None:
        key, value = self._key(host, username), self._value(password, dsn, text)
        if self.table is None:
            self._memory[key] = value
        else:
            self.table.update(key, value)

    async def store_async(
        self,
        host: str,
        username: str,
        password: str,
        dsn: str,
        text: str,
        shared: SharedEntries | None = None,
    ) -> None:
        """`store` without blocking the loop; the entry goes to the fleet too (`shared`)."""
        key, value = self._key(host, username), self._value(password, dsn, text)
        if shared is not None:
            await shared.put(key, value, self.ttl)
        if self.table is None:
            self._memory[key] = value
        else:
            await self.table.update_async(key, value)

    def take_warnings(self) -> list[str]:
        """Postfix's warnings since the last call (bad entries, entries not deleted, a file
        of an older mailcarrier replaced)."""
        taken = self._warnings
        if self.table is not None:
            taken += self.table.take_warnings()
        self._warnings = []
        return taken

    def close(self) -> None:
        if self.table is not None:
            self.table.close()

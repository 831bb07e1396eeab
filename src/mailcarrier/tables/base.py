"""The lookup-table interface every ``type:name`` kind implements, and the table errors.

A `Table` answers `lookup(key) -> value | None`. `fixed` tables (hash, texthash, inline,
static, the SQL tables) are searched with exact strings, including the partial keys of the
address search order; `pattern` tables (regexp, pcre, cidr) only ever see the full key, as in
Postfix's maps code. Tables never log: problems found while loading (malformed lines) are kept
in `warnings` for the caller to report, and problems met during a lookup in `lookup_warnings`
(drained by `take_warnings()`).

Network tables (`network = True`: pgsql, mysql, sqlite, proxy, and the kinds built on
tables/netcore.py) wait on a server or a database file. On an event loop they are asked with
``await table.lookup_async(key)``, which never blocks the loop; their `lookup` blocks the
calling thread (for the command line and other synchronous callers). File tables keep their
plain `lookup`: the default `lookup_async` simply calls it.

A lookup that cannot be answered now (server down, slow past its timeout, login refused)
raises `TableLookupError`, Postfix's DICT_ERR_RETRY: the caller defers, never treats it as
"not found". Opening is in `registry.py`, search orders in `search.py`.
"""

from __future__ import annotations

import abc
from pathlib import Path

from mailcarrier.errors import ConfigError


class TableError(ConfigError):
    """A table cannot be opened or used: missing file, bad type, unusable index."""


class TableLookupError(TableError):
    """A lookup failed for now (Postfix DICT_ERR_RETRY): the server is down, did not answer
    in time, or refused the login. Callers defer the work that needed the answer."""


class Table(abc.ABC):
    """Base class: subclasses set the flags and implement `lookup`."""

    kind: str = ""
    fixed: bool = True
    pattern: bool = False
    network: bool = False  # lookups wait on a server: use lookup_async on an event loop

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.warnings: list[str] = []
        self.lookup_warnings: list[str] = []

    @abc.abstractmethod
    def lookup(self, key: str) -> str | None:
        """The value for `key`, or None when the table has no entry for it."""

    async def lookup_async(self, key: str) -> str | None:
        """`lookup` for callers on an event loop; network tables override it."""
        return self.lookup(key)

    def files(self) -> tuple[Path, ...]:
        """Files whose change should trigger a reload (empty for in-line tables)."""
        return ()

    def warn(self, message: str, filename: str = "", lineno: int = 0) -> None:
        where = f"{filename}:{lineno}: " if filename and lineno else ""
        self.warnings.append(f"{where}{message}")

    def take_warnings(self) -> list[str]:
        """The warnings of lookups since the last call (server trouble, skipped keys)."""
        out, self.lookup_warnings = self.lookup_warnings, []
        return out

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"

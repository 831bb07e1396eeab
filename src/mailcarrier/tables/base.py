"""The lookup-table interface every ``type:name`` kind implements, and `TableError`.

A `Table` answers `lookup(key) -> value | None`. `fixed` tables (hash, texthash, inline,
static) are searched with exact strings, including the partial keys of the address search
order; `pattern` tables (regexp, pcre, cidr) only ever see the full key, as in Postfix's maps
code. Tables never log: problems found while loading (malformed lines) are kept in `warnings`
for the caller to report. Opening is in `registry.py`, search orders in `search.py`.
"""

from __future__ import annotations

import abc
from pathlib import Path

from mailcarrier.errors import ConfigError


class TableError(ConfigError):
    """A table cannot be opened or used: missing file, bad type, unusable index."""


class Table(abc.ABC):
    """Base class: subclasses set the flags and implement `lookup`."""

    kind: str = ""
    fixed: bool = True
    pattern: bool = False

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.warnings: list[str] = []

    @abc.abstractmethod
    def lookup(self, key: str) -> str | None:
        """The value for `key`, or None when the table has no entry for it."""

    def files(self) -> tuple[Path, ...]:
        """Files whose change should trigger a reload (empty for in-line tables)."""
        return ()

    def warn(self, message: str, filename: str = "", lineno: int = 0) -> None:
        where = f"{filename}:{lineno}: " if filename and lineno else ""
        self.warnings.append(f"{where}{message}")

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.spec}>"

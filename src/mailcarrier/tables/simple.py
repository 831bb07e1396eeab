"""Fixed-string tables held in memory: ``inline:{...}``, ``static:value`` and ``texthash:/path``.

`read_source` parses the postmap(1) input format (``key whitespace value``) that texthash
reads directly (indexed files are built by build.py from source.py's exact copy of postmap's
reader); a malformed line is a warning naming
file:line and is skipped, and a duplicate key keeps its first value, as postmap does. Keys are
folded to lower case when stored and when looked up (Postfix's default for fixed tables).
"""

from __future__ import annotations

from pathlib import Path

from mailcarrier.tables.base import Table, TableError
from mailcarrier.tables.text import logical_lines, split_braced, strip_group


def read_source(path: Path, table: Table) -> dict[str, str]:
    """key -> value from a postmap-format file; problems go to `table.warn`."""
    entries: dict[str, str] = {}
    for lineno, text in logical_lines(path):
        parts = text.split(None, 1)
        if len(parts) != 2:
            table.warn("expected format: key whitespace value", str(path), lineno)
            continue
        key, value = parts[0].lower(), parts[1].strip()
        if key in entries:
            table.warn(f'duplicate entry: "{key}" (keeping the first)', str(path), lineno)
            continue
        entries[key] = value
    return entries


class TextHashTable(Table):
    kind = "texthash"

    def __init__(self, spec: str, path: Path) -> None:
        super().__init__(spec)
        self.path = path
        self._entries = read_source(path, self)

    def lookup(self, key: str) -> str | None:
        return self._entries.get(key.lower())

    def files(self) -> tuple[Path, ...]:
        return (self.path,)


class InlineTable(Table):
    """``inline:{ key=value, { key = text with spaces, or commas } }`` (Postfix 3.0)."""

    kind = "inline"

    def __init__(self, spec: str, body: str) -> None:
        super().__init__(spec)
        self._entries: dict[str, str] = {}
        try:
            items = split_braced(strip_group(body))
        except ValueError as exc:
            raise TableError(f"{spec}: {exc}") from None
        for item in items:
            key, sep, value = strip_group(item).partition("=")
            if not sep or not key.strip():
                raise TableError(f'{spec}: expected "key=value", not "{item}"')
            self._entries.setdefault(key.strip().lower(), value.strip())

    def lookup(self, key: str) -> str | None:
        return self._entries.get(key.lower())


class StaticTable(Table):
    """Every key finds the same value; ``static:{ text with spaces }`` keeps the spaces."""

    kind = "static"

    def __init__(self, spec: str, value: str, *, literal: bool = False) -> None:
        super().__init__(spec)
        # `literal`: the value as given (a program's, not main.cf text with {} groups).
        self.value = value if literal else strip_group(value)

    def lookup(self, key: str) -> str | None:
        return self.value

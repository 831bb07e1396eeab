"""Postfix's domain lists (match_list with match_hostname): ``fast_flush_domains`` and the like.

A list is a parameter value's entries in order: a domain name, ``.domain`` (its subdomains,
without the parent style only), ``!entry`` (each ``!`` turns the entry's answer over; the
first entry that matches decides), ``/file/name`` (its entries, read once, in place of the
name), or ``type:table`` (the name, then its parent domains, looked up in the table; a value
found means a match). With the parent style (the
parameter is listed in ``parent_domain_matches_subdomains``) an entry ``example.com``
matches ``example.com`` and its subdomains, and tables are asked ``parent.domain``; without
it they are asked ``.parent.domain``. Pattern tables (regexp, pcre, cidr) only see the whole
name. Names and entries compare without case.

`DomainList.parse(text, parent_style=..., opener=...)` builds one; `match(name)` answers. A
table that fails raises `TableError` from `match`, as a lookup problem in Postfix makes the
list's answer an error rather than "no". Opening tables is the caller's `opener`
(registry.open_table with the configuration directory); this module reads only list files.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailcarrier.tables.base import Table, TableError
from mailcarrier.tables.spec import TABLE_TYPES

__all__ = ["DomainList"]

_SEPARATORS: Final = re.compile(r"[\s,]+")


@dataclass(frozen=True, slots=True)
class _Entry:
    negated: bool
    pattern: str  # casefolded name or .name, when table is None
    table: Table | None


def _is_table(text: str) -> bool:
    kind, sep, _ = text.partition(":")
    return bool(sep) and kind in TABLE_TYPES


class DomainList:
    def __init__(self, entries: list[_Entry], *, parent_style: bool) -> None:
        self.entries = entries
        self.parent_style = parent_style

    @classmethod
    def parse(
        cls,
        text: str,
        *,
        parent_style: bool = False,
        opener: Callable[[str], Table] | None = None,
    ) -> DomainList:
        entries: list[_Entry] = []
        for item in _items(text):
            body = item.lstrip("!")
            negated = (len(item) - len(body)) % 2 == 1  # each "!" turns the answer over
            if not body:
                raise TableError(f'domain list "{text}": "{item}" names nothing')
            if _is_table(body):
                if opener is None:
                    raise TableError(f'domain list "{text}": no tables here ("{body}")')
                entries.append(_Entry(negated, "", opener(body)))
            else:
                entries.append(_Entry(negated, body.lower().rstrip("."), None))
        return cls(entries, parent_style=parent_style)

    def __bool__(self) -> bool:
        return bool(self.entries)

    def match(self, name: str) -> bool:
        name = name.lower().rstrip(".")
        for entry in self.entries:
            if self._matches(entry, name):
                return not entry.negated
        return False

    def _matches(self, entry: _Entry, name: str) -> bool:
        if entry.table is not None:
            return any(entry.table.lookup(key) is not None for key in self._keys(entry, name))
        pattern = entry.pattern
        if name == pattern:
            return True
        if self.parent_style:
            return name.endswith("." + pattern)
        return pattern.startswith(".") and name.endswith(pattern) and len(name) > len(pattern)

    def _keys(self, entry: _Entry, name: str) -> list[str]:
        assert entry.table is not None
        if not entry.table.fixed:
            return [name]
        labels = name.split(".")
        parents = (".".join(labels[i:]) for i in range(1, len(labels)))
        if self.parent_style:
            return [name, *parents]
        return [name, *("." + parent for parent in parents)]


def _items(text: str) -> list[str]:
    """The entries of a list value, with ``/file/name`` entries read in their place."""
    found: list[str] = []
    for item in _SEPARATORS.split(text.strip()):
        if not item:
            continue
        if item.startswith("/"):
            found.extend(_file_items(Path(item)))
        else:
            found.append(item)
    return found


def _file_items(path: Path) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except OSError as exc:
        raise TableError(f"open {path}: {exc.strerror or exc}") from None
    lines = (line.split("#", 1)[0] for line in text.splitlines())
    return [item for line in lines for item in _SEPARATORS.split(line.strip()) if item]

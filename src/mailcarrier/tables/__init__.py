"""Lookup tables: Postfix ``type:name`` tables and lists of them, with Postfix's semantics.

Kinds: ``inline:{k=v, ...}``, ``static:value``, ``texthash:/path``, ``hash:/path``,
``btree:/path``, ``lmdb:/path`` and ``cdb:/path`` (files in Postfix's own formats, made by
postmap or by `build.build_index`, as ``mailcarrier map`` does),
``regexp:/path``, ``pcre:/path``, ``cidr:/path``, ``unionmap:{...}``, ``pipemap:{...}``.
`open_table` opens one, `open_maps` a list; `Maps.find_address` / `find_domain` apply the
key search orders. This package imports nothing from mailcarrier but `errors`, `durable` and
`printable`; configuration (`mailcarrier.config`) sits above it.

The names below are loaded when first used (PEP 562): a command that only checks a table's
syntax (``sendmail`` reading main.cf) does not load the kinds it never opens.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from mailcarrier.lazy import lazy_names

if TYPE_CHECKING:
    from mailcarrier.tables.base import Table, TableError
    from mailcarrier.tables.build import BuildOptions, build_index
    from mailcarrier.tables.maps import Maps, Match, open_maps
    from mailcarrier.tables.registry import open_table
    from mailcarrier.tables.search import Key, address_keys, domain_keys
    from mailcarrier.tables.spec import TABLE_TYPES, TableSpec, parse_spec, spec_files
    from mailcarrier.tables.watch import FileWatcher

# Where each public name lives.
_HOMES: dict[str, tuple[str, ...]] = {
    "base": ("Table", "TableError"),
    "build": ("BuildOptions", "build_index"),
    "maps": ("Maps", "Match", "open_maps"),
    "registry": ("open_table",),
    "search": ("Key", "address_keys", "domain_keys"),
    "spec": ("TABLE_TYPES", "TableSpec", "parse_spec", "spec_files"),
    "watch": ("FileWatcher",),
}

__all__ = [
    "TABLE_TYPES",
    "BuildOptions",
    "FileWatcher",
    "Key",
    "Maps",
    "Match",
    "Table",
    "TableError",
    "TableSpec",
    "address_keys",
    "build_index",
    "domain_keys",
    "open_maps",
    "open_table",
    "parse_spec",
    "spec_files",
]


__getattr__, __dir__ = lazy_names(__name__, _HOMES, globals())

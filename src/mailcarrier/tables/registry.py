"""Opening tables: ``type:name`` text in, a `Table` out.

`open_table("hash:/etc/mailcarrier/transport", base_dir=...)` checks the syntax with
`spec.parse_spec`, resolves a relative file name against `base_dir` (the configuration
directory) and builds the table of that kind. Failures raise `TableError` naming the table.
Lists of tables with Postfix's first-match semantics are in `maps.py`.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path

from mailcarrier.tables.base import Table, TableError
from mailcarrier.tables.cidr import CidrTable
from mailcarrier.tables.composite import PipeTable, UnionTable
from mailcarrier.tables.formats import open_indexed
from mailcarrier.tables.regexp import RegexpTable
from mailcarrier.tables.simple import InlineTable, StaticTable, TextHashTable
from mailcarrier.tables.spec import INDEXED, parse_spec


def open_table(text: str, base_dir: Path | None = None) -> Table:
    try:
        spec = parse_spec(text)
    except ValueError as exc:
        raise TableError(str(exc)) from None
    name = str(spec)
    kind = spec.kind
    if kind == "inline":
        return InlineTable(name, spec.name)
    if kind == "static":
        return StaticTable(name, spec.name)
    if kind in ("unionmap", "pipemap"):
        opener = partial(open_table, base_dir=base_dir)
        cls = UnionTable if kind == "unionmap" else PipeTable
        return cls(name, spec.name, opener)
    path = spec.path(base_dir)
    if kind in INDEXED:
        return open_indexed(name, path, kind)
    if kind == "texthash":
        return TextHashTable(name, path)
    if kind in ("regexp", "pcre"):
        return RegexpTable(name, path, kind)
    if kind == "cidr":
        return CidrTable(name, path)
    raise TableError(f'unsupported dictionary type: "{kind}"')  # pragma: no cover

"""``type:name`` table specifications: syntax check, the list of kinds, the files behind them.

`parse_spec("hash:/etc/x")` returns a `TableSpec` or raises ValueError with Postfix's wording
("unsupported dictionary type", "need dictionary_type:dictionary_name format"). It opens
nothing, so main.cf can be validated without the table files; `registry.open_table` opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailcarrier.tables.text import split_braced, strip_group

# Indexed files (formats.py) and the suffix postmap gives each: "mailcarrier map" builds them.
INDEXED: Final = {"hash": ".db", "btree": ".db", "lmdb": ".lmdb", "cdb": ".cdb"}
FILE_KINDS: Final = frozenset({"texthash", "regexp", "pcre", "cidr", *INDEXED})
BRACED_KINDS: Final = frozenset({"inline", "unionmap", "pipemap"})
# Tables configured by a *_table(5) file (a name starting with / or .) or by main.cf
# parameters (any other name, as a prefix); registry.network_kind opens them.
NETWORK_KINDS: Final = frozenset({"pgsql", "mysql", "sqlite", "ldap", "memcache"})
# Tables whose name is their server: socketmap:inet:host:port:name, tcp:host:port.
CLIENT_KINDS: Final = frozenset({"socketmap", "tcp"})
TABLE_TYPES: Final = frozenset(
    {"static", "proxy", *FILE_KINDS, *BRACED_KINDS, *NETWORK_KINDS, *CLIENT_KINDS}
)


@dataclass(frozen=True, slots=True)
class TableSpec:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}:{self.name}"

    def path(self, base_dir: Path | None = None) -> Path:
        """The source file of a file-based table; relative names are under `base_dir`."""
        path = Path(self.name).expanduser()
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        return path


def parse_spec(text: str) -> TableSpec:
    kind, sep, name = text.strip().partition(":")
    if not sep or not kind:
        raise ValueError(f'need dictionary_type:dictionary_name format, not "{text}"')
    if kind not in TABLE_TYPES:
        raise ValueError(f'unsupported dictionary type: "{kind}" in "{text}"')
    if not name:
        raise ValueError(f'empty table name in "{text}"')
    if kind in BRACED_KINDS and not (name.startswith("{") and name.endswith("}")):
        raise ValueError(f'{kind} table "{text}": need {kind}:{{...}} format')
    if kind == "proxy":
        inner = parse_spec(name)  # proxy:type:name, checked as Postfix's proxymap does
        if inner.kind == "proxy":
            return inner
    return TableSpec(kind, name)


def spec_files(text: str, base_dir: Path | None = None) -> tuple[Path, ...]:
    """The files a table reads, without opening it (used to watch for changes)."""
    spec = parse_spec(text)
    if spec.kind in ("unionmap", "pipemap"):
        out: list[Path] = []
        for item in split_braced(strip_group(spec.name)):
            out.extend(spec_files(item, base_dir))
        return tuple(out)
    if spec.kind in INDEXED:
        source = spec.path(base_dir)
        return (source, source.with_name(source.name + INDEXED[spec.kind]))
    if spec.kind in FILE_KINDS and not spec.name.startswith("{"):  # cidr:{...}: main.cf
        return (spec.path(base_dir),)
    if spec.kind == "proxy":
        return spec_files(spec.name, base_dir)
    if spec.kind in NETWORK_KINDS and spec.name.startswith(("/", ".")):
        return (spec.path(base_dir),)
    return ()

"""``mailcarrier map``: build indexed tables and query any table, like postmap(1).

    map [-fNnopruw] [type:]FILE...          build FILE.db (hash, the default; btree),
                                            FILE.lmdb (lmdb) or FILE.cdb (cdb) from FILE
    map [-fNnu] -q KEY [type:]name...       print the value of KEY from the first table with it
    map [-fNnu] -q - [type:]name...         keys from standard input: "key<TAB>value" lines
    map [-fNnu] -s type:FILE                every entry of an indexed table, in file order

The options are postmap's: -f no case folding, -N/-n keys and values with/without the
trailing null byte, -u no UTF-8 (ASCII-only case folding, any bytes), -w ignore duplicate
keys silently, -r keep the last of duplicate keys, -p mode 0644 instead of the source's
read permissions, -o keep the file's owner when run by root. Tables are opened when first
needed, as postmap opens them, so ``-q`` stops at the first table that has the key. An entry
whose value is empty is printed with postmap's two warnings. Entry point:
``map_main(argv, stdout, stderr, stdin=None) -> int``. Exit status: 0 success (or key
found), 1 key not found (as postmap), 64 usage error, 75 a table could not answer now (a
database server down or too slow: postmap's "table TYPE:NAME: query error"), 78 table error
(postmap: 1). Warnings (malformed lines, duplicates, stale indexes, a server that failed) go
to stderr, one line each; errors are one line. A build shows a progress line on stderr when
it is a terminal (lines read, rate, time left: progress.py). Network tables (pgsql:, mysql:,
sqlite:, ...) give the answers `postmap -q` gives for the same configuration file.
"""

from __future__ import annotations

import getopt
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Final, TextIO

from mailcarrier.errors import ConfigError
from mailcarrier.printable import printable
from mailcarrier.progress import terminal_progress
from mailcarrier.tables.base import Table, TableError, TableLookupError
from mailcarrier.tables.build import BuildOptions, build_index
from mailcarrier.tables.formats import open_indexed
from mailcarrier.tables.indexed import IndexedTable, LookupOptions, decode
from mailcarrier.tables.registry import open_table
from mailcarrier.tables.spec import INDEXED, parse_spec

EX_OK, EX_NOTFOUND, EX_USAGE, EX_TEMPFAIL, EX_CONFIG = 0, 1, 64, 75, 78
USAGE = "usage: mailcarrier map [-fNnopruw] [-q KEY|-] [-s] [type:]FILE..."
HELP = f"""\
{USAGE}

Build or query lookup tables as postmap(1) does, in Postfix's own file formats.
  map FILE                 build FILE.db (hash) from the text FILE
  map type:FILE            build the index of that type: hash, btree (FILE.db), lmdb
                           (FILE.lmdb) or cdb (FILE.cdb); Postfix's daemons read them
  map -q KEY type:NAME...  look KEY up in each table in turn; print the first value
  map -q - type:NAME...    look up each line of standard input; print "key<TAB>value"
  map -s type:FILE         list every entry of an indexed table
Any table type can be queried: texthash, inline, regexp, pcre, cidr, sqlite, pgsql,
mysql, ldap, memcache, socketmap, tcp, proxy:... (a configuration file or main.cf prefix
for the network kinds). Options as postmap's:
  -f  no case folding of keys             -N  keys and values with a trailing NUL
  -n  without the trailing NUL            -u  no UTF-8: ASCII-only folding, any bytes
  -r  duplicate keys: keep the last       -w  duplicate keys: ignore them silently
  -p  new files mode 0644, not the source's read permissions
  -o  run by root: keep the file's owner (not the source's)
Exit status: 0 found (or built), 1 not found, 64 usage, 75 a table could not answer now,
78 a table could not be opened or read."""
PROG = "mailcarrier"
DEFAULT_TYPE = "hash"  # postmap's default_database_type on Debian
_OPTIONS = "fNnoprsuwq:"
_NOT_SUPPORTED = "bcdFhijmUv"


class _Usage(Exception):
    pass


def _target(text: str) -> tuple[str, str]:
    """``type:name`` -> (type, name); a bare file name is a hash table, as in postmap."""
    if ":" in text and not text.startswith(("/", ".")):
        try:
            spec = parse_spec(text)
        except ValueError as exc:
            raise TableError(str(exc)) from None
        return spec.kind, spec.name
    return DEFAULT_TYPE, text


def _safe(text: str) -> str:
    """Text for standard output: bytes that were not UTF-8 cannot be written as text."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


class _Tables:
    """The tables named on the command line, each opened when first asked, as postmap."""

    def __init__(self, targets: Sequence[str], lookup: LookupOptions, stderr: TextIO) -> None:
        self.targets = list(targets)
        self.lookup = lookup
        self.stderr = stderr
        self.opened: dict[int, Table] = {}

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> Table:
        if index not in self.opened:
            kind, name = _target(self.targets[index])
            if kind in INDEXED:
                table: Table = open_indexed(f"{kind}:{name}", Path(name), kind, self.lookup)
            else:
                table = open_table(f"{kind}:{name}")
            for warning in table.warnings:
                _warn(self.stderr, warning)
            self.opened[index] = table
        return self.opened[index]

    def find(self, key: str) -> tuple[Table, str] | None:
        for index in range(len(self)):
            table = self[index]
            try:
                value = table.lookup(key)
            finally:
                for warning in table.take_warnings():
                    _warn(self.stderr, warning)
            if value is not None:
                return table, value
        return None


def _warn(stderr: TextIO, text: str) -> None:
    print(printable(f"{PROG}: warning: {text}"), file=stderr)


def _empty_value(stderr: TextIO, table: Table, key: str) -> None:
    _warn(stderr, f"table {table.spec}: key {key}: empty string result is not allowed")
    _warn(stderr, f"table {table.spec} should return NO RESULT in case of NOT FOUND")


def _query(key: str, tables: _Tables, stdout: TextIO, stdin: TextIO) -> int:
    keys: Iterator[str] = (line.removesuffix("\n") for line in stdin) if key == "-" else iter([key])
    status = EX_NOTFOUND
    for item in keys:
        found = tables.find(item)
        if found is None:
            continue
        table, value = found
        if not value:
            _empty_value(tables.stderr, table, item)
        print(_safe(f"{item}\t{value}" if key == "-" else value), file=stdout)
        status = EX_OK
    return status


def _sequence(tables: _Tables, stdout: TextIO) -> int:
    table = tables[0]  # postmap -s shows the first table only
    if not isinstance(table, IndexedTable):
        raise TableError(f"{table.spec}: -s lists only hash, btree, lmdb and cdb tables")
    for raw_key, raw_value in table.items():
        key, value = decode(raw_key), decode(raw_value)
        if not key:
            _warn(tables.stderr, f"table {table.spec}: empty lookup key value is not allowed")
        elif not value:
            _empty_value(tables.stderr, table, key)
        print(_safe(f"{key}\t{value}"), file=stdout)
    return EX_OK


def _build(targets: Sequence[str], options: BuildOptions, stderr: TextIO) -> int:
    for target in targets:
        kind, name = _target(target)
        if kind not in INDEXED:
            raise _Usage(f"cannot build {kind} tables: they are read directly")
        # On a terminal: lines of the source read, rate, time left (progress.py).
        with terminal_progress(stderr, f"map {kind}:{name}", "lines") as progress:
            _, warnings = build_index(Path(name), kind, options, progress)
        for warning in warnings:
            _warn(stderr, warning)
    return EX_OK


@dataclass
class _Command:
    """What the command line asks for: postmap's flags, in order, the last one counting."""

    lookup: LookupOptions = field(default_factory=LookupOptions)
    build: BuildOptions = field(default_factory=BuildOptions)
    query: str | None = None
    sequence: bool = False
    targets: list[str] = field(default_factory=list)


_LOOKUP_FLAGS: Final[dict[str, dict[str, Any]]] = {
    "-f": {"fold": False},
    "-N": {"try1null": True, "try0null": False},
    "-n": {"try1null": False, "try0null": True},
    "-u": {"utf8": False},
}
_BUILD_FLAGS: Final[dict[str, dict[str, Any]]] = {
    "-f": {"fold": False},
    "-N": {"nulls": True},
    "-n": {"nulls": False},
    "-u": {"utf8": False},
    "-r": {"duplicates": "replace"},
    "-w": {"duplicates": "ignore"},
    "-p": {"keep_permissions": False},
    "-o": {"as_owner": False},
}


def _parse(argv: Sequence[str]) -> _Command:
    try:
        pairs, rest = getopt.getopt(list(argv), _OPTIONS)
    except getopt.GetoptError as exc:
        if exc.opt and exc.opt in _NOT_SUPPORTED:
            raise _Usage(f"postmap's option -{exc.opt} is not supported") from None
        raise _Usage("") from None
    command = _Command(targets=rest)
    for name, value in pairs:
        if name in ("-q", "-s"):
            if command.query is not None or command.sequence:
                raise _Usage("specify only one of -q or -s")
            command.query, command.sequence = (value, False) if name == "-q" else (None, True)
        command.lookup = replace(command.lookup, **_LOOKUP_FLAGS.get(name, {}))
        command.build = replace(command.build, **_BUILD_FLAGS.get(name, {}))
    if not rest:
        raise _Usage("")
    return command


def map_main(
    argv: Sequence[str], stdout: TextIO, stderr: TextIO, stdin: TextIO | None = None
) -> int:
    args = list(argv)
    if args[:1] in (["-h"], ["--help"]):
        print(HELP, file=stdout)
        return EX_OK
    try:
        command = _parse(args)
        tables = _Tables(command.targets, command.lookup, stderr)
        if command.query is not None:
            return _query(command.query, tables, stdout, stdin or sys.stdin)
        if command.sequence:
            return _sequence(tables, stdout)
        return _build(command.targets, command.build, stderr)
    except _Usage as exc:
        if str(exc):
            print(printable(f"{PROG}: fatal: {exc}"), file=stderr)
        print(USAGE, file=stderr)
        return EX_USAGE
    except TableLookupError as exc:
        print(printable(f"{PROG}: fatal: {exc}"), file=stderr)
        return EX_TEMPFAIL
    except ConfigError as exc:
        print(printable(f"{PROG}: fatal: {exc}"), file=stderr)
        return EX_CONFIG
    except OSError as exc:
        print(printable(f"{PROG}: fatal: {exc.filename or ''}: {exc.strerror or exc}"), file=stderr)
        return EX_CONFIG

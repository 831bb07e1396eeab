"""``mailcarrier map``: build indexed tables and query any table, like postmap(1).

    map [type:]FILE...          compile FILE into FILE.db (hash, the default) or FILE.lmdb
    map -q KEY type:name...     print the value of KEY from the first table that has it
    map -q - type:name...       read keys from standard input, print "key<TAB>value" lines

Entry point: ``map_main(argv, stdout, stderr, stdin=None) -> int``. Exit status: 0 success
(or key found), 1 key not found (as postmap), 64 usage error, 75 a table could not answer
now (a database server down or too slow: postmap's "table TYPE:NAME: query error"), 78 table
error. Warnings (malformed lines, stale indexes, a server that failed) go to stderr, one
line each; errors are one line. Network tables (pgsql:, mysql:, sqlite:, ...) give the
answers `postmap -q` gives for the same configuration file.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mailcarrier.errors import ConfigError
from mailcarrier.printable import printable
from mailcarrier.tables.base import TableLookupError
from mailcarrier.tables.hashdb import build_index
from mailcarrier.tables.maps import Maps, Match, open_maps
from mailcarrier.tables.spec import INDEXED, parse_spec

EX_OK, EX_NOTFOUND, EX_USAGE, EX_TEMPFAIL, EX_CONFIG = 0, 1, 64, 75, 78
USAGE = "usage: mailcarrier map [type:]FILE... | mailcarrier map -q KEY|- type:name..."
PROG = "mailcarrier"


def _build(targets: Sequence[str], stderr: TextIO) -> int:
    for target in targets:
        kind, name = ("hash", target)
        if ":" in target and not target.startswith(("/", ".")):
            try:
                spec = parse_spec(target)
            except ValueError as exc:
                print(printable(f"{PROG}: fatal: {exc}"), file=stderr)
                return EX_CONFIG
            kind, name = spec.kind, spec.name
        if kind not in INDEXED:
            print(
                printable(f"{PROG}: fatal: cannot build {kind} tables: they are read directly"),
                file=stderr,
            )
            return EX_USAGE
        _, warnings = build_index(Path(name), kind)
        for warning in warnings:
            print(printable(f"{PROG}: warning: {warning}"), file=stderr)
    return EX_OK


def _find(maps: Maps, key: str, stderr: TextIO) -> Match | None:
    """The first match; a table that cannot answer now is postmap's "query error"."""
    for table in maps.tables:
        try:
            value = table.lookup(key)
        except TableLookupError:
            _warn(maps, stderr)
            raise
        _warn(maps, stderr)
        if value is not None:
            return Match(value, key, table.spec)
    return None


def _warn(maps: Maps, stderr: TextIO) -> None:
    for warning in maps.take_warnings():
        print(printable(f"{PROG}: warning: {warning}"), file=stderr)


def _empty(match: Match, key: str, stderr: TextIO) -> None:
    """postmap's warnings for a table that answers with an empty string."""
    if not match.value:
        for warning in (
            f"table {match.table}: key {key}: empty string result is not allowed",
            f"table {match.table} should return NO RESULT in case of NOT FOUND",
        ):
            print(printable(f"{PROG}: warning: {warning}"), file=stderr)


def _query(key: str, maps: Maps, stdout: TextIO, stderr: TextIO, stdin: TextIO) -> int:
    if key != "-":
        match = _find(maps, key, stderr)
        if match is None:
            return EX_NOTFOUND
        _empty(match, key, stderr)
        print(match.value, file=stdout)
        return EX_OK
    status = EX_NOTFOUND
    for line in stdin:
        item = line.strip()
        if item and (match := _find(maps, item, stderr)) is not None:
            _empty(match, item, stderr)
            print(f"{item}\t{match.value}", file=stdout)
            status = EX_OK
    return status


def map_main(
    argv: Sequence[str], stdout: TextIO, stderr: TextIO, stdin: TextIO | None = None
) -> int:
    args = list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE, file=stdout if args else stderr)
        return EX_OK if args else EX_USAGE
    try:
        if args[0] == "-q":
            if len(args) < 3:
                print(USAGE, file=stderr)
                return EX_USAGE
            maps = open_maps(args[2:])
            for warning in maps.warnings:
                print(printable(f"{PROG}: warning: {warning}"), file=stderr)
            try:
                return _query(args[1], maps, stdout, stderr, stdin or sys.stdin)
            except TableLookupError as exc:
                print(printable(f"{PROG}: fatal: {exc}"), file=stderr)
                return EX_TEMPFAIL
        if any(arg.startswith("-") for arg in args):
            print(USAGE, file=stderr)
            return EX_USAGE
        return _build(args, stderr)
    except ConfigError as exc:
        print(printable(f"{PROG}: fatal: {exc}"), file=stderr)
        return EX_CONFIG
    except OSError as exc:
        print(printable(f"{PROG}: fatal: {exc.filename or ''}: {exc.strerror or exc}"), file=stderr)
        return EX_CONFIG

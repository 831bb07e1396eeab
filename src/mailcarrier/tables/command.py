"""``mailcarrier map``: build indexed tables and query any table, like postmap(1).

    map [type:]FILE...          compile FILE into FILE.db (hash, the default) or FILE.lmdb
    map -q KEY type:name...     print the value of KEY from the first table that has it
    map -q - type:name...       read keys from standard input, print "key<TAB>value" lines

Entry point: ``map_main(argv, stdout, stderr, stdin=None) -> int``. Exit status: 0 success
(or key found), 1 key not found (as postmap), 64 usage error, 78 table error. Warnings
(malformed lines, stale indexes) go to stderr, one line each; errors are one line.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TextIO

from mailcarrier.errors import ConfigError
from mailcarrier.printable import printable
from mailcarrier.tables.hashdb import build_index
from mailcarrier.tables.maps import Maps, open_maps
from mailcarrier.tables.spec import INDEXED, parse_spec

EX_OK, EX_NOTFOUND, EX_USAGE, EX_CONFIG = 0, 1, 64, 78
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


def _query(key: str, maps: Maps, stdout: TextIO, stdin: TextIO) -> int:
    if key != "-":
        match = maps.find(key)
        if match is None:
            return EX_NOTFOUND
        print(match.value, file=stdout)
        return EX_OK
    status = EX_NOTFOUND
    for line in stdin:
        item = line.strip()
        if item and (match := maps.find(item)) is not None:
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
            return _query(args[1], maps, stdout, stdin or sys.stdin)
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

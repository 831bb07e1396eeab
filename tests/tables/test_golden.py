"""Golden tests for every table kind: tests/golden/tables/*.in -> *.ref.

Each ``.in`` file is a table source whose ``#!`` comment lines (ordinary comments to every
table parser) direct the test: ``#! spec: TYPE:{file}`` opens it (``{dir}`` is the directory
holding a copy of every case, ``{file}`` this case's copy), ``#! build`` compiles it first
(hash/lmdb), and ``#! query: KEY``, ``#! address: ADDR [+] [local]``, ``#! domain: NAME
[parent]`` are the lookups whose results, with the load warnings, make the ``.ref`` output.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from mailcarrier.tables import Maps, TableError, build_index, open_table
from mailcarrier.tables.formats import FORMATS
from mailcarrier.tables.indexed import available
from tests.support.golden import cases, check_golden

CASES = cases("tables")


def _copy_all(tmp_path: Path) -> None:
    for case in CASES:
        shutil.copy(case, tmp_path / case.stem)


def _lookup(maps: Maps, verb: str, arg: str) -> str:
    words = arg.split()
    if verb == "query":
        match = maps.find(arg)
    elif verb == "address":
        delimiter = "+" if "+" in words[1:] else ""
        match = maps.find_address(words[0], recipient_delimiter=delimiter, local="local" in words)
    else:
        match = maps.find_domain(words[0], parent_matches_subdomains="parent" in words)
    if match is None:
        return f"{verb} {arg} => (not found)"
    extra = f" [ext={match.extension}]" if match.extension else ""
    return f"{verb} {arg} => {match.value!r} (key {match.key!r}){extra}"


def _skip_without_library(case: Path) -> None:
    for line in case.read_text().splitlines():
        kind = line.partition("spec:")[2].strip().partition(":")[0]
        if line.startswith("#! spec:") and kind in FORMATS:
            package = FORMATS[kind].package
            if not available(package):
                pytest.skip(f"{kind}: tables need the Python package {package.module}")


def run_case(case: Path, tmp_path: Path) -> str:
    _skip_without_library(case)
    _copy_all(tmp_path)
    directives = [
        line[2:].strip().partition(":")
        for line in case.read_text().splitlines()
        if line.startswith("#!")
    ]
    out: list[str] = []
    spec = ""
    for verb, _, arg in directives:
        verb, arg = verb.strip(), arg.strip()
        if verb == "spec":
            spec = arg.replace("{file}", str(tmp_path / case.stem)).replace("{dir}", str(tmp_path))
        elif verb.startswith("build"):
            kind = verb.split()[1] if " " in verb else "hash"
            count, warnings = build_index(tmp_path / case.stem, kind)
            out.append(f"built {count} entries")
            out.extend(f"warning: {w}" for w in warnings)
    try:
        table = open_table(spec)
    except TableError as exc:
        out.append(f"error: {exc}")
        return "\n".join(out).replace(str(tmp_path), "{dir}") + "\n"
    out.extend(f"warning: {w}" for w in table.warnings)
    maps = Maps([table])
    for verb, _, arg in directives:
        verb, arg = verb.strip(), arg.strip()
        if verb in ("query", "address", "domain"):
            out.append(_lookup(maps, verb, arg))
    return "\n".join(out).replace(str(tmp_path), "{dir}") + "\n"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden_table(case: Path, tmp_path: Path) -> None:
    check_golden(case.with_suffix(".ref"), run_case(case, tmp_path))


def test_there_is_a_case_for_every_kind() -> None:
    from mailcarrier.tables.spec import TABLE_TYPES

    covered = set()
    for case in CASES:
        for line in case.read_text().splitlines():
            if line.startswith("#! spec:"):
                covered.add(line.split(":", 2)[1].strip())
    assert covered >= TABLE_TYPES

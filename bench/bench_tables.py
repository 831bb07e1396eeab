"""Lookup tables: lookups per second and latency of each table type on a 100,000-key table.

Run as ``python -m bench.bench_tables [--entries N] [--lookups N]`` (`make bench` runs it). It
writes one postmap-format source file of N keys in a temporary directory; then, for each
entry of `TABLE_TYPES`, it makes the table (``mailcarrier map`` for the indexed files: Postfix's
own formats), opens it, and asks it for `--lookups` random keys that are there and as many
that are not, one `Table.lookup` at a time, each timed on its own: the figures are lookups
per second (all of them, back to back) and the median and 99th percentile of one lookup.
texthash: (a dict in memory) is the reference. The figures go to bench/results/tables.json
for bench/report.py. A measurement, not a test: it asserts only that every key that is there
was found and no other was.

Adding a table type is one more ``(label, builder)`` in `TABLE_TYPES`: the builder gets the
work directory and the source file and returns the ``type:name`` to open, after making
whatever the type needs (a database to load, a configuration file to write); it raises
`Unavailable` when this machine cannot have the type (a package or a server missing), and the
row says why instead of a figure.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from bench import common
from mailcarrier.tables import TableError, build_index, open_table
from mailcarrier.tables.formats import FORMATS
from mailcarrier.tables.indexed import available

SpecBuilder = Callable[[Path, Path], str]


class Unavailable(Exception):
    """This machine cannot have the table type (the message says why)."""


def _indexed(kind: str) -> SpecBuilder:
    def build(work: Path, source: Path) -> str:
        package = FORMATS[kind].package
        if not available(package):
            raise Unavailable(f"Python package {package.module} not installed (make extras)")
        build_index(source, kind)
        return f"{kind}:{source}"

    return build


def _texthash(work: Path, source: Path) -> str:
    return f"texthash:{source}"


TABLE_TYPES: list[tuple[str, SpecBuilder]] = [
    ("texthash", _texthash),
    ("hash", _indexed("hash")),
    ("btree", _indexed("btree")),
    ("lmdb", _indexed("lmdb")),
    ("cdb", _indexed("cdb")),
]


def _write_source(path: Path, entries: int) -> list[str]:
    keys = [f"user{i}@domain{i % 997}.example" for i in range(entries)]
    with path.open("w", encoding="utf-8") as handle:
        for i, key in enumerate(keys):
            handle.write(f"{key}\tsmtp:[relay{i % 13}.example]:587\n")
    return keys


def _timed(
    lookup: Callable[[str], str | None], keys: Sequence[str]
) -> tuple[float, list[int], int]:
    """(total seconds, each lookup's nanoseconds, how many were found)."""
    clock = time.perf_counter_ns
    latencies: list[int] = []
    found = 0
    for key in keys:
        start = clock()
        value = lookup(key)
        latencies.append(clock() - start)
        found += value is not None
    return sum(latencies) / 1e9, latencies, found


def _figures(seconds: float, latencies: list[int]) -> dict[str, float]:
    ordered = sorted(latencies)
    return {
        "rate": len(ordered) / seconds if seconds else 0.0,
        "p50_us": statistics.median(ordered) / 1000,
        "p99_us": ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] / 1000,
    }


def measure(
    label: str, builder: SpecBuilder, work: Path, source: Path, hits: list[str], misses: list[str]
) -> dict[str, Any]:
    start = time.perf_counter()
    try:
        spec = builder(work, source)
    except Unavailable as exc:
        return {"label": label, "unavailable": str(exc)}
    built = time.perf_counter() - start
    start = time.perf_counter()
    table = open_table(spec)
    opened = time.perf_counter() - start
    hit_seconds, hit_latencies, found = _timed(table.lookup, hits)
    miss_seconds, miss_latencies, wrong = _timed(table.lookup, misses)
    assert found == len(hits) and wrong == 0, f"{label}: {found} found, {wrong} wrongly"
    return {
        "label": label,
        "spec": spec.replace(str(work), "WORK"),
        "build_s": built,
        "open_s": opened,
        "hits": _figures(hit_seconds, hit_latencies),
        "misses": _figures(miss_seconds, miss_latencies),
    }


def _print(row: dict[str, Any]) -> None:
    if "unavailable" in row:
        print(f"{row['label']:<10} not available: {row['unavailable']}")
        return
    hits, misses = row["hits"], row["misses"]
    print(
        f"{row['label']:<10} build {row['build_s']:7.2f} s  open {row['open_s']:6.3f} s  "
        f"hits {hits['rate']:>10,.0f}/s p50 {hits['p50_us']:6.1f} us p99 {hits['p99_us']:6.1f} us  "
        f"misses {misses['rate']:>10,.0f}/s p99 {misses['p99_us']:6.1f} us"
    )


def run(entries: int, lookups: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        source = work / "transport"
        keys = _write_source(source, entries)
        hits = random.Random(7).choices(keys, k=lookups)
        misses = [f"nobody{i}@nowhere.example" for i in range(lookups)]
        for label, builder in TABLE_TYPES:
            try:
                row = measure(label, builder, work, source, hits, misses)
            except TableError as exc:
                row = {"label": label, "unavailable": str(exc)}
            _print(row)
            rows.append(row)
    return {"entries": entries, "lookups": lookups, "rows": rows}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    args = parser.parse_args(argv)
    common.save("tables", run(args.entries, args.lookups))


if __name__ == "__main__":
    main()

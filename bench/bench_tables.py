"""Microbenchmark of mailcarrier.tables: build and query a 100,000-entry hash table.

Run as ``python -m bench.bench_tables [--entries N] [--lookups N]``. It writes a postmap-format
source file in a temporary directory, compiles it with `build_index` (what ``mailcarrier map``
does), then times hits and misses through `Maps.find` and the full address search order of
`Maps.find_address`, and prints build time and lookups per second. A measurement, not a test:
it asserts only that every looked-up key was found.
"""

from __future__ import annotations

import argparse
import random
import tempfile
import time
from pathlib import Path

from mailcarrier.tables import build_index, open_maps


def _write_source(path: Path, entries: int) -> list[str]:
    keys = [f"user{i}@domain{i % 997}.example" for i in range(entries)]
    with path.open("w", encoding="utf-8") as handle:
        for i, key in enumerate(keys):
            handle.write(f"{key}\tsmtp:[relay{i % 13}.example]:587\n")
    return keys


def _rate(count: int, seconds: float) -> str:
    return f"{count / seconds:>12,.0f} lookups/s" if seconds > 0 else "n/a"


def run(entries: int, lookups: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "transport"
        keys = _write_source(source, entries)
        start = time.perf_counter()
        built, warnings = build_index(source)
        build_seconds = time.perf_counter() - start
        assert built == entries and not warnings
        maps = open_maps(f"hash:{source}")
        sample = random.Random(7).choices(keys, k=lookups)
        misses = [f"nobody{i}@nowhere.example" for i in range(lookups)]

        start = time.perf_counter()
        found = sum(maps.find(key) is not None for key in sample)
        hit_seconds = time.perf_counter() - start
        assert found == lookups

        start = time.perf_counter()
        for key in misses:
            maps.find(key)
        miss_seconds = time.perf_counter() - start

        start = time.perf_counter()
        for key in misses:
            maps.find_address(key.replace("@", "+ext@"), recipient_delimiter="+")
        search_seconds = time.perf_counter() - start

    print(f"entries            {entries:>12,}")
    print(
        f"build (map)        {build_seconds:>12.3f} s  ({entries / build_seconds:,.0f} entries/s)"
    )
    print(f"hits               {_rate(lookups, hit_seconds)}")
    print(f"misses             {_rate(lookups, miss_seconds)}")
    print(f"address searches   {_rate(lookups, search_seconds)}  (3 keys each, all misses)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--lookups", type=int, default=100_000)
    args = parser.parse_args(argv)
    run(args.entries, args.lookups)


if __name__ == "__main__":
    main()

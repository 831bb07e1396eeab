"""`make bench`: run every benchmark in bench/ in turn and print its figures.

Each benchmark module exposes `main() -> None` and prints its own table of results.
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = ("bench.bench_content", "bench.bench_tables")


def main() -> int:
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available ({exc})")
            continue
        print(f"== {name}")
        start = time.perf_counter()
        module.main()
        print(f"== {name} done in {time.perf_counter() - start:.1f} s\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

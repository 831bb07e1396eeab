"""`make bench`: run every benchmark in bench/ in turn and print its figures.

Each benchmark module exposes `main() -> None` and prints its own table of results; the
side-by-side throughput benchmarks (engine, scale, size, drain, agents, native, fleet), the
SQL tables benchmark (tables_sql) and the submission latency (submit) also store their
figures, and bench/report.py then writes bench/RESULTS.md and bench/throughput.png from them.
"""

from __future__ import annotations

import importlib
import sys
import time

BENCHMARKS = (
    "bench.bench_content",
    "bench.bench_tables",
    "bench.bench_tables_sql",
    "bench.bench_engine",
    "bench.bench_scale",
    "bench.bench_size",
    "bench.bench_drain",
    "bench.bench_agents",
    "bench.bench_native",
    "bench.bench_fleet",
    "bench.bench_submit",
)


def main() -> int:
    for name in BENCHMARKS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            print(f"== {name}: not available ({exc})")
            continue
        print(f"== {name}")
        start = time.perf_counter()
        try:
            module.main()
        except Exception as exc:  # one broken benchmark must not stop the others
            print(f"== {name}: FAILED: {type(exc).__name__}: {str(exc)[-800:]}")
            continue
        print(f"== {name} done in {time.perf_counter() - start:.1f} s\n")
    from bench import report

    report.main()
    return 0


if __name__ == "__main__":
    sys.exit(main())

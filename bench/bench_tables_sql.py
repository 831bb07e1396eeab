"""SQL lookup tables: lookups per second and latency, and what they cost the engine.

Run as ``python -m bench.bench_tables_sql [--lookups N] [--messages N] [--runs R]``.

1. Lookups: ``sqlite:`` (a file) and ``pgsql:`` (a private PostgreSQL server on loopback,
   started as the tests start it), each asked N times with `Table.lookup` from plain code
   (one after the other) and with `Table.lookup_async` from 20 asyncio tasks at once (hits
   and misses alike); lookups per second and the p50/p99 latency of one lookup.
2. Engine: the engine benchmark's workload (bench/workload.py: 20 sessions of 4 KB messages
   to smtp-sink) with two pgsql: lookups per delivery, smtp_sasl_password_maps (SASL on; the
   sink offers no AUTH, but the credentials are looked up for the session's reuse key) and
   smtp_tls_policy_maps (the policy "may"), against the same workload without the tables;
   each side in a fresh process, interleaved; target: >= 0.9x.

Figures are stored as bench/results/tables_sql.json for bench/report.py. Measurements,
never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import common
from bench.common import Sink, median, ratio, run_bounded, spread

SIZE = 4096
CONCURRENCY = 20
TIMEOUT = 300.0
KEYS = ["alice@example.com", "plain", "nobody@example.org", "smtp.example.net"]


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def _sync_figures(lookup: Callable[[str], str | None], count: int) -> dict[str, float]:
    latencies: list[float] = []
    start = time.perf_counter()
    for i in range(count):
        began = time.perf_counter()
        lookup(KEYS[i % len(KEYS)])
        latencies.append(time.perf_counter() - began)
    seconds = time.perf_counter() - start
    return _figures(count, seconds, latencies)


def _async_figures(lookup: Callable[[str], Any], count: int) -> dict[str, float]:
    latencies: list[float] = []

    async def worker(share: int) -> None:
        for i in range(share):
            began = time.perf_counter()
            await lookup(KEYS[i % len(KEYS)])
            latencies.append(time.perf_counter() - began)

    async def run_all() -> float:
        start = time.perf_counter()
        shares = [count // CONCURRENCY] * CONCURRENCY
        await asyncio.gather(*(worker(s) for s in shares))
        return time.perf_counter() - start

    seconds = asyncio.run(run_all())
    return _figures(len(latencies), seconds, latencies)


def _figures(count: int, seconds: float, latencies: list[float]) -> dict[str, float]:
    return {
        "lookups_per_s": count / seconds,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": _percentile(latencies, 0.99) * 1000,
    }


def _pg_server(root: Path) -> Any:
    from tests.support import sqldata
    from tests.support.peers import pgsql

    if not pgsql.available():
        raise common.Skip("PostgreSQL server binaries not installed (Debian postgresql)")
    server = pgsql.PgServer(root)
    server.start()
    sqldata.fill_pgsql(server)
    return server


def lookups(root: Path, count: int, pg: Any) -> dict[str, Any]:
    from mailcarrier.tables import open_table
    from tests.support import sqldata

    db = sqldata.fill_sqlite(root / "m.db")
    query = "SELECT v FROM m WHERE k='%s'"
    sqlite_cf = root / "sqlite.cf"
    sqlite_cf.write_text(sqldata.cf_text(dbpath=str(db), query=query))
    pgsql_cf = root / "pgsql.cf"
    pgsql_cf.write_text(sqldata.cf_text(query=query, **sqldata.pgsql_params(pg)))
    out: dict[str, Any] = {}
    for kind, cf in (("sqlite", sqlite_cf), ("pgsql", pgsql_cf)):
        table = open_table(f"{kind}:{cf}")
        table.lookup("warm-up")
        out[kind] = {
            "sync": _sync_figures(table.lookup, count),
            "async": _async_figures(table.lookup_async, count),
        }
        for mode, f in out[kind].items():
            print(
                f"  {kind:6} {mode:5} {f['lookups_per_s']:>9,.0f} lookups/s  "
                f"p50 {f['p50_ms']:.3f} ms  p99 {f['p99_ms']:.3f} ms",
                flush=True,
            )
    return out


def _engine_run(sink: Sink, messages: int, overrides: dict[str, str]) -> float:
    args = ["mailcarrier", _loop(), str(sink.port), str(messages), str(CONCURRENCY), str(SIZE)]
    cmd = [sys.executable, "-m", "bench.workload", *args, json.dumps(overrides)]
    _, output = run_bounded(cmd, TIMEOUT, cwd=Path(__file__).resolve().parent.parent)
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            result = json.loads(line)
            if result["failed"]:
                print(f"  warning: {result['failed']} of {messages} messages not sent", flush=True)
            return float(result["rate"])
    raise RuntimeError(f"workload printed no result: {output[-500:]}")


def _loop() -> str:
    return "uvloop" if common.have_uvloop() else "asyncio"


def engine(root: Path, pg: Any, messages: int, runs: int) -> dict[str, Any]:
    from tests.support import sqldata

    common.need_postfix_tools()
    sasl_cf = root / "sasl.cf"
    sasl_cf.write_text(
        sqldata.cf_text(
            query="SELECT creds FROM passwd WHERE host='%s'", **sqldata.pgsql_params(pg)
        )
    )
    tls_cf = root / "tls.cf"
    tls_cf.write_text(
        sqldata.cf_text(query="SELECT 'may' WHERE '%s' <> ''", **sqldata.pgsql_params(pg))
    )
    with_tables = {
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": f"pgsql:{sasl_cf}",
        "smtp_tls_policy_maps": f"pgsql:{tls_cf}",
    }
    rates: dict[str, list[float]] = {"without": [], "with pgsql": []}
    with Sink("-a") as sink:  # no AUTH offered: credentials looked up, never sent
        for n in range(runs):
            rates["without"].append(_engine_run(sink, messages, {}))
            rates["with pgsql"].append(_engine_run(sink, messages, with_tables))
            print(
                f"  run {n + 1}: without {rates['without'][-1]:,.0f}/s, "
                f"with two pgsql lookups {rates['with pgsql'][-1]:,.0f}/s",
                flush=True,
            )
    without, with_pg = median(rates["without"]), median(rates["with pgsql"])
    result: dict[str, Any] = {
        "messages": messages,
        "runs": runs,
        "loop": _loop(),
        "rates": rates,
        "without": without,
        "with_pgsql": with_pg,
        "ratio": ratio(with_pg, without),
    }
    print(
        f"  median: without {without:,.0f}/s ({spread(rates['without'])}), with pgsql "
        f"{with_pg:,.0f}/s ({spread(rates['with pgsql'])}): {result['ratio']:.2f}x "
        f"(target >= 0.9: {common.verdict(result['ratio'], 0.9)})"
    )
    return result


def run(count: int, messages: int, runs: int) -> None:
    root = Path(tempfile.mkdtemp(prefix="mc-bench-sql-", dir="/tmp"))
    root.chmod(0o755)
    pg = _pg_server(root)
    try:
        print(f"lookups: {count:,} per table and mode ({CONCURRENCY} tasks in async mode)")
        found = lookups(root, count, pg)
        print(f"engine: {messages:,} x {SIZE} B messages, {CONCURRENCY} sessions, {runs} runs")
        figures = engine(root, pg, messages, runs)
    finally:
        pg.stop()
        shutil.rmtree(root, ignore_errors=True)
    common.save("tables_sql", {"lookups": found, "engine": figures, "count": count})


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_tables_sql")
    parser.add_argument("--lookups", type=int, default=5000)
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        run(args.lookups, args.messages, args.runs)
    except common.Skip as exc:
        print(f"skipped: {exc}")


if __name__ == "__main__":
    main()

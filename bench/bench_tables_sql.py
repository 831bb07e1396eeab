"""SQL lookup tables: lookups per second and latency, and what they cost the engine.

Run as ``python -m bench.bench_tables_sql [--lookups N] [--messages N] [--runs R]``.

1. Lookups: ``sqlite:`` (a file) and ``pgsql:`` (a private PostgreSQL server on loopback,
   started as the tests start it), each asked N times with `Table.lookup` from plain code
   (one after the other, hits and misses alike) and with `Table.lookup_async` from 20
   asyncio tasks at once, twice: every task asking other keys (each lookup a query), and
   every task asking the same few keys (a burst to one destination: a key asked while it
   is being asked waits for that answer); lookups per second and the p50/p99 latency.
2. Engine: the engine benchmark's workload (bench/workload.py: 20 sessions of 4 KB messages
   to smtp-sink) with smtp_sasl_password_maps and smtp_tls_policy_maps in pgsql: (SASL on;
   the sink offers no AUTH; the policy "may"), against the same workload without them. As
   in smtp(8), the TLS policy is looked up for every delivery (its policy cache lives for
   one request) and the SASL password when a session is set up (not when a cached one is
   reused). Each run is a fresh process, the two sides alternate, and the ratio is the
   median of the ratios of neighbouring runs (the machine's speed drifts between runs
   more than the difference measured); with two CPUs or more the worker runs on one and
   smtp-sink and PostgreSQL on the others. A run is 20,000 messages by default: each table's
   first connection (PostgreSQL's SCRAM login, ~30 ms of wall time and ~9 ms of CPU) is made
   inside the run, as the sessions are, and weighs ~1% there instead of ~4% in a run of 5,000;
   the figure asked for is the throughput a running agent keeps. Target: >= 0.9x.

Figures are stored as bench/results/tables_sql.json for bench/report.py. Measurements,
never assertions.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
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


def _async_figures(
    lookup: Callable[[str], Any], count: int, *, same_keys: bool
) -> dict[str, float]:
    latencies: list[float] = []

    async def worker(task: int, share: int) -> None:
        for i in range(share):
            key = KEYS[i % len(KEYS)]
            began = time.perf_counter()
            await lookup(key if same_keys else f"{task}.{i}.{key}")
            latencies.append(time.perf_counter() - began)

    async def run_all() -> float:
        start = time.perf_counter()
        shares = [count // CONCURRENCY] * CONCURRENCY
        await asyncio.gather(*(worker(t, s) for t, s in enumerate(shares)))
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
            "async": _async_figures(table.lookup_async, count, same_keys=False),
            "async_same_keys": _async_figures(table.lookup_async, count, same_keys=True),
        }
        for mode, f in out[kind].items():
            print(
                f"  {kind:6} {mode:15} {f['lookups_per_s']:>9,.0f} lookups/s  "
                f"p50 {f['p50_ms']:.3f} ms  p99 {f['p99_ms']:.3f} ms",
                flush=True,
            )
    return out


def _engine_run(
    sink: Sink, messages: int, overrides: dict[str, str], cpus: set[int] | None
) -> float:
    args = ["mailcarrier", _loop(), str(sink.port), str(messages), str(CONCURRENCY), str(SIZE)]
    cmd = [sys.executable, "-m", "bench.workload", *args, json.dumps(overrides)]
    pin: dict[str, Any] = {}
    if cpus is not None:
        pin["preexec_fn"] = lambda: os.sched_setaffinity(0, cpus)
    _, output = run_bounded(cmd, TIMEOUT, cwd=Path(__file__).resolve().parent.parent, **pin)
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
    pairs: list[float] = []
    split = common.cpu_split()
    with Sink("-a") as sink:  # no AUTH offered: credentials looked up, never sent
        if split is not None:
            assert sink.proc is not None
            common.pin_tree(sink.proc.pid, split[1])
            common.pin_tree(pg.pid(), split[1])
        worker_cpus = split[0] if split is not None else None
        for n in range(runs):
            # Alternate which side goes first, so that neither always meets a warmer cache.
            order = [("without", {}), ("with pgsql", with_tables)]
            for side, overrides in order if n % 2 == 0 else order[::-1]:
                rates[side].append(_engine_run(sink, messages, overrides, worker_cpus))
            pairs.append(ratio(rates["with pgsql"][-1], rates["without"][-1]))
            print(
                f"  run {n + 1}: without {rates['without'][-1]:,.0f}/s, with two pgsql "
                f"lookups {rates['with pgsql'][-1]:,.0f}/s ({pairs[-1]:.2f}x)",
                flush=True,
            )
    without, with_pg = median(rates["without"]), median(rates["with pgsql"])
    result: dict[str, Any] = {
        "messages": messages,
        "runs": runs,
        "loop": _loop(),
        "pinned": split is not None,
        "rates": rates,
        "pair_ratios": pairs,
        "without": without,
        "with_pgsql": with_pg,
        "ratio": median(pairs),
    }
    print(
        f"  median: without {without:,.0f}/s ({spread(rates['without'])}), with pgsql "
        f"{with_pg:,.0f}/s ({spread(rates['with pgsql'])}); median of the run ratios "
        f"{result['ratio']:.2f}x ({min(pairs):.2f}..{max(pairs):.2f}) "
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
    parser.add_argument("--messages", type=int, default=20000)
    parser.add_argument("--runs", type=int, default=21)
    args = parser.parse_args(argv)
    try:
        run(args.lookups, args.messages, args.runs)
    except common.Skip as exc:
        print(f"skipped: {exc}")


if __name__ == "__main__":
    main()

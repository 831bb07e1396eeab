"""CPU per message of the engine with the SQL benchmark's two table lookups, by mode.

``python -m bench.tables_cpu [--messages N] [--rounds R] [--modes M,...] [--profile DIR]``
runs bench/workload.py's `deliver_many` (20 sessions of 4 KB messages to smtp-sink ``-a``,
uvloop) in this one process, once per mode and round, the modes interleaved (the order
turns each round), after a warm-up round of each, and prints the worker's CPU time
(`time.process_time`) per delivered message: the median and the spread over the rounds.
It is the A/B tool for the cost bench_tables_sql.py's engine ratio measures, which on a
shared machine moves with the load more than with the code (bench/PROFILE.md).

Modes: ``without`` (no tables, SASL off), ``inline`` (smtp_sasl_password_maps and
smtp_tls_policy_maps as ``inline:`` tables with the same answers, SASL on: the cost of a
policy table and SASL without any network), ``fake`` (the pgsql: tables with their server
replaced by an answer given at once: the network-table machinery alone) and ``pgsql``
(the tables of bench_tables_sql.py against a private PostgreSQL). With two CPUs or more
this process runs on one and smtp-sink and PostgreSQL on the others. ``--profile DIR``
also writes a cProfile of one more round per mode (DIR/MODE.prof); ``--bytecodes`` counts
the Python bytecodes run per message in one more round per mode (exact, and the same on a
busy machine: bench/native_harness.py's counter) and lists the functions that run more
than without tables. Measurements, never assertions; nothing is stored under bench/results/.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import cProfile
import os
import shutil
import statistics
import tempfile
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import common
from bench.common import LOOPBACK, Sink
from bench.native_harness import BytecodeCounter
from bench.workload import deliver_many, write_message

MODES = ("without", "inline", "fake", "pgsql")
CONCURRENCY = 20
SIZE = 4096
# The answers of bench_tables_sql.py's two tables (sqldata.CREDS; the policy "may").
CREDENTIALS = "alice:s3cret-Pa55"


def _overrides(mode: str, port: int, root: Path) -> dict[str, str]:
    if mode == "without":
        return {}
    if mode == "inline":
        sasl = f"inline:{{ {LOOPBACK}={CREDENTIALS} }}"
        tls = f"inline:{{ [{LOOPBACK}]:{port}=may }}"
    else:  # fake: files of their own, so that its tables are not the pgsql mode's
        prefix = "fake-" if mode == "fake" else ""
        sasl, tls = f"pgsql:{root / (prefix + 'sasl.cf')}", f"pgsql:{root / (prefix + 'tls.cf')}"
    return {
        "smtp_sasl_auth_enable": "yes",
        "smtp_sasl_password_maps": sasl,
        "smtp_tls_policy_maps": tls,
    }


def _write_cf(root: Path, pg: Any) -> None:
    from tests.support import sqldata

    params = sqldata.pgsql_params(pg)
    sasl = sqldata.cf_text(query="SELECT creds FROM passwd WHERE host='%s'", **params)
    tls = sqldata.cf_text(query="SELECT 'may' WHERE '%s' <> ''", **params)
    for prefix in ("", "fake-"):
        (root / f"{prefix}sasl.cf").write_text(sasl)
        (root / f"{prefix}tls.cf").write_text(tls)


def _open(mode: str, overrides: dict[str, str]) -> None:
    """Open the mode's network tables before the clock (bench/workload.py does the same);
    for ``fake``, replace their server by an answer given at once."""
    from mailcarrier.tables import open_table
    from mailcarrier.tables.network import NetworkTable

    for name in ("smtp_sasl_password_maps", "smtp_tls_policy_maps"):
        spec = overrides.get(name, "")
        if not spec.startswith("pgsql:"):
            continue
        table = open_table(spec)
        if mode == "fake" and isinstance(table, NetworkTable):
            answer = CREDENTIALS if name == "smtp_sasl_password_maps" else "may"

            async def search(key: str, answer: str = answer) -> list[str | None]:
                return [answer]

            table.search = search  # type: ignore[method-assign]


def _cpu_us(mode: str, port: int, content: Path, messages: int, root: Path) -> float:
    overrides = _overrides(mode, port, root)
    run = asyncio.run(
        deliver_many(port, content, messages=messages, concurrency=CONCURRENCY, overrides=overrides)
    )
    if run.failed or not run.sent:
        print(f"  warning: {mode}: {run.failed} of {messages} messages not sent", flush=True)
    if run.sessions > CONCURRENCY:  # the connection cache works: one session per task
        print(f"  note: {mode}: {run.sessions} sessions for {messages} messages", flush=True)
    return run.cpu_seconds / max(run.sent, 1) * 1e6


def _where(code: types.CodeType) -> str:
    where = f"{code.co_filename.rpartition('/')[2]}:{code.co_firstlineno} {code.co_name}"
    if code.co_filename == "<string>":  # a dataclass's __init__: named by its fields
        where += "(" + ", ".join(code.co_varnames[1:4]) + ", ...)"
    return where


def count_bytecodes(modes: Sequence[str], messages: int, root: Path, port: int) -> None:
    content = write_message(root, SIZE)
    counts: dict[str, collections.Counter[str]] = {}
    for mode in modes:  # warm-up, as for the CPU figures
        _cpu_us(mode, port, content, max(messages // 4, 200), root)
    for mode in modes:
        counter = BytecodeCounter()
        counter.enable()
        _cpu_us(mode, port, content, messages, root)
        counter.disable()
        counts[mode] = collections.Counter()
        for code, n in counter.counts.items():
            counts[mode][_where(code)] += n
    base = counts.get("without", collections.Counter())
    for mode, counted in counts.items():
        print(f"{mode}: {sum(counted.values()) / messages:,.0f} bytecodes per message")
        if mode == "without":
            continue
        changed = [(n - base[k], k) for k, n in counted.items() if n != base[k]]
        changed += [(-n, k) for k, n in base.items() if k not in counted]
        for more, where in sorted(changed, key=lambda c: -abs(c[0]))[:30]:
            print(f"  {more / messages:+8.1f}  {where}")


def measure(
    modes: Sequence[str], messages: int, rounds: int, profile: Path | None, root: Path, port: int
) -> dict[str, list[float]]:
    content = write_message(root, SIZE)
    for mode in modes:  # warm-up: imports, caches, table connections of this process
        _cpu_us(mode, port, content, max(messages // 4, 200), root)
    figures: dict[str, list[float]] = {mode: [] for mode in modes}
    for n in range(rounds):
        order = list(modes[n % len(modes) :]) + list(modes[: n % len(modes)])
        for mode in order:
            figures[mode].append(_cpu_us(mode, port, content, messages, root))
        print(
            f"  round {n + 1}: "
            + ", ".join(f"{mode} {figures[mode][-1]:.0f} us" for mode in modes),
            flush=True,
        )
    if profile is not None:
        profile.mkdir(parents=True, exist_ok=True)
        for mode in modes:
            profiler = cProfile.Profile()
            profiler.enable()
            _cpu_us(mode, port, content, messages, root)
            profiler.disable()
            profiler.dump_stats(profile / f"{mode}.prof")
    return figures


def report(figures: dict[str, list[float]]) -> None:
    base = statistics.median(figures["without"]) if figures.get("without") else 0.0
    print(f"CPU per delivered message (median of {len(next(iter(figures.values())))} rounds):")
    for mode, values in figures.items():
        middle = statistics.median(values)
        versus = f"  {middle / base:.3f}x without" if base else ""
        print(f"  {mode:8} {middle:7.1f} us  ({min(values):.0f}..{max(values):.0f}){versus}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.tables_cpu")
    parser.add_argument("--messages", type=int, default=4000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--profile", type=Path, default=None)
    parser.add_argument("--bytecodes", action="store_true", help="count bytecodes instead")
    args = parser.parse_args(argv)
    modes = [m for m in args.modes.split(",") if m]
    if unknown := set(modes) - set(MODES):
        parser.error(f"unknown modes: {', '.join(sorted(unknown))} (known: {', '.join(MODES)})")
    common.install_loop("uvloop")
    root = Path(tempfile.mkdtemp(prefix="mc-bench-cpu-", dir="/tmp"))
    root.chmod(0o755)
    pg = None
    try:
        split = common.cpu_split()
        if {"fake", "pgsql"} & set(modes):
            from bench.bench_tables_sql import _pg_server

            pg = _pg_server(root)
            _write_cf(root, pg)
        with Sink("-a") as sink:
            if split is not None:
                assert sink.proc is not None
                common.pin_tree(sink.proc.pid, split[1])
                if pg is not None:
                    common.pin_tree(pg.pid(), split[1])
                os.sched_setaffinity(0, split[0])
            for mode in modes:
                _open(mode, _overrides(mode, sink.port, root))
            if args.bytecodes:
                count_bytecodes(modes, args.messages, root, sink.port)
            else:
                report(measure(modes, args.messages, args.rounds, args.profile, root, sink.port))
    except common.Skip as exc:
        print(f"skipped: {exc}")
    finally:
        if pg is not None:
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

"""Multi-core drain: `run --once` with delivery_agent_processes = 1 and 2 (issue 22, part 5).

Run as ``python -m bench.bench_agents [--messages N] [--runs R] [--placements P,...]``.
N one-recipient messages of about 4 KB are queued once (`mailcarrier.submit_sync()`) into a
template queue_directory; every run drains a fresh copy of it with ``mailcarrier run --once``
to Postfix's `smtp-sink` on 127.0.0.1 (relayhost, destination concurrency 20, connection
cache on demand), as bench/bench_drain.py does, but without Postfix beside it: the two
configurations of mailcarrier against each other, and where the CPU time goes.

- ``delivery_agent_processes = 1``: deliveries run inside the scheduler's process.
- ``delivery_agent_processes = 2``: the scheduler (the parent) hands them to two agent
  processes it forks (queue/workers.py) and records their verdicts.

Placements (``--placements``; CPU numbers as the kernel numbers them):

- ``sink-cpu1``: smtp-sink pinned to the last CPU this process may use ("CPU 1" on two
  cores), mailcarrier's processes free to run on any (the kernel places them);
- ``free``: nothing pinned;
- ``split`` (not run by default): smtp-sink on the last CPU, every mailcarrier process on
  the first.

Each run's ``run --once`` runs in a small worker (``--worker``) that calls the command line
in-process and reports its own CPU time (`getrusage` of itself: the scheduler) and each
agent process's (`os.wait4` as the scheduler waits for it); smtp-sink's CPU time comes from
``/proc/PID/schedstat`` before and after. The same command on the empty queue, right after,
gives the start-up cost (wall and CPU), which the per-message figures leave out. Runs are
interleaved: each round runs every placement and both configurations (the one that goes
first alternates). Figures are medians of R rounds; the load average before each run is
kept. Beside the rates, the rate the CPU time per message allows (`cpu_bound`): what the
processes could do with the CPUs to themselves, which other tenants' load moves far less.
Reported, not asserted: the issue asks that 2 processes drain faster than 1 when the sink
has a core of its own, and that the figure be explained either way (bench/PROFILE.md).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final

from bench import common
from bench.common import RECIPIENT, SENDER, Sink, Skip, median, run_bounded, spread
from bench.workload import message_bytes

SIZE: Final = 4096
TIMEOUT: Final = 600.0
CONFIGS: Final = (1, 2)
PLACEMENTS: Final = ("sink-cpu1", "free", "split")
DEFAULT_PLACEMENTS: Final = ("sink-cpu1", "free")


# --- the worker: one `run --once`, with the CPU time of the scheduler and of each agent ------
def _usage(usage: resource.struct_rusage) -> float:
    return float(usage.ru_utime + usage.ru_stime)


def worker(argv: list[str]) -> None:
    """Run ``mailcarrier ARGV`` in this process; print its exit code, wall time, this
    process's CPU seconds and each agent process's, as one JSON line."""
    agents: list[float] = []

    def wait4(pid: int, options: int) -> tuple[int, int]:
        # The scheduler waits for each agent it forked with os.waitpid (queue/workers.py):
        # wait4 is the same wait, with the child's resource usage.
        got, status, usage = os.wait4(pid, options)
        if got:
            agents.append(_usage(usage))
        return got, status

    os.waitpid = wait4
    from mailcarrier import cli

    start = time.perf_counter()
    code = cli.run(argv)
    wall = time.perf_counter() - start
    children = _usage(resource.getrusage(resource.RUSAGE_CHILDREN))
    if not agents and children:  # waited for some other way: the sum, unsplit
        agents = [children]
    own = _usage(resource.getrusage(resource.RUSAGE_SELF))
    print(json.dumps({"code": code, "wall": wall, "parent": own, "agents": agents}))


# --- the benchmark ---------------------------------------------------------------------------
def _sink_cpu(pid: int) -> float:
    """CPU seconds smtp-sink has used (the scheduler's nanosecond count)."""
    with open(f"/proc/{pid}/schedstat", encoding="ascii") as handle:
        return int(handle.read().split()[0]) / 1e9


def _command(queue: Path, port: int, maillog: Path, processes: int) -> list[str]:
    overrides = {
        "delivery_agent_processes": processes,
        "queue_directory": queue,
        "relayhost": f"[{common.LOOPBACK}]:{port}",
        "maillog_file": maillog,
        "smtp_destination_concurrency_limit": 20,
        "smtp_connection_cache_on_demand": "yes",
    }
    words = [w for name, value in overrides.items() for w in ("-o", f"{name}={value}")]
    return [sys.executable, "-m", "bench.bench_agents", "--worker", "--", *words, "run", "--once"]


def _run_worker(command: list[str], cpus: set[int]) -> dict[str, Any]:
    def pin() -> None:
        os.sched_setaffinity(0, cpus)

    seconds, output = run_bounded(command, TIMEOUT, cwd=common.BENCH_DIR.parent, preexec_fn=pin)
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            if result["code"] != 0:
                raise RuntimeError(f"run --once exited {result['code']}: {output[-500:]}")
            result["seconds"] = seconds
            return result
    raise RuntimeError(f"bench_agents worker printed no result: {output[-500:]}")


def _round(
    sink: Sink, template: Path, work: Path, messages: int, processes: int, cpus: set[int]
) -> dict[str, Any]:
    """Drain a copy of the template queue; the figures of one run, per message."""
    assert sink.proc is not None
    run_dir = Path(tempfile.mkdtemp(prefix="run-", dir=work))
    try:
        queue, maillog = run_dir / "queue", run_dir / "maillog"
        shutil.copytree(template, queue)
        command = _command(queue, sink.port, maillog, processes)
        load = os.getloadavg()[0]
        sink_before = _sink_cpu(sink.proc.pid)
        full = _run_worker(command, cpus)
        sink_seconds = _sink_cpu(sink.proc.pid) - sink_before
        sent = maillog.read_text(encoding="utf-8", errors="replace").count(" status=sent ")
        if sent != messages:
            raise RuntimeError(f"mailcarrier delivered {sent} of {messages} messages")
        empty = _run_worker(command, cpus)  # start-up: the same command, nothing queued
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
    per = 1e6 / messages  # seconds -> microseconds per message
    agents = [(a - b) * per for a, b in zip(full["agents"], empty["agents"], strict=False)]
    return {
        "rate": messages / full["seconds"],
        "net_rate": messages / max(1e-6, full["seconds"] - empty["seconds"]),
        "startup": empty["seconds"],
        "parent_us": (full["parent"] - empty["parent"]) * per,
        "agents_us": agents,
        "sink_us": sink_seconds * per,
        "load": load,
    }


def _placement_cpus(placement: str) -> tuple[set[int], set[int]]:
    """(CPUs for mailcarrier, CPUs for the sink)."""
    cpus = set(os.sched_getaffinity(0))
    first, last = {min(cpus)}, {max(cpus)}
    if placement == "free":
        return cpus, cpus
    if placement == "sink-cpu1":
        return cpus, last
    return first, last  # split


def _describe(placement: str) -> str:
    cpus = sorted(os.sched_getaffinity(0))
    if placement == "free":
        return "nothing pinned"
    if placement == "sink-cpu1":
        free = ", ".join(map(str, cpus))
        return f"smtp-sink pinned to CPU {cpus[-1]}, mailcarrier free (CPUs {free})"
    return f"smtp-sink pinned to CPU {cpus[-1]}, mailcarrier pinned to CPU {cpus[0]}"


Figures = dict[str, dict[int, list[dict[str, Any]]]]


def _rounds(template: Path, work: Path, messages: int, runs: int, placements: list[str]) -> Figures:
    figures: Figures = {p: {n: [] for n in CONFIGS} for p in placements}
    with Sink() as sink:
        assert sink.proc is not None
        for n in range(runs):
            order = CONFIGS if n % 2 == 0 else tuple(reversed(CONFIGS))
            line = f"  round {n + 1}:"
            for placement in placements:
                mine, theirs = _placement_cpus(placement)
                os.sched_setaffinity(sink.proc.pid, theirs)
                for processes in order:
                    got = _round(sink, template, work, messages, processes, mine)
                    figures[placement][processes].append(got)
                    line += f" {placement}/{processes}: {got['rate']:,.0f} msg/s"
            print(line, flush=True)
    return figures


def _summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def mid(pick: Callable[[dict[str, Any]], float]) -> float:
        return median([pick(r) for r in runs])

    # Each agent's share, busiest first (which process is which differs from run to run).
    ranked = [sorted(r["agents_us"], reverse=True) for r in runs]
    width = max(len(agents) for agents in ranked)
    each = [median([a[i] if i < len(a) else 0.0 for a in ranked]) for i in range(width)]
    return {
        "rate": mid(lambda r: r["rate"]),
        "runs": [r["rate"] for r in runs],
        "net_rate": mid(lambda r: r["net_rate"]),
        "startup": mid(lambda r: r["startup"]),
        "parent_us": mid(lambda r: r["parent_us"]),
        "agents_us": mid(lambda r: sum(r["agents_us"])),
        "each_agent_us": each,
        "sink_us": mid(lambda r: r["sink_us"]),
        "loads": [r["load"] for r in runs],
    }


def cpu_bound(side: dict[str, Any], cpus: int) -> float:
    """Messages per second the CPU time per message allows when `cpus` CPUs are ours
    alone: no process goes faster than its own CPU time per message, and all of them
    together (the sink included) no faster than their sum spread over the CPUs. A figure
    that the load of other tenants moves far less than the rates (bench/PROFILE.md)."""
    parts = [side["parent_us"], *side["each_agent_us"], side["sink_us"]]
    busiest = max(*parts, sum(parts) / cpus)
    return 1e6 / busiest if busiest > 0 else 0.0


def _queue_template(root: Path, messages: int) -> Path:
    import mailcarrier
    from mailcarrier.config.settings import Settings

    queue = root / "template"
    config = Settings.defaults().with_overrides({"queue_directory": str(queue)})
    content = message_bytes(SIZE)
    for _ in range(messages):
        mailcarrier.submit_sync(content, sender=SENDER, recipients=[RECIPIENT], config=config)
    return queue


def run(messages: int, runs: int, placements: list[str]) -> None:
    common.need_postfix_tools()
    if len(os.sched_getaffinity(0)) < 2:
        placements = ["free"]
    print(f"{messages:,} x {SIZE} B one-recipient messages, concurrency 20, {runs} rounds")
    with tempfile.TemporaryDirectory(prefix="mc-bench-agents-", dir="/var/tmp") as tmp:
        template = _queue_template(Path(tmp), messages)
        figures = _rounds(template, Path(tmp), messages, runs, placements)
    results = []
    for placement in placements:
        sides = {n: _summary(figures[placement][n]) for n in CONFIGS}
        one, two = sides[1], sides[2]
        speedup = common.ratio(two["rate"], one["rate"])
        cores = len(_placement_cpus(placement)[0] | _placement_cpus(placement)[1])
        for side in (one, two):
            side["cpu_bound"] = cpu_bound(side, cores)
        results.append(
            {
                "placement": placement,
                "pinning": _describe(placement),
                "configs": [{"processes": n, **sides[n]} for n in CONFIGS],
                "speedup": speedup,
                "net_speedup": common.ratio(two["net_rate"], one["net_rate"]),
            }
        )
        bound = common.ratio(two["cpu_bound"], one["cpu_bound"])
        results[-1]["cpu_bound_speedup"] = bound
        print(
            f"  {placement} ({_describe(placement)}): 2 processes / 1 = {speedup:.2f}x; "
            f"as CPU time per message allows on {cores} CPUs of our own: {bound:.2f}x"
        )
        for n in CONFIGS:
            s = sides[n]
            print(
                f"    delivery_agent_processes={n}: {s['rate']:,.0f} msg/s ({spread(s['runs'])}), "
                f"without start-up {s['net_rate']:,.0f}; CPU per message: scheduler "
                f"{s['parent_us']:.0f} us, agents {s['agents_us']:.0f} us "
                f"({', '.join(f'{a:.0f}' for a in s['each_agent_us'])}), sink {s['sink_us']:.0f} "
                f"us; CPU bound {s['cpu_bound']:,.0f} msg/s"
            )
    common.save("agents", {"messages": messages, "size": SIZE, "runs": runs, "placements": results})


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--worker"]:
        worker(argv[2:] if argv[1:2] == ["--"] else argv[1:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench.bench_agents", description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--placements",
        default=",".join(DEFAULT_PLACEMENTS),
        help=f"comma-separated, of {', '.join(PLACEMENTS)}",
    )
    args = parser.parse_args(argv)
    placements = [p for p in args.placements.split(",") if p]
    for p in placements:
        if p not in PLACEMENTS:
            parser.error(f"unknown placement {p!r}")
    try:
        run(args.messages, args.runs, placements)
    except Skip as exc:
        print(f"  skipped: {exc}")


if __name__ == "__main__":
    main()

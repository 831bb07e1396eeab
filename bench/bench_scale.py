"""Scale: up to 10,000 concurrent sessions to a slow receiver, vs smtp-source; memory reported.

Run as ``python -m bench.bench_scale [--levels 10,100,1000,2000,5000,10000] [--per-session 3]
[--runs R]`` (inside ``scripts/loopback-only``, so that the listen backlog may be raised).
Postfix's `smtp-sink` on 127.0.0.1 waits 1 s before answering each message's final dot
(``-W .:1``; ``--delay-commands`` changes which replies are delayed), as a busy or filtering
receiver does. At each concurrency C, mailcarrier (the engine path: one `DeliveryAgent` with a
shared `ConnectionCache`, C asyncio tasks, uvloop when installed) and smtp-source
(``-s C -d``) each send C x per-session 4 KB messages, alternating, a fresh sink per level.

The rate is taken the same way for both: messages accepted divided by the time from the
first connection to the last session's QUIT (smtp-source: the wall time of its process;
mailcarrier: its worker's run plus the QUITs of the cached sessions, its imports excluded).
With a 1 s reply delay the ideal rate is C messages per second (each session has one message
in flight at a time; smtp-sink's delay timers have whole-second resolution, so the first
wait of a session is 0-1 s and the others 1 s, which about pays for the connection set-up).
Set-up is counted, and the sessions are opened as the engine needs them (no ramp).

Each process gets the file descriptors 10,000 sessions need (bench/limits.py), smtp-sink a
connection limit and listen backlog above C. The sink's CPU time per run is recorded: a
sink that is busy the whole run is the limit, whatever the client. The peak resident memory
(VmHWM) of the mailcarrier process is reported at each level; targets at the top level:
rate >= 0.9x ideal, peak RSS < 400 MB. Medians of R runs; nothing is asserted.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import common, limits
from bench.common import Sink, Skip, median, run_worker, smtp_source
from bench.procmem import stat_of

SIZE = 4096
RATE_TARGET = 0.9  # of the ideal rate, at the top level
MEMORY_TARGET_MB = 400.0
HEADROOM = 64  # descriptors besides the sessions (listening socket, files, the loop's own)


def _timeout(level: int, per_session: int) -> float:
    """Generous: ten times the ideal run, and never under 5 minutes."""
    return max(300.0, 10.0 * per_session * (1 + level / 1000))


def _sink_cpu(sink: Sink) -> float:
    stat = stat_of(sink.proc.pid) if sink.proc is not None else None
    return stat[2] if stat else 0.0


def _one_level(sink: Sink, level: int, per_session: int, loop: str) -> dict[str, float]:
    """One run of each client at `level` sessions: rates, sink busy shares, memory."""
    messages, timeout = level * per_session, _timeout(level, per_session)
    cpu = _sink_cpu(sink)
    result = run_worker("mailcarrier", loop, sink.port, messages, level, SIZE, timeout)
    seconds = result["seconds"] + result.get("close_seconds", 0.0)
    mc_sink = (_sink_cpu(sink) - cpu) / seconds
    cpu = _sink_cpu(sink)
    src_seconds = smtp_source(sink, sessions=level, messages=messages, length=SIZE, timeout=timeout)
    if result["failed"]:
        print(f"    mailcarrier: {result['failed']} of {messages} messages not sent", flush=True)
    return {
        "mailcarrier": result["sent"] / seconds,
        "smtp-source": messages / src_seconds,
        "peak_mb": result["peak_kb"] / 1024,
        "growth_mb": (result["peak_kb"] - result["baseline_kb"]) / 1024,
        "cpu_us": 1e6 * result["cpu_seconds"] / max(1, result["sent"]),
        "failed": float(result["failed"]),
        "sink_busy_mc": mc_sink,
        "sink_busy_src": (_sink_cpu(sink) - cpu) / src_seconds,
    }


def measure(level: int, per_session: int, runs: int, options: list[str], loop: str) -> Any:
    """Median figures of `runs` alternating runs at one level, against one fresh sink."""
    backlog = level + HEADROOM
    samples: list[dict[str, float]] = []
    with Sink(*options, connections=backlog, backlog=max(1024, backlog)) as sink:
        for _ in range(runs):
            samples.append(_one_level(sink, level, per_session, loop))
    point: dict[str, Any] = {k: median([s[k] for s in samples]) for k in samples[0]}
    point["ideal"] = float(level)
    point["mailcarrier_runs"] = [s["mailcarrier"] for s in samples]
    point["smtp-source_runs"] = [s["smtp-source"] for s in samples]
    return point


def _line(level: int, p: dict[str, Any]) -> str:
    ideal = p["ideal"]
    return (
        f"  {level:>6} sessions: mailcarrier {p['mailcarrier']:>7,.0f} msg/s "
        f"({p['mailcarrier'] / ideal:.2f}x ideal, sink busy {p['sink_busy_mc']:.0%}), "
        f"smtp-source {p['smtp-source']:>7,.0f} msg/s ({p['smtp-source'] / ideal:.2f}x, "
        f"sink busy {p['sink_busy_src']:.0%}); mailcarrier peak RSS {p['peak_mb']:.0f} MB "
        f"(+{p['growth_mb']:.0f} MB), {p['cpu_us']:,.0f} us CPU per message"
    )


def run(levels: list[int], per_session: int, runs: int, delay_commands: list[str]) -> None:
    common.need_postfix_tools()
    loop = "uvloop" if common.have_uvloop() else "asyncio"
    top = max(levels)
    files = limits.raise_open_files(top + 4 * HEADROOM)
    backlog = limits.raise_backlog(top + HEADROOM)
    usable = [level for level in levels if level + HEADROOM <= files]
    if usable != levels:
        print(f"  open files limited to {files}: levels above {files - HEADROOM} skipped")
    options: list[str] = []
    for command in delay_commands:
        options += ["-W", f"{command}:1"]
    print(
        f"sink delays {', '.join(delay_commands)} by 1 s; {per_session} messages per session; "
        f"{runs} runs; loop {loop}; open files {files}; listen backlog cap {backlog}"
    )
    points: dict[str, Any] = {}
    for level in usable:
        points[str(level)] = measure(level, per_session, runs, options, loop)
        print(_line(level, points[str(level)]), flush=True)
    best = points[str(max(usable))]
    print(
        f"  at {max(usable)} sessions: {best['mailcarrier'] / best['ideal']:.2f}x ideal "
        f"(target >= {RATE_TARGET}: "
        f"{common.verdict(best['mailcarrier'] / best['ideal'], RATE_TARGET)}), peak RSS "
        f"{best['peak_mb']:.0f} MB (target < {MEMORY_TARGET_MB:.0f}: "
        f"{common.verdict(best['peak_mb'], MEMORY_TARGET_MB, at_most=True)})"
    )
    common.save(
        "scale",
        {
            "levels": usable,
            "per_session": per_session,
            "runs": runs,
            "loop": loop,
            "delayed": delay_commands,
            "points": points,
            "open_files": files,
            "backlog_cap": backlog,
            "rate_target": RATE_TARGET,
            "memory_target_mb": MEMORY_TARGET_MB,
        },
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__)
    parser.add_argument("--levels", default="10,100,1000,2000,5000,10000")
    parser.add_argument("--per-session", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument(
        "--delay-commands", default=".", help="smtp-sink -W commands to delay by 1 s"
    )
    args = parser.parse_args(argv)
    levels = [int(x) for x in args.levels.split(",") if x.strip()]
    commands = [c for c in args.delay_commands.split(",") if c]
    try:
        run(levels, args.per_session, args.runs, commands)
    except Skip as exc:
        print(f"  skipped: {exc}")


if __name__ == "__main__":
    main()

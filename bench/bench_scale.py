"""Scale: up to 1,000 concurrent sessions to a slow receiver, vs smtp-source; memory reported.

Run as ``python -m bench.bench_scale [--levels 10,100,500,1000] [--per-session 3] [--runs R]``.
Postfix's `smtp-sink` on 127.0.0.1 waits 1 s before answering each message's final dot
(``-W .:1``; ``--delay-commands`` changes which replies are delayed), as a busy or filtering
receiver does. At each concurrency C, mailcarrier (20,000-style engine path: one
`DeliveryAgent` with a shared `ConnectionCache`, C asyncio tasks, uvloop when installed) and
smtp-source (``-s C -d``) each send C x per-session 4 KB messages. With a 1 s reply delay the
ideal rate is C messages per second, so the figures show whether throughput grows with
concurrency instead of stalling on one event loop. The resident memory peak (VmHWM) of the
mailcarrier process is reported at each level; target: <= 300 MB at 1,000 sessions. Medians
of R runs; nothing is asserted.
"""

from __future__ import annotations

import argparse

from bench import common
from bench.common import Sink, Skip, median, run_worker, smtp_source

SIZE = 4096
TIMEOUT = 300.0
MEMORY_TARGET_MB = 300.0


def run(levels: list[int], per_session: int, runs: int, delay_commands: list[str]) -> None:
    common.need_postfix_tools()
    loop = "uvloop" if common.have_uvloop() else "asyncio"
    options: list[str] = []
    for command in delay_commands:
        options += ["-W", f"{command}:1"]
    print(
        f"sink delays {', '.join(delay_commands)} by 1 s; {per_session} messages per session; "
        f"{runs} runs; loop {loop}"
    )
    points: dict[str, dict[str, float]] = {}
    with Sink(*options, connections=max(levels) + 64, backlog=max(1024, max(levels) + 64)) as sink:
        for level in levels:
            messages = level * per_session
            mc_rates, mc_peaks, mc_growth, src_rates = [], [], [], []
            for _ in range(runs):
                result = run_worker("mailcarrier", loop, sink.port, messages, level, SIZE, TIMEOUT)
                if result["failed"]:
                    raise RuntimeError(f"mailcarrier: {result['failed']} messages not sent")
                mc_rates.append(result["rate"])
                mc_peaks.append(result["peak_kb"] / 1024)
                mc_growth.append((result["peak_kb"] - result["baseline_kb"]) / 1024)
                seconds = smtp_source(
                    sink, sessions=level, messages=messages, length=SIZE, timeout=TIMEOUT
                )
                src_rates.append(messages / seconds)
            point = {
                "mailcarrier": median(mc_rates),
                "smtp-source": median(src_rates),
                "ideal": float(level),
                "peak_mb": median(mc_peaks),
                "growth_mb": median(mc_growth),
                "mailcarrier_runs": mc_rates,
                "smtp-source_runs": src_rates,
            }
            points[str(level)] = point  # type: ignore[assignment]
            print(
                f"  {level:>5} sessions: mailcarrier {point['mailcarrier']:>7,.0f} msg/s, "
                f"smtp-source {point['smtp-source']:>7,.0f} msg/s (ideal {level}), "
                f"mailcarrier peak RSS {point['peak_mb']:.0f} MB "
                f"(+{point['growth_mb']:.0f} MB)",
                flush=True,
            )
    top = points[str(max(levels))]
    print(
        f"  at {max(levels)} sessions: peak RSS {top['peak_mb']:.0f} MB "
        f"(target <= {MEMORY_TARGET_MB:.0f}: "
        f"{common.verdict(top['peak_mb'], MEMORY_TARGET_MB, at_most=True)}); "
        f"mailcarrier/smtp-source = {common.ratio(top['mailcarrier'], top['smtp-source']):.2f}"
    )
    common.save(
        "scale",
        {
            "levels": levels,
            "per_session": per_session,
            "runs": runs,
            "loop": loop,
            "delayed": delay_commands,
            "points": points,
            "memory_target_mb": MEMORY_TARGET_MB,
        },
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_scale", description=__doc__)
    parser.add_argument("--levels", default="10,100,500,1000")
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

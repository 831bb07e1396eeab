"""Engine throughput: mailcarrier's delivery path vs Postfix's smtp-source and aiosmtplib.

Run as ``python -m bench.bench_engine [--messages N] [--runs R] [--sweep 1,5,20,50,100]``.
All three clients send N x 4 KB one-recipient messages over 20 concurrent sessions to one
Postfix `smtp-sink` on 127.0.0.1, in the same run, on the same machine:

- mailcarrier: `DeliveryAgent(settings, cache=ConnectionCache(...)).deliver(request)` from 20
  asyncio tasks sharing the agent and its connection cache (content read from a file, as from
  a queue file; no queue); with uvloop when installed, and again with plain asyncio;
- smtp-source (C, no queue, no pipelining): ``-s 20 -m N -l 4096 -d`` (``-d``: keep the
  session for the next message, as our cache does);
- aiosmtplib: 20 persistent `SMTP` connections calling `send_message` in a loop, on the same
  event loop as mailcarrier's figure it is compared with.

Each client runs in a fresh process (bench/workload.py); every figure is the median of R runs,
taken in interleaved order so that background load hits all clients alike. A sweep over
concurrency (fewer messages) gives the chart's fast-sink curve. Targets (issue 9): mailcarrier
>= 2x aiosmtplib and >= 0.5x smtp-source. They are reported, never asserted.
"""

from __future__ import annotations

import argparse
from typing import Any

from bench import common
from bench.common import Sink, Skip, median, ratio, run_worker, smtp_source, spread

SIZE = 4096
TIMEOUT = 300.0  # per client run


def _one_round(
    sink: Sink, messages: int, concurrency: int, loops: list[str], *, aiosmtplib: bool = True
) -> dict[str, float]:
    """One run of every client; messages per second by client name."""
    rates: dict[str, float] = {}
    for loop in loops:
        run = run_worker("mailcarrier", loop, sink.port, messages, concurrency, SIZE, TIMEOUT)
        if run["failed"]:
            raise RuntimeError(f"mailcarrier: {run['failed']} messages not sent")
        rates[f"mailcarrier/{loop}"] = run["rate"]
        rates[f"mailcarrier/{loop}/peak_mb"] = run["peak_kb"] / 1024
        if aiosmtplib:
            run = run_worker("aiosmtplib", loop, sink.port, messages, concurrency, SIZE, TIMEOUT)
            rates[f"aiosmtplib/{loop}"] = run["rate"]
    seconds = smtp_source(
        sink, sessions=concurrency, messages=messages, length=SIZE, timeout=TIMEOUT
    )
    rates["smtp-source"] = messages / seconds
    return rates


def _medians(rounds: list[dict[str, float]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in rounds[0]:
        values = [r[key] for r in rounds]
        out[key] = {"median": median(values), "runs": values}
    return out


def run(messages: int, concurrency: int, runs: int, sweep: list[int], sweep_messages: int) -> None:
    common.need_postfix_tools()
    loops = ["uvloop", "asyncio"] if common.have_uvloop() else ["asyncio"]
    main_loop = loops[0]
    print(f"{messages:,} x {SIZE} B messages, {concurrency} sessions, {runs} runs, loops {loops}")
    rounds: list[dict[str, float]] = []
    with Sink() as sink:
        for n in range(runs):
            rounds.append(_one_round(sink, messages, concurrency, loops))
            shown = {k: f"{v:,.0f}" for k, v in rounds[-1].items() if not k.endswith("peak_mb")}
            print(f"  run {n + 1}: {shown}", flush=True)
    figures = _medians(rounds)
    rate = {k: v["median"] for k, v in figures.items()}
    mc = rate[f"mailcarrier/{main_loop}"]
    ratios = {
        "mailcarrier/aiosmtplib": ratio(mc, rate[f"aiosmtplib/{main_loop}"]),
        "mailcarrier/smtp-source": ratio(mc, rate["smtp-source"]),
    }
    if "mailcarrier/asyncio" in rate and main_loop != "asyncio":
        ratios["mailcarrier/aiosmtplib (asyncio)"] = ratio(
            rate["mailcarrier/asyncio"], rate["aiosmtplib/asyncio"]
        )
        ratios["mailcarrier/smtp-source (asyncio)"] = ratio(
            rate["mailcarrier/asyncio"], rate["smtp-source"]
        )
    print(f"  medians of {runs} runs (messages/s):")
    for key, value in figures.items():
        if key.endswith("peak_mb"):
            continue
        print(f"    {key:<24} {value['median']:>9,.0f}   ({spread(value['runs'])})")
    print(
        f"    mailcarrier ({main_loop}) = {ratios['mailcarrier/aiosmtplib']:.2f}x aiosmtplib "
        f"(target >= 2: {common.verdict(ratios['mailcarrier/aiosmtplib'], 2)}), "
        f"{ratios['mailcarrier/smtp-source']:.2f}x smtp-source "
        f"(target >= 0.5: {common.verdict(ratios['mailcarrier/smtp-source'], 0.5)})"
    )

    curve: dict[str, dict[str, float]] = {}
    if sweep:
        print(f"  sweep: {sweep_messages:,} messages at concurrency {sweep}, median of {runs}")
        with Sink(connections=max(256, max(sweep) + 16)) as sink:
            for level in sweep:
                level_rounds = [
                    _one_round(sink, sweep_messages, level, [main_loop]) for _ in range(runs)
                ]
                point = {k: v["median"] for k, v in _medians(level_rounds).items()}
                curve[str(level)] = point
                ours = point[f"mailcarrier/{main_loop}"]
                print(
                    f"    {level:>4} sessions: mailcarrier {ours:>8,.0f}"
                    f"  aiosmtplib {point[f'aiosmtplib/{main_loop}']:>8,.0f}"
                    f"  smtp-source {point['smtp-source']:>8,.0f}",
                    flush=True,
                )
    common.save(
        "engine",
        {
            "messages": messages,
            "size": SIZE,
            "concurrency": concurrency,
            "runs": runs,
            "loop": main_loop,
            "figures": figures,
            "ratios": ratios,
            "targets": {"mailcarrier/aiosmtplib": 2.0, "mailcarrier/smtp-source": 0.5},
            "sweep": curve,
            "sweep_messages": sweep_messages,
        },
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_engine", description=__doc__)
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sweep", default="1,5,20,50,100", help="concurrency levels ('' = none)")
    parser.add_argument("--sweep-messages", type=int, default=5_000)
    args = parser.parse_args(argv)
    sweep = [int(x) for x in args.sweep.split(",") if x.strip()]
    try:
        run(args.messages, args.concurrency, args.runs, sweep, args.sweep_messages)
    except Skip as exc:
        print(f"  skipped: {exc}")


if __name__ == "__main__":
    main()

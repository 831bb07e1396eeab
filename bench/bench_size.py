"""Size: one 200 MB message: memory growth and time, mailcarrier vs smtp-source.

Run as ``python -m bench.bench_size [--megabytes 200] [--runs R]``. mailcarrier's delivery
path (`DeliveryAgent.deliver`, content from a file, as from the queue) sends one message of
the given size to Postfix's `smtp-sink` on 127.0.0.1, in a fresh process whose peak resident
memory is reset just before the delivery (``/proc/self/clear_refs``), so the growth reported
is what the delivery itself needed: content must stream in bounded buffers (target: <= 32 MB
growth). smtp-source sends a message with the same payload length (``-l``) for the time
comparison. Medians of R runs; nothing is asserted.
"""

from __future__ import annotations

import argparse

from bench import common
from bench.common import Sink, Skip, median, run_worker, smtp_source

GROWTH_TARGET_MB = 32.0
TIMEOUT = 600.0


def run(megabytes: int, runs: int) -> None:
    common.need_postfix_tools()
    loop = "uvloop" if common.have_uvloop() else "asyncio"
    size = megabytes * 1024 * 1024
    print(f"one {megabytes} MB message, {runs} runs, loop {loop}")
    seconds, growth, peaks, source = [], [], [], []
    with Sink() as sink:
        for n in range(runs):
            result = run_worker("mailcarrier", loop, sink.port, 1, 1, size, TIMEOUT)
            if result["failed"] or not result["sent"]:
                raise RuntimeError("mailcarrier: the message was not sent")
            seconds.append(result["seconds"])
            peaks.append(result["peak_kb"] / 1024)
            growth.append((result["peak_kb"] - result["baseline_kb"]) / 1024)
            source.append(smtp_source(sink, sessions=1, messages=1, length=size, timeout=TIMEOUT))
            print(
                f"  run {n + 1}: mailcarrier {seconds[-1]:.2f} s, +{growth[-1]:.1f} MB "
                f"(peak {peaks[-1]:.0f} MB); smtp-source {source[-1]:.2f} s",
                flush=True,
            )
    mc_seconds, mc_growth, source_seconds = median(seconds), median(growth), median(source)
    figures: dict[str, object] = {
        "mailcarrier_seconds": mc_seconds,
        "mailcarrier_growth_mb": mc_growth,
        "mailcarrier_peak_mb": median(peaks),
        "smtp-source_seconds": source_seconds,
        "mailcarrier_runs": seconds,
        "growth_runs": growth,
        "smtp-source_runs": source,
    }
    time_ratio = common.ratio(source_seconds, mc_seconds)
    print(
        f"  medians: mailcarrier {mc_seconds:.2f} s "
        f"({megabytes / mc_seconds:.0f} MB/s), "
        f"growth {mc_growth:.1f} MB "
        f"(target <= {GROWTH_TARGET_MB:.0f}: "
        f"{common.verdict(mc_growth, GROWTH_TARGET_MB, at_most=True)}); "
        f"smtp-source {source_seconds:.2f} s; "
        f"mailcarrier speed = {time_ratio:.2f}x smtp-source"
    )
    common.save(
        "size",
        {
            "megabytes": megabytes,
            "runs": runs,
            "loop": loop,
            "figures": figures,
            "speed_ratio": time_ratio,
            "growth_target_mb": GROWTH_TARGET_MB,
        },
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_size", description=__doc__)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        run(args.megabytes, args.runs)
    except Skip as exc:
        print(f"  skipped: {exc}")


if __name__ == "__main__":
    main()

"""Queue drain: 10,000 queued 4 KB messages to smtp-sink, `mailcarrier run --once` vs Postfix.

Run as ``python -m bench.bench_drain [--messages N] [--runs R]``. Both systems get the same
job on the same machine in the same run: N one-recipient messages of about 4 KB are queued
first, then delivered to Postfix's `smtp-sink` on 127.0.0.1 as the relayhost, with
destination concurrency 20 and the connection cache on.

- Postfix 3.7 (Debian package): a private instance the benchmark creates under a temporary
  directory (its own config_directory, queue_directory, data_directory; loopback only; only
  the services a relay needs; bench/postfix_instance.py). Messages come in through its smtpd
  and wait on hold; ``postsuper -H ALL`` moves them to the deferred queue; the clock runs from
  ``postqueue -f`` until the queue is empty. Postfix fsyncs each queue file when it is
  written; a delivered message's file is removed.
- mailcarrier: `mailcarrier.submit_sync()` queues the messages durably (write, fsync,
  rename, fsync directory) in a fresh queue_directory; the clock runs around the whole
  ``mailcarrier -o queue_directory=... -o relayhost=[127.0.0.1]:PORT run --once`` process,
  interpreter start-up included (shown separately: the same command on an empty queue), and
  every delivery is recorded on disk before the message is removed.

Each side must deliver all N (counted from its maillog_file). Medians of R runs, interleaved.
Target (issue 22; issue 9 asked 1.5x): mailcarrier >= 3.0x Postfix's messages per second.
Reported, not asserted. Where the drain's time goes, and how to measure it without the
network: bench/drain_harness.py and bench/PROFILE.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Final

from bench import common
from bench.common import RECIPIENT, SENDER, Sink, Skip, median, run_bounded, spread
from bench.postfix_instance import PostfixInstance, postfix_available
from bench.workload import message_bytes

SIZE = 4096
TIMEOUT = 600.0
TARGET = 3.0
MAILCARRIER = str(Path(sys.executable).with_name("mailcarrier"))


def mailcarrier_ready() -> str:
    """Empty when `mailcarrier run --once` exists here; else why not."""
    if not Path(MAILCARRIER).exists():
        return f"{MAILCARRIER} not installed"
    try:
        _, out = run_bounded([MAILCARRIER, "run", "--help"], 30)
    except RuntimeError as exc:
        return f"`mailcarrier run` is not available: {exc}"
    return "" if "--once" in out else "`mailcarrier run --once` is not available yet"


def _mailcarrier_command(queue: Path, port: int, maillog: Path, processes: int) -> list[str]:
    return [
        MAILCARRIER,
        "-o",
        f"delivery_agent_processes={processes}",
        "-o",
        f"queue_directory={queue}",
        "-o",
        f"relayhost=[{common.LOOPBACK}]:{port}",
        "-o",
        f"maillog_file={maillog}",
        "-o",
        "smtp_destination_concurrency_limit=20",
        "-o",
        "smtp_connection_cache_on_demand=yes",
        "run",
        "--once",
    ]


def mailcarrier_round(sink: Sink, messages: int, root: Path, processes: int) -> dict[str, float]:
    """Queue `messages`, then time `run --once`; figures of one run."""
    import mailcarrier
    from mailcarrier.config.settings import Settings

    work = Path(tempfile.mkdtemp(prefix="mc-drain-", dir=root))
    try:
        queue, maillog = work / "queue", work / "maillog"
        config = Settings.defaults().with_overrides({"queue_directory": str(queue)})
        content = message_bytes(SIZE)
        start = time.perf_counter()
        for _ in range(messages):
            mailcarrier.submit_sync(content, sender=SENDER, recipients=[RECIPIENT], config=config)
        queued = time.perf_counter() - start
        command = _mailcarrier_command(queue, sink.port, maillog, processes)
        seconds, _ = run_bounded(command, TIMEOUT)
        sent = maillog.read_text(encoding="utf-8", errors="replace").count(" status=sent ")
        if sent != messages:
            raise RuntimeError(f"mailcarrier delivered {sent} of {messages} messages")
        # Interpreter and configuration start-up: the same command on the (now empty) queue.
        startup, _ = run_bounded(command, TIMEOUT)
        return {"seconds": seconds, "startup": startup, "queue_seconds": queued}
    finally:
        shutil.rmtree(work, ignore_errors=True)


def postfix_round(postfix: PostfixInstance, messages: int) -> dict[str, float]:
    before = postfix.delivered()
    start = time.perf_counter()
    postfix.inject(messages, SIZE, timeout=TIMEOUT)
    queued = time.perf_counter() - start
    postfix.release()
    start = time.perf_counter()
    postfix.flush()
    postfix.wait_empty(TIMEOUT)
    seconds = time.perf_counter() - start
    sent = postfix.delivered() - before
    if sent != messages:
        raise RuntimeError(f"Postfix delivered {sent} of {messages} messages")
    return {"seconds": seconds, "queue_seconds": queued}


# mailcarrier's configurations: deliveries inside the scheduler's process (the default), and
# one agent process per core (delivery_agent_processes = nproc), as Postfix runs its smtp(8)
# processes beside qmgr.
CONFIGS: Final = (1, max(2, os.cpu_count() or 2))


def _rounds(
    tmp: Path,
    messages: int,
    runs: int,
    waiting: str,
    pf_rates: list[float],
    mc: dict[int, dict[str, list[float]]],
) -> None:
    with Sink() as sink, PostfixInstance(tmp / "postfix", sink.port) as postfix:
        for n in range(runs):
            pf = postfix_round(postfix, messages)
            pf_rates.append(messages / pf["seconds"])
            line = f"  run {n + 1}: Postfix {pf['seconds']:.2f} s = {pf_rates[-1]:,.0f} msg/s"
            if not waiting:
                for processes in CONFIGS:
                    got = mailcarrier_round(sink, messages, tmp, processes)
                    figures = mc[processes]
                    figures["rates"].append(messages / got["seconds"])
                    net = max(1e-6, got["seconds"] - got["startup"])
                    figures["net"].append(messages / net)
                    figures["startup"].append(got["startup"])
                    line += (
                        f"; mailcarrier ({processes} process{'es' if processes > 1 else ''}) "
                        f"{got['seconds']:.2f} s = {figures['rates'][-1]:,.0f} msg/s"
                    )
            print(line, flush=True)


def run(messages: int, runs: int) -> None:
    common.need_postfix_tools()
    why = postfix_available()
    if why:
        raise Skip(why)
    waiting = mailcarrier_ready()
    print(f"{messages:,} x {SIZE} B one-recipient messages, concurrency 20, {runs} runs")
    if waiting:
        print(f"  mailcarrier side skipped: {waiting} (the queue, issue 8); Postfix only")
    pf_rates: list[float] = []
    mc: dict[int, dict[str, list[float]]] = {
        p: {"rates": [], "net": [], "startup": []} for p in CONFIGS
    }
    with tempfile.TemporaryDirectory(prefix="mc-bench-drain-", dir="/var/tmp") as tmp:
        Path(tmp).chmod(0o755)  # Postfix's daemons (user postfix) must reach their queue
        _rounds(Path(tmp), messages, runs, waiting, pf_rates, mc)
    data: dict[str, object] = {
        "messages": messages,
        "size": SIZE,
        "runs": runs,
        "postfix_rate": median(pf_rates),
        "postfix_runs": pf_rates,
        "target": TARGET,
    }
    print(f"  medians: Postfix {median(pf_rates):,.0f} msg/s ({spread(pf_rates)})")
    if waiting:
        data["mailcarrier"] = f"awaits the queue: {waiting}"
        print("  mailcarrier: not measured")
        common.save("drain", data)
        return
    configs = []
    for processes in CONFIGS:
        figures = mc[processes]
        ratio = common.ratio(median(figures["rates"]), median(pf_rates))
        net_ratio = common.ratio(median(figures["net"]), median(pf_rates))
        configs.append(
            {
                "processes": processes,
                "rate": median(figures["rates"]),
                "runs": figures["rates"],
                "net_rate": median(figures["net"]),
                "startup": median(figures["startup"]),
                "ratio": ratio,
                "net_ratio": net_ratio,
            }
        )
        print(
            f"  mailcarrier, delivery_agent_processes={processes}: "
            f"{median(figures['rates']):,.0f} msg/s ({spread(figures['rates'])}) = {ratio:.2f}x "
            f"Postfix (target >= {TARGET}: {common.verdict(ratio, TARGET)}); without start-up "
            f"{median(figures['net']):,.0f} msg/s = {net_ratio:.2f}x"
        )
    data["configs"] = configs
    # The headline figures: the default configuration (deliveries in the scheduler process).
    default = configs[0]
    data.update(
        {
            "mailcarrier_rate": default["rate"],
            "mailcarrier_runs": default["runs"],
            "mailcarrier_net_rate": default["net_rate"],
            "mailcarrier_startup": default["startup"],
            "ratio": default["ratio"],
            "net_ratio": default["net_ratio"],
        }
    )
    common.save("drain", data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_drain", description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        run(args.messages, args.runs)
    except Skip as exc:
        print(f"  skipped: {exc}")


if __name__ == "__main__":
    main()

"""Fleet overhead: three `run --once` nodes drain 10,000 messages, with Redis and without.

Run as ``python -m bench.bench_fleet [--messages N] [--runs R]``. Three nodes, each with its
own queue (N/3 one-recipient 4 KB messages queued first with `mailcarrier.submit_sync()`),
deliver at once to Postfix's `smtp-sink` on 127.0.0.1 as their relayhost (destination
concurrency 20 each, connection cache on). The clock runs from starting the three
``mailcarrier run --once`` processes until the last one exits, interpreter start-up included.
The sides, interleaved in every run (the order turned around every other run):

- ``without``: the three nodes alone (single-node mode, no `shared_state_server`);
- ``leases``: the same nodes sharing a private redis-server (the tests' peer,
  tests/support/peers/redis.py) with ``fleet_destination_concurrency_limit = 1000``: a lease
  per connection, never binding (3 x 20 connections at most);
- ``leases+rate``: as ``leases`` plus ``fleet_destination_rate_limit = 1000000/1s`` with a
  burst of 100000: GCRA tokens, never binding (taken up to 32 at a time: fleet/gate.py).

The nodes' CPU time (user + system, from the kernel's accounting of the three processes) is
reported too, per message and as a ratio: on a machine shared with other work it varies far
less than the wall clock. Redis round trips are counted by the server, in one more run of
each Redis side (not timed): ``redis-cli MONITOR`` lists every command a client sent, and
those run inside the Lua scripts (``[0 lua]``) are left out, so a lease is one call however
many commands its script runs, while the client's connection set-up (``HELLO``), releases,
renewals and heartbeats all count. Where there are at least two CPUs the nodes run on the
first and smtp-sink and redis-server on the others, for both sides alike. Every side must
deliver all N (counted from the nodes' maillog files). Start-up and shutdown are measured
too (the same commands again on the emptied queues: importing the Redis client is most of
the difference), and the rate without them, as bench_drain.py does.
Targets (issue 19): ``leases`` >= 0.9x ``without`` (the median of each run's ratio), at most
one Redis round trip per message. Reported, not asserted; bench/report.py writes the table.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from bench import common
from bench.common import RECIPIENT, SENDER, Sink, Skip, median, spread
from bench.workload import message_bytes

SIZE: Final = 4096
NODES: Final = 3
TIMEOUT: Final = 600.0
SPEED_TARGET: Final = 0.9
TRIPS_TARGET: Final = 1.0
MAILCARRIER: Final = str(Path(sys.executable).with_name("mailcarrier"))
# The sides and what each adds to the nodes' configuration (the Redis URL added at run time).
SIDES: Final[dict[str, dict[str, str]]] = {
    "without": {},
    "leases": {"fleet_destination_concurrency_limit": "1000"},
    "leases+rate": {
        "fleet_destination_concurrency_limit": "1000",
        "fleet_destination_rate_limit": "1000000/1s",
        "fleet_destination_rate_burst": "100000",
    },
}


def _redis(root: Path) -> Any:
    """The tests' private redis-server (loopback, free port, nothing persisted)."""
    from tests.support.peers import redis as redis_peer

    if not redis_peer.available():
        raise Skip("redis-server is not installed (Debian redis-server; `make peers`)")
    return redis_peer.RedisServer(root / "redis").start()


class Monitor:
    """``redis-cli MONITOR`` into a file while a run goes: the commands clients sent."""

    def __init__(self, redis: Any, path: Path) -> None:
        from tests.support.peers.redis import REDIS_CLI

        self.path = path
        self.output = path.open("wb")
        args = [REDIS_CLI, "-h", "127.0.0.1", "-p", str(redis.port), "MONITOR"]
        self.proc = subprocess.Popen(args, stdout=self.output, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while self.path.stat().st_size == 0 and time.monotonic() < deadline:
            time.sleep(0.02)  # its "OK": monitoring

    def calls(self) -> dict[str, int]:
        """Commands per name, those run inside scripts left out."""
        time.sleep(0.2)  # the last lines on their way
        self.proc.terminate()
        self.proc.wait()
        self.output.close()
        calls: dict[str, int] = {}
        for line in self.path.read_text(errors="replace").splitlines():
            found = _MONITOR_LINE.match(line)
            if found is None or found.group(1) == "lua":
                continue
            name = found.group(2).lower()
            calls[name] = calls.get(name, 0) + 1
        return calls


# ``1701590000.123456 [0 127.0.0.1:54321] "evalsha" "..."``; ``[0 lua]`` inside a script.
_MONITOR_LINE: Final = re.compile(r'^\d+\.\d+ \[\d+ (\S+)\] "([^"]+)"')


def _node_options(work: Path, n: int, sink: Sink, extra: dict[str, str]) -> dict[str, str]:
    node = work / f"node{n}"
    return {
        "queue_directory": str(node / "queue"),
        "data_directory": str(node / "data"),
        "maillog_file": str(node / "maillog"),
        "node_id": f"node{n}",
        "relayhost": sink.nexthop,
        "smtp_destination_concurrency_limit": "20",
        "smtp_connection_cache_on_demand": "yes",
        **extra,
    }


def _queue(options: dict[str, str], count: int) -> None:
    import mailcarrier
    from mailcarrier.config.settings import Settings

    config = Settings.defaults().with_overrides({"queue_directory": options["queue_directory"]})
    content = message_bytes(SIZE)
    for _ in range(count):
        mailcarrier.submit_sync(content, sender=SENDER, recipients=[RECIPIENT], config=config)


def _drain(nodes: list[dict[str, str]], cpus: set[int] | None) -> tuple[float, float]:
    """Start the nodes' `run --once` at once; (seconds until the last one has exited, CPU
    seconds the three used)."""

    def pinned() -> None:
        if cpus is not None:
            os.sched_setaffinity(0, cpus)

    procs: list[tuple[subprocess.Popen[bytes], Any]] = []
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    for options in nodes:
        words = [w for k, v in options.items() for w in ("-o", f"{k}={v}")]
        errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed below
        proc = subprocess.Popen(
            [MAILCARRIER, *words, "run", "--once"],
            stdout=subprocess.DEVNULL,
            stderr=errors,
            preexec_fn=pinned,  # noqa: PLW1509 - no threads here
        )
        procs.append((proc, errors))
    deadline = start + TIMEOUT
    failed = []
    for proc, errors in procs:
        try:
            proc.wait(max(1.0, deadline - time.perf_counter()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.returncode != 0:
            errors.seek(0)
            failed.append(f"exit {proc.returncode}: {errors.read().decode()[-300:]}")
        errors.close()
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if failed:
        raise RuntimeError("a node failed: " + "; ".join(failed))
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return seconds, cpu


def one_run(
    root: Path,
    sink: Sink,
    redis: Any,
    side: str,
    messages: int,
    cpus: set[int] | None,
    count: bool = False,
) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix=f"mc-fleet-{side.replace('+', '-')}-", dir=root))
    try:
        extra = dict(SIDES[side])
        if side != "without":
            extra["shared_state_server"] = redis.url
        nodes = [_node_options(work, n + 1, sink, extra) for n in range(NODES)]
        for n, options in enumerate(nodes):
            _queue(options, messages // NODES + (1 if n < messages % NODES else 0))
        monitor = Monitor(redis, work / "monitor") if count else None
        seconds, cpu = _drain(nodes, cpus)
        calls = monitor.calls() if monitor is not None else {}
        # Start-up and shutdown: the same three commands on the (now empty) queues.
        startup, startup_cpu = _drain(nodes, cpus) if not count else (0.0, 0.0)
        sent = sum(
            Path(o["maillog_file"]).read_text(errors="replace").count(" status=sent ")
            for o in nodes
        )
        if sent != messages:
            raise RuntimeError(f"{side}: {sent} of {messages} messages delivered")
        return {
            "seconds": seconds,
            "cpu": cpu,
            "startup": startup,
            "startup_cpu": startup_cpu,
            "calls": calls,
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _rounds(root: Path, messages: int, runs: int) -> dict[str, Any]:
    """Timed runs of every side, interleaved; then one counted run of each Redis side."""
    times: dict[str, list[float]] = {side: [] for side in SIDES}
    cpu: dict[str, list[float]] = {side: [] for side in SIDES}
    startup: dict[str, list[tuple[float, float]]] = {side: [] for side in SIDES}
    calls: dict[str, dict[str, int]] = {}
    split = common.cpu_split()
    redis = _redis(root)
    try:
        with Sink() as sink:
            if split is not None:
                assert sink.proc is not None and redis.proc is not None
                common.pin_tree(sink.proc.pid, split[1])
                common.pin_tree(redis.proc.pid, split[1])
            cpus = split[0] if split is not None else None
            for n in range(runs):
                order = list(SIDES) if n % 2 == 0 else list(SIDES)[::-1]
                line = f"  run {n + 1}:"
                for side in order:
                    got = one_run(root, sink, redis, side, messages, cpus)
                    seconds = got["seconds"]
                    times[side].append(seconds)
                    cpu[side].append(got["cpu"])
                    startup[side].append((got["startup"], got["startup_cpu"]))
                    line += (
                        f" {side} {seconds:.2f} s = {messages / seconds:,.0f} msg/s, "
                        f"CPU {got['cpu']:.2f} s;"
                    )
                print(line.rstrip(";"), flush=True)
            for side in SIDES:
                if side != "without":
                    calls[side] = one_run(root, sink, redis, side, messages, cpus, True)["calls"]
                    trips = sum(calls[side].values()) / messages
                    print(f"  counted run, {side}: {trips:.4f} Redis round trips per message")
    finally:
        redis.stop()
    return {"times": times, "cpu": cpu, "startup": startup, "calls": calls}


def summarise(messages: int, runs: int, got: dict[str, Any]) -> dict[str, Any]:
    base = [messages / t for t in got["times"]["without"]]
    base_cpu = got["cpu"]["without"]
    base_net = [
        messages / max(1e-6, t - s)
        for t, (s, _) in zip(got["times"]["without"], got["startup"]["without"], strict=True)
    ]
    sides: dict[str, Any] = {}
    for side, times in got["times"].items():
        rates = [messages / t for t in times]
        ratios = [common.ratio(a, b) for a, b in zip(rates, base, strict=True)]
        calls = got["calls"].get(side, {})
        cpu = got["cpu"][side]
        cpu_ratios = [common.ratio(b, c) for b, c in zip(base_cpu, cpu, strict=True)]
        starts = got["startup"][side]
        net = [messages / max(1e-6, t - s) for t, (s, _) in zip(times, starts, strict=True)]
        net_ratios = [common.ratio(a, b) for a, b in zip(net, base_net, strict=True)]
        sides[side] = {
            # Without start-up and shutdown (the same commands on empty queues, as
            # bench_drain.py does): the messages' own cost.
            "startup": median([s for s, _ in starts]),
            "startup_cpu": median([c for _, c in starts]),
            "net_rate": median(net),
            "net_ratio": median(net_ratios),
            # The nodes' CPU time per message (user + system, all three), and the ratio of
            # the runs' CPU without Redis to this side's: far less noisy than wall time on a
            # shared machine (bench/harness.py's reasoning).
            "cpu_us": median(cpu) / messages * 1e6,
            "cpu_ratio": median(cpu_ratios),
            "cpu_ratios": cpu_ratios,
            "rate": median(rates),
            "runs": rates,
            # The median of each run's ratio: neighbours in time meet the same load.
            "ratio": median(ratios),
            "ratios": ratios,
            "trips_per_message": sum(calls.values()) / messages,
            "commands": dict(sorted(calls.items())),
        }
    return {
        "messages": messages,
        "nodes": NODES,
        "size": SIZE,
        "runs": runs,
        "speed_target": SPEED_TARGET,
        "trips_target": TRIPS_TARGET,
        "pinned": common.cpu_split() is not None,
        "sides": sides,
    }


def run(messages: int, runs: int) -> None:
    common.need_postfix_tools()
    if not Path(MAILCARRIER).exists():
        raise Skip(f"{MAILCARRIER} not installed")
    print(
        f"{NODES} nodes, {messages:,} x {SIZE} B one-recipient messages in all, concurrency 20 "
        f"per node, {runs} runs of each side"
    )
    with tempfile.TemporaryDirectory(prefix="mc-bench-fleet-", dir="/var/tmp") as tmp:
        got = _rounds(Path(tmp), messages, runs)
    data = summarise(messages, runs, got)
    for side, s in data["sides"].items():
        print(
            f"  {side}: {s['rate']:,.0f} msg/s ({spread(s['runs'])}), "
            f"{s['ratio']:.2f}x without Redis (without start-up {s['startup']:.2f} s, CPU "
            f"{s['startup_cpu']:.2f} s: {s['net_ratio']:.2f}x); CPU {s['cpu_us']:,.0f} us per "
            "message, "
            f"{s['cpu_ratio']:.2f}x; {s['trips_per_message']:.4f} Redis round trips "
            f"per message {s['commands']}"
        )
    lease = data["sides"]["leases"]
    print(
        f"  target: leases/without >= {SPEED_TARGET}: "
        f"{common.verdict(lease['ratio'], SPEED_TARGET)}; round trips per message <= "
        f"{TRIPS_TARGET:g}: "
        f"{common.verdict(lease['trips_per_message'], TRIPS_TARGET, at_most=True)}"
    )
    common.save("fleet", data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_fleet", description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args(argv)
    try:
        run(args.messages, args.runs)
    except Skip as exc:
        print(f"  skipped: {exc}")


if __name__ == "__main__":
    main()

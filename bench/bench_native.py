"""Postfix-native agent: one Postfix drains 10,000 queued 4 KB messages through its own smtp(8)
and through mailcarrier-smtp (issue 16's figures).

Run as ``python -m bench.bench_native [--messages N] [--runs R]``. One private Postfix instance
(bench/postfix_instance.py: loopback only, relayhost smtp-sink on 127.0.0.1, destination
concurrency 20, connection cache on demand, the ``smtp`` service's maxproc 20) serves both
sides in the same run; only the program of master.cf's ``smtp`` service changes between
them (``smtp``, or the mailcarrier-smtp console script of this interpreter, whose ``#!`` line
is absolute since master gives its children no PATH), followed by ``postfix reload``, and
each round starts once no agent process of either kind is left. Each round queues N messages
on hold through the instance's smtpd, releases them, and times from ``postqueue -f`` until the
queue is empty, while bench/procmem.py samples every agent process (master's children named
``smtp`` or ``mailcarrier-smt``) every 0.1 s: the peak of the sum of their RSS, of their PSS
(shared pages divided among the processes sharing them), the most processes at once, and the
CPU time they used per message (user + system; steadier than the rates on a busy machine).
Postfix runs up to 20 smtp(8) processes, one per delivery in flight; mailcarrier-smtp serves
up to ``agent_concurrency_limit`` (20) qmgr connections in one process. main.cf is the same
for both (``max_use`` 100 and ``max_idle`` 100s included). A third side runs mailcarrier-smtp
with ``-o agent_concurrency_limit=10`` on the master.cf line: two processes, both cores.

Each side must deliver all N (``status=sent`` lines in the instance's maillog) with no
``fatal:``, ``panic:`` or ``bad command startup`` line. Medians of R runs, interleaved (the
side that goes first alternates). Targets (issue 16): mailcarrier-smtp's messages per second
>= 1.0x smtp(8)'s, and its agents' total RSS <= 1/4 of the smtp(8) processes' total (with
the default agent_concurrency_limit; the third side is for comparison). Reported, not
asserted.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Final

from bench import common
from bench.common import Sink, Skip, median, run_bounded, spread
from bench.postfix_instance import PostfixInstance, postfix_available
from bench.procmem import AgentMemory, matching

SIZE: Final = 4096
TIMEOUT: Final = 600.0
SPEED_TARGET: Final = 1.0
MEMORY_TARGET: Final = 0.25
MAILCARRIER_SMTP: Final = Path(sys.executable).with_name("mailcarrier-smtp")
MC_NAME: Final = MAILCARRIER_SMTP.name[:15]  # its /proc/PID/comm (15 characters at most)
# The sides: label -> (the process name, master.cf arguments after the command). The third
# is mailcarrier-smtp with two processes (10 qmgr connections each), so that it uses both
# cores, as 20 smtp(8) processes do: reported beside the targets, not measured against them.
SIDES: Final = {
    "smtp(8)": ("smtp", ""),
    "mailcarrier-smtp": (MC_NAME, ""),
    "mailcarrier-smtp, agent_concurrency_limit=10": (MC_NAME, " -o agent_concurrency_limit=10"),
}
TROUBLE: Final = ("fatal:", "panic:", "bad command startup", "Traceback")
MB: Final = 1024 * 1024


def daemon_directory() -> str:
    _, out = run_bounded(["postconf", "-d", "-h", "daemon_directory"], 30)
    return out.strip()


def commands() -> dict[str, str]:
    """master.cf's command field and arguments of each side (the command relative to
    daemon_directory)."""
    ours = os.path.relpath(MAILCARRIER_SMTP, daemon_directory())
    return {side: (name if name == "smtp" else ours) + args for side, (name, args) in SIDES.items()}


def _agents(postfix: PostfixInstance, names: set[str]) -> dict[int, float]:
    master = postfix.master_pid()
    return matching(lambda _pid, parent, name: parent == master and name in names)


def switch(postfix: PostfixInstance, command: str) -> None:
    """Make `command` the smtp service and wait until no agent process of either side is
    left, so that every round starts cold."""
    postfix.set_smtp_command(command)
    deadline = time.monotonic() + 60
    while _agents(postfix, {name for name, _ in SIDES.values()}):
        if time.monotonic() > deadline:
            raise RuntimeError("agent processes of the previous round did not exit in 60 s")
        time.sleep(0.1)


def _wait_delivered(postfix: PostfixInstance, target: int) -> int:
    """postlogd writes asynchronously: give the last lines a moment to arrive."""
    deadline = time.monotonic() + 10
    while (sent := postfix.delivered()) < target and time.monotonic() < deadline:
        time.sleep(0.1)
    return sent


def drain_round(postfix: PostfixInstance, side: str, messages: int) -> dict[str, float]:
    """Queue `messages` on hold, release them and time the drain; figures of one round."""
    mark = len(postfix.maillog.read_bytes())
    before = postfix.delivered()
    postfix.inject(messages, SIZE, timeout=TIMEOUT)
    postfix.release()
    master, name = postfix.master_pid(), SIDES[side][0]
    with AgentMemory(lambda _pid, parent, comm: parent == master and comm == name) as memory:
        start = time.perf_counter()
        postfix.flush()
        postfix.wait_empty(TIMEOUT)
        seconds = time.perf_counter() - start
    sent = _wait_delivered(postfix, before + messages) - before
    log = postfix.maillog.read_bytes()[mark:].decode(errors="replace")
    trouble = [line for line in log.splitlines() if any(t in line for t in TROUBLE)]
    if sent != messages or trouble or not memory.peak_processes:
        raise RuntimeError(
            f"{side} delivered {sent} of {messages} messages with {memory.peak_processes} "
            f"agent processes seen; {' | '.join(trouble[:3])}"
        )
    return {
        "seconds": seconds,
        "rate": messages / seconds,
        "rss_mb": memory.peak_rss / MB,
        "pss_mb": memory.peak_pss / MB,
        "processes": memory.peak_processes,
        "cpu_us": memory.cpu_seconds / messages * 1e6,
        "samples": memory.samples,
    }


def _rounds(tmp: Path, messages: int, runs: int) -> dict[str, list[dict[str, float]]]:
    found: dict[str, list[dict[str, float]]] = {side: [] for side in SIDES}
    programs = commands()
    with Sink() as sink, PostfixInstance(tmp / "postfix", sink.port) as postfix:
        for n in range(runs):
            order = list(SIDES) if n % 2 == 0 else list(reversed(SIDES))
            line = f"  run {n + 1}:"
            for side in order:
                switch(postfix, programs[side])
                got = drain_round(postfix, side, messages)
                found[side].append(got)
                line += (
                    f" {side} {got['seconds']:.2f} s = {got['rate']:,.0f} msg/s, "
                    f"RSS {got['rss_mb']:.0f} MB in {got['processes']:.0f} processes, "
                    f"{got['cpu_us']:.0f} us CPU per message;"
                )
            print(line.rstrip(";"), flush=True)
    return found


def summary(rounds: list[dict[str, float]]) -> dict[str, Any]:
    """Medians of one side's rounds, and the rounds themselves."""
    keys = ("rate", "seconds", "rss_mb", "pss_mb", "processes", "cpu_us")
    return {
        **{key: median([r[key] for r in rounds]) for key in keys},
        "runs": [r["rate"] for r in rounds],
        "rss_runs": [r["rss_mb"] for r in rounds],
        "samples": [r["samples"] for r in rounds],
    }


def _compare(found: dict[str, list[dict[str, float]]]) -> dict[str, Any]:
    """Each side's medians, and each mailcarrier side's ratios to smtp(8)'s."""
    postfix = summary(found["smtp(8)"])
    print(
        f"  smtp(8): {postfix['rate']:,.0f} msg/s ({spread(postfix['runs'])}); agents' peak "
        f"total RSS {postfix['rss_mb']:.0f} MB, PSS {postfix['pss_mb']:.0f} MB, "
        f"{postfix['processes']:.0f} processes; {postfix['cpu_us']:.0f} us CPU per message"
    )
    sides = []
    for side in list(SIDES)[1:]:
        ours = summary(found[side])
        speed = common.ratio(ours["rate"], postfix["rate"])
        memory = common.ratio(ours["rss_mb"], postfix["rss_mb"])
        pss = common.ratio(ours["pss_mb"], postfix["pss_mb"])
        sides.append(
            {"label": side, **ours, "speed_ratio": speed, "memory_ratio": memory, "pss_ratio": pss}
        )
        print(
            f"  {side}: {ours['rate']:,.0f} msg/s ({spread(ours['runs'])}); agents' peak total "
            f"RSS {ours['rss_mb']:.0f} MB, PSS {ours['pss_mb']:.0f} MB, "
            f"{ours['processes']:.0f} processes; {ours['cpu_us']:.0f} us CPU per message; "
            f"/ smtp(8): speed {speed:.2f}x (target >= {SPEED_TARGET}: "
            f"{common.verdict(speed, SPEED_TARGET)}), RSS {memory:.2f} (target <= "
            f"{MEMORY_TARGET}: {common.verdict(memory, MEMORY_TARGET, at_most=True)}), "
            f"PSS {pss:.2f}"
        )
    return {"postfix": postfix, "mailcarrier": sides}


def run(messages: int, runs: int) -> None:
    common.need_postfix_tools("postconf")
    why = postfix_available()
    if why:
        raise Skip(why)
    if not MAILCARRIER_SMTP.exists():
        raise Skip(f"{MAILCARRIER_SMTP} not installed (`make venv`)")
    print(f"{messages:,} x {SIZE} B one-recipient messages, concurrency 20, {runs} runs")
    with tempfile.TemporaryDirectory(prefix="mc-bench-native-", dir="/var/tmp") as tmp:
        Path(tmp).chmod(0o755)  # Postfix's daemons (user postfix) must reach their queue
        found = _rounds(Path(tmp), messages, runs)
    data = {
        "messages": messages,
        "size": SIZE,
        "runs": runs,
        "concurrency": 20,
        **_compare(found),
        "speed_target": SPEED_TARGET,
        "memory_target": MEMORY_TARGET,
    }
    common.save("native", data)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_native", description=__doc__)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args(argv)
    try:
        run(args.messages, args.runs)
    except Skip as exc:
        print(f"  skipped: {exc}")


if __name__ == "__main__":
    main()

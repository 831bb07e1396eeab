"""The resident memory of a group of processes, sampled while a benchmark runs.

`AgentMemory(select)` samples, in a background thread every `interval` seconds, every process
that `select(pid, parent, name)` accepts (`parent` is its parent's pid, `name` its
``/proc/PID/comm``), and keeps the peak of the sum of their resident set sizes (VmRSS, from
``/proc/PID/statm``) and of their proportional set sizes (Pss, from ``/proc/PID/smaps_rollup``:
a page shared by n processes counts 1/n in each, so the sum is the memory the group really
holds), the largest number of them seen at once, and the CPU time (user + system) they used
while it ran: what each used since it was first seen (all of it when it started later), as
last seen, so a process that exits between two samples loses at most one interval. Use it
as a ``with`` block around the part that is measured. It reads Linux's /proc only (without
it every figure is 0) and measures nothing else: the benchmarks (bench/bench_native.py)
choose the processes and report the figures.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Final

PAGE: Final = os.sysconf("SC_PAGE_SIZE")
TICK: Final = os.sysconf("SC_CLK_TCK")
PROC: Final = Path("/proc")

Select = Callable[[int, int, str], bool]


def stat_of(pid: int) -> tuple[int, str, float] | None:
    """(parent pid, command name, CPU seconds so far) of a process; None when it is gone."""
    try:
        text = (PROC / str(pid) / "stat").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    # After the name: state, ppid, ..., utime and stime are the 12th and 13th fields.
    return int(fields[1]), name, (int(fields[11]) + int(fields[12])) / TICK


def rss_bytes(pid: int) -> int:
    try:
        return int((PROC / str(pid) / "statm").read_text().split()[1]) * PAGE
    except (OSError, IndexError, ValueError):
        return 0


def pss_bytes(pid: int) -> int:
    try:
        with open(PROC / str(pid) / "smaps_rollup", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (OSError, IndexError, ValueError):
        pass
    return 0


def matching(select: Select) -> dict[int, float]:
    """The pids `select` accepts now, with the CPU seconds each has used."""
    found = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        got = stat_of(pid)
        if got is not None and select(pid, got[0], got[1]):
            found[pid] = got[2]
    return found


class AgentMemory:
    def __init__(self, select: Select, interval: float = 0.1) -> None:
        self.select = select
        self.interval = interval
        self.peak_rss = 0
        self.peak_pss = 0
        self.peak_processes = 0
        self.samples = 0
        self._first: dict[int, float] | None = None  # CPU of the processes there at the start
        self._last: dict[int, float] = {}  # CPU of every process seen, as last seen
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="agent-memory", daemon=True)

    @property
    def cpu_seconds(self) -> float:
        first = self._first or {}
        return sum(cpu - first.get(pid, 0.0) for pid, cpu in self._last.items())

    def sample(self) -> None:
        pids = matching(self.select)
        if self._first is None:
            self._first = dict(pids)
        self._last.update(pids)
        self.peak_rss = max(self.peak_rss, sum(rss_bytes(pid) for pid in pids))
        self.peak_pss = max(self.peak_pss, sum(pss_bytes(pid) for pid in pids))
        self.peak_processes = max(self.peak_processes, len(pids))
        self.samples += 1

    def _run(self) -> None:
        while True:
            self.sample()
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> AgentMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.sample()  # a last look, so that even a very short run has one sample at its end

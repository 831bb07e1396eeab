"""What bench/RESULTS.md already says, for the benchmarks whose figures are not at hand.

bench/results/*.json is not kept in git, so a checkout that runs one benchmark has only that
benchmark's figures; bench/report.py would otherwise write RESULTS.md without the others.
`previous_sections(text)` splits a RESULTS.md into each benchmark's section (from its
``## `` heading to its ``_NAME: measured ..._`` line), `previous_loads(text)` reads the load
averages of the machine section and `previous_machines(text)` the machine each benchmark ran
on (CPU, kernel, versions), so that report.py can carry them over unchanged and say where
the kept sections were measured. Nothing here measures or formats figures.
"""

from __future__ import annotations

import re
from typing import Final

_MEASURED: Final = re.compile(r"^_(\w+): measured [^_]*_$")
_LOADS: Final = re.compile(r"(\w+) (\d+\.\d+ \d+\.\d+ \d+\.\d+)")
_LOAD_LINE: Final = "- load average (1/5/15 min) as each benchmark finished: "
RAN_ON: Final = "(kept from the previous RESULTS.md) ran on:"
_RAN_ON: Final = re.compile(r"^- ([\w, ]+) " + re.escape(RAN_ON) + r" (.*)$")


def previous_sections(text: str) -> dict[str, list[str]]:
    """Benchmark name -> the lines of its section, its ``_NAME: measured_`` line included."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text.splitlines():
        if line.startswith("## "):
            current = [line]
        elif current is not None:
            current.append(line)
            found = _MEASURED.match(line)
            if found:
                sections[found.group(1)] = current
                current = None
    return sections


def previous_loads(text: str) -> dict[str, str]:
    """Benchmark name -> its load average ("0.87 0.53 0.64") in the machine section."""
    for line in text.splitlines():
        if line.startswith(_LOAD_LINE):
            return dict(_LOADS.findall(line[len(_LOAD_LINE) :]))
    return {}


def previous_machines(text: str) -> dict[str, str]:
    """Benchmark name -> the description of the machine it ran on (CPU and version lines
    joined with "; "): the machine section's own, or the one a "ran on:" line names."""
    own = "; ".join(
        line[2:] for line in text.splitlines() if line.startswith(("- CPUs (nproc):", "- Linux "))
    )
    machines = dict.fromkeys(previous_loads(text), own)
    for line in text.splitlines():
        found = _RAN_ON.match(line)
        if found:
            for name in found.group(1).split(", "):
                machines[name] = found.group(2)
    return machines

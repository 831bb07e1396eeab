"""Shared pieces of the side-by-side benchmarks: peers, workers, medians, results.

The throughput benchmarks (engine, scale, size, drain) compare mailcarrier with Postfix's own
programs on the same machine in the same run. This module starts and stops Postfix's
`smtp-sink` on 127.0.0.1 (`Sink`), runs a benchmark worker in a fresh Python process so that
its peak resident memory (VmHWM) and event loop belong to that measurement alone (`run_worker`),
runs `smtp-source` with a time limit, takes medians, describes the machine, and stores each
benchmark's figures as JSON under bench/results/ for `bench/report.py`, which writes
bench/RESULTS.md and the chart. It asserts nothing about speed: targets are reported, not tested.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, Final

BENCH_DIR: Final = Path(__file__).resolve().parent
RESULTS_DIR: Final = BENCH_DIR / "results"
SMTP_SINK: Final = shutil.which("smtp-sink") or "/usr/sbin/smtp-sink"
SMTP_SOURCE: Final = shutil.which("smtp-source") or "/usr/sbin/smtp-source"
LOOPBACK: Final = "127.0.0.1"
# Sender and recipient every benchmark uses (the sink accepts anything).
SENDER: Final = "bench@example.org"
RECIPIENT: Final = "sink@example.net"


class Skip(Exception):
    """A benchmark cannot run here (a peer is missing, not root, ...)."""


def need_postfix_tools(*programs: str) -> None:
    """Raise Skip unless smtp-sink/smtp-source (and `programs`) exist and we are root."""
    for program in (SMTP_SINK, SMTP_SOURCE, *programs):
        if not os.path.exists(program) and shutil.which(program) is None:
            raise Skip(f"{program} not installed (Debian package postfix; `make peers`)")
    if os.geteuid() != 0:
        raise Skip("smtp-sink and Postfix must be started as root (they drop to nobody)")


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


# --- the sink ------------------------------------------------------------------------------
class Sink:
    """Postfix's smtp-sink on 127.0.0.1, as root with ``-u nobody``."""

    def __init__(self, *options: str, connections: int = 256, backlog: int = 1024) -> None:
        self.options = options
        self.connections = connections
        self.backlog = backlog
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.errors: IO[bytes] | None = None

    @property
    def nexthop(self) -> str:
        return f"[{LOOPBACK}]:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    def start(self) -> Sink:
        args = [SMTP_SINK, "-u", "nobody", "-m", str(self.connections), *self.options]
        args += [self.endpoint, str(self.backlog)]
        # Its complaints go to a file, not a pipe: nobody reads a pipe during a run, and a
        # full one would stall the sink (and every figure taken against it).
        self.errors = tempfile.TemporaryFile()  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=self.errors)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.errors.seek(0)
                err = self.errors.read().decode(errors="replace")
                raise Skip(f"smtp-sink exited: {err.strip()}")
            with socket.socket() as s:
                if s.connect_ex((LOOPBACK, self.port)) == 0:
                    return self
            time.sleep(0.02)
        self.stop()
        raise Skip("smtp-sink did not start listening within 10 s")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
        if self.errors is not None:
            self.errors.close()
            self.errors = None

    def __enter__(self) -> Sink:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --- processes -----------------------------------------------------------------------------
def run_bounded(args: Sequence[str], timeout: float, **kwargs: Any) -> tuple[float, str]:
    """Run a program with a time limit; (wall seconds, stderr). Kills its process group on
    timeout and raises RuntimeError on failure."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        list(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        start_new_session=True,
        **kwargs,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise RuntimeError(f"{args[0]} did not finish within {timeout:.0f} s") from None
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{args[0]} exited {proc.returncode}: {err.decode()[-500:]}")
    return elapsed, out.decode() + err.decode()


def run_worker(
    client: str, loop: str, port: int, messages: int, concurrency: int, size: int, timeout: float
) -> dict[str, Any]:
    """One client run (bench/workload.py) in a fresh Python process, so that its event loop
    and its peak memory (VmHWM) belong to this measurement alone; returns its figures."""
    args = [client, loop, str(port), str(messages), str(concurrency), str(size)]
    module = "bench.workload"
    cmd = [sys.executable, "-m", module, *args]
    _, output = run_bounded(cmd, timeout, cwd=BENCH_DIR.parent)
    for line in reversed(output.splitlines()):
        if line.startswith("{"):
            result: dict[str, Any] = json.loads(line)
            return result
    raise RuntimeError(f"{module} worker printed no result: {output[-500:]}")


def smtp_source(sink: Sink, *, sessions: int, messages: int, length: int, timeout: float) -> float:
    """Seconds smtp-source takes for `messages` over `sessions` reused sessions (-d)."""
    args = [SMTP_SOURCE, "-4", "-d", "-s", str(sessions), "-m", str(messages)]
    args += ["-l", str(length), "-M", "localhost", "-f", SENDER, "-t", RECIPIENT, sink.endpoint]
    seconds, _ = run_bounded(args, timeout)
    return seconds


# --- memory --------------------------------------------------------------------------------
def status_kb(field: str) -> int:
    """A `/proc/self/status` figure in kB (VmRSS, VmHWM); 0 where there is no /proc."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def reset_peak() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0: write 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
    except OSError:
        return False
    return True


# --- loops ---------------------------------------------------------------------------------
def install_loop(name: str) -> str:
    """Use uvloop when asked and installed; returns the loop actually used."""
    if name == "uvloop":
        try:
            import uvloop
        except ImportError:
            return "asyncio"
        uvloop.install()
        return "uvloop"
    return "asyncio"


def have_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


# --- figures -------------------------------------------------------------------------------
def cpu_split() -> tuple[set[int], set[int]] | None:
    """(one CPU for the process measured, the others for its peers) when this process may
    use at least two; None otherwise. A CPU-bound worker pinned away from the servers it
    talks to is not slowed by where the scheduler happens to put them, which on a small
    machine is most of the noise between two runs."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    return {cpus[0]}, set(cpus[1:])


def pin_tree(pid: int, cpus: set[int]) -> None:
    """Pin a process and its current children to `cpus` (children forked later, such as
    PostgreSQL's backends, inherit it from their parent)."""
    pids = {pid}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as handle:
                parent = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if parent == pid:
            pids.add(int(entry))
    for each in pids:
        with contextlib.suppress(OSError):  # gone meanwhile
            os.sched_setaffinity(each, cpus)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def spread(values: Sequence[float]) -> str:
    """``min..max`` of a set of runs, for the tables."""
    return f"{min(values):,.0f}..{max(values):,.0f}" if values else "-"


def ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def verdict(value: float, target: float, *, at_most: bool = False) -> str:
    met = value <= target if at_most else value >= target
    return "met" if met else "NOT met"


def save(name: str, data: dict[str, Any]) -> Path:
    """Store one benchmark's figures (bench/results/NAME.json) with the machine description."""
    RESULTS_DIR.mkdir(exist_ok=True)
    data = {"benchmark": name, "when": time.strftime("%Y-%m-%d %H:%M:%S"), **data}
    data["machine"] = machine()
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


def load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    if not path.exists():
        return None
    result: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return result


def _first_line(args: Sequence[str]) -> str:
    try:
        out = subprocess.run(list(args), capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else ""


def machine() -> dict[str, str]:
    """nproc, memory, CPU model, load, versions of Python, Postfix, aiosmtplib, uvloop."""
    info = {"nproc": str(os.cpu_count() or 0), "python": platform.python_version()}
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            kb = int(handle.readline().split()[1])
        info["memory"] = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, ValueError, IndexError):
        info["memory"] = "?"
    info["cpu"] = "?"
    try:
        with open("/proc/cpuinfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    info["load"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    info["postfix"] = _first_line(["postconf", "-d", "-h", "mail_version"]) or "not installed"
    for module in ("aiosmtplib", "uvloop"):
        try:
            info[module] = __import__(module).__version__
        except (ImportError, AttributeError):
            info[module] = "not installed"
    info["kernel"] = platform.release()
    return info


@contextmanager
def section(title: str) -> Iterator[None]:
    print(f"-- {title}", flush=True)
    start = time.perf_counter()
    yield
    print(f"   ({time.perf_counter() - start:.1f} s)", flush=True)

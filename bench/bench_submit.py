"""Submission latency: one small message through `sendmail -t`, from start to exit.

Run as ``python -m bench.bench_submit [--runs N]``. Issue 22 part 3: ``mailcarrier sendmail``
of one small message must take at most 60 ms of wall time (median), from the moment the
process is started until it exits with the message durable in the queue (written, fsynced,
renamed, directory fsynced: queue/writers.py), reported beside Postfix's ``sendmail`` for the
same message. Every round runs each side once, in turn (interleaved), with the same message
on standard input:

- ``python -c pass``: the floor, an interpreter that starts and stops (the venv's Python,
  site.py and the editable install's path hook included, as for the console script);
- ``mailcarrier -c DIR sendmail -t``: the console script as pip installs it (the lean
  submission path, src/mailcarrier/lean/, takes this one);
- ``python -m mailcarrier -c DIR sendmail -t``;
- ``mailcarrier -c DIR2 sendmail -t``, "general path": DIR2's main.cf sets one parameter
  more (``smtp_tls_security_level``, which a submission does not read and other defaults
  depend on), so the lean path hands the command to cli.py: what a submission costs with a
  main.cf the lean path does not take;
- Postfix's ``sendmail -C DIR -t``: its sendmail hands the message to postdrop, which writes
  it into the maildrop queue of a private Postfix instance (bench/postfix_instance.py; a
  header_checks rule holds it, so nothing is delivered while the clock runs on the others).
  Needs root and the postfix package; skipped, with the reason, otherwise.

Each figure is the median of N runs (at least 20), wall clock and the child's CPU time (user
+ system, from getrusage: steadier on a shared machine); the load average is recorded before
and after. The mailcarrier side runs with compiled modules as an installed package has them
(``make bench`` byte-compiles src first; this module does too, since PYTHONDONTWRITEBYTECODE
may be set). Figures go to bench/results/submit.json for bench/report.py. The target is
reported, not asserted.
"""

from __future__ import annotations

import argparse
import compileall
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from bench import common
from bench.common import median
from bench.postfix_instance import PostfixInstance, postfix_available

TARGET_MS: Final = 60.0
RUNS: Final = 25
TIMEOUT: Final = 30.0
PYTHON: Final = sys.executable
MAILCARRIER: Final = str(Path(sys.executable).with_name("mailcarrier"))
POSTFIX_SENDMAIL: Final = "/usr/sbin/sendmail"
MESSAGE: Final = (
    b"From: bench@example.org\n"
    b"To: sink@example.net\n"
    b"Subject: submission latency\n"
    b"\n"
    b"One small message, submitted with sendmail -t.\n"
)


def _timed(args: Sequence[str], message: bytes) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) of one run; raises when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        list(args), input=message, capture_output=True, timeout=TIMEOUT, check=False
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        error = done.stderr.decode(errors="replace").strip()[-400:]
        raise RuntimeError(f"{' '.join(args)}: exit {done.returncode}: {error}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def _queued(directory: Path) -> int:
    return sum(len(files) for _, _, files in os.walk(directory))


def _compile_sources() -> None:
    """Byte-compile mailcarrier as an installed package has it (see the opening)."""
    import mailcarrier

    compileall.compile_dir(str(Path(mailcarrier.__file__).parent), quiet=1)


def _sides(config: Path, postfix_config: Path | None) -> dict[str, list[str]]:
    general = config.with_name("mailcarrier-general")
    sides = {
        "python -c pass": [PYTHON, "-c", "pass"],
        "mailcarrier sendmail": [MAILCARRIER, "-c", str(config), "sendmail", "-t"],
        "mailcarrier sendmail, general path": [
            MAILCARRIER,
            "-c",
            str(general),
            "sendmail",
            "-t",
        ],
        "python -m mailcarrier sendmail": [
            PYTHON,
            "-m",
            "mailcarrier",
            "-c",
            str(config),
            "sendmail",
            "-t",
        ],
    }
    if postfix_config is not None:
        sides["Postfix sendmail"] = [POSTFIX_SENDMAIL, "-C", str(postfix_config), "-t"]
    return sides


def _measure(sides: dict[str, list[str]], runs: int) -> dict[str, dict[str, Any]]:
    walls: dict[str, list[float]] = {name: [] for name in sides}
    cpus: dict[str, list[float]] = {name: [] for name in sides}
    for args in sides.values():  # one warm-up each: the page cache, not the figures
        _timed(args, MESSAGE)
    for _ in range(runs):
        for name, args in sides.items():
            wall, cpu = _timed(args, MESSAGE)
            walls[name].append(wall * 1000)
            cpus[name].append(cpu * 1000)
    return {
        name: {
            "wall_ms": median(walls[name]),
            "cpu_ms": median(cpus[name]),
            "wall_runs": [round(v, 2) for v in walls[name]],
            "cpu_runs": [round(v, 2) for v in cpus[name]],
            "command": " ".join([Path(args[0]).name, *args[1:]]),
        }
        for name, args in sides.items()
    }


def _loads() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def run(runs: int) -> dict[str, Any]:
    if not Path(MAILCARRIER).exists():
        raise common.Skip(f"{MAILCARRIER} not installed")
    _compile_sources()
    root = Path(tempfile.mkdtemp(prefix="bench-submit-"))
    root.chmod(0o755)  # Postfix's daemons (user postfix) must reach their queue
    try:
        config = root / "mailcarrier"
        config.mkdir()
        queue = root / "mailcarrier-queue"
        (config / "main.cf").write_text(f"queue_directory = {queue}\n", encoding="utf-8")
        general = root / "mailcarrier-general"  # see the opening: the general path
        general.mkdir()
        (general / "main.cf").write_text(
            f"queue_directory = {queue}\nsmtp_tls_security_level = may\n", encoding="utf-8"
        )
        why_not = postfix_available()
        load_before = _loads()
        if why_not:
            figures = _measure(_sides(config, None), runs)
            postfix_note = why_not
        else:
            with PostfixInstance(root / "postfix", common.free_port()) as instance:
                figures = _measure(_sides(config, instance.config), runs)
                time.sleep(0.5)  # pickup takes the last ones from maildrop
                postfix_queued = _queued(instance.queue / "hold") + _queued(
                    instance.queue / "maildrop"
                )
            postfix_note = f"{postfix_queued} messages queued (held)"
        mailcarrier_queued = _queued(queue / "incoming")
    finally:
        shutil.rmtree(root, ignore_errors=True)
    for f in figures.values():
        f["command"] = f["command"].replace(str(root), "DIR")
    expected = 3 * (runs + 1)
    if mailcarrier_queued != expected:
        raise RuntimeError(f"mailcarrier queued {mailcarrier_queued} messages, not {expected}")
    ours = figures["mailcarrier sendmail"]["wall_ms"]
    data: dict[str, Any] = {
        "runs": runs,
        "message_bytes": len(MESSAGE),
        "target_ms": TARGET_MS,
        "figures": figures,
        "postfix": postfix_note,
        "load_before": load_before,
        "load_after": _loads(),
        "verdict": common.verdict(ours, TARGET_MS, at_most=True),
    }
    floor = figures["python -c pass"]["wall_ms"]
    data["above_floor_ms"] = ours - floor
    if "Postfix sendmail" in figures:
        data["postfix_ratio"] = common.ratio(ours, figures["Postfix sendmail"]["wall_ms"])
    return data


def show(data: dict[str, Any]) -> None:
    print(f"{'side':34} {'wall ms':>9} {'CPU ms':>8}  runs (wall ms)")
    for name, f in data["figures"].items():
        runs = ", ".join(f"{v:.0f}" for v in f["wall_runs"][:8])
        print(f"{name:34} {f['wall_ms']:9.1f} {f['cpu_ms']:8.1f}  {runs}, ...")
    ours = data["figures"]["mailcarrier sendmail"]["wall_ms"]
    print(
        f"mailcarrier sendmail: {ours:.1f} ms median (target <= {data['target_ms']:.0f} ms: "
        f"{data['verdict']}); load {data['load_before']} -> {data['load_after']}"
    )
    if "postfix_ratio" in data:
        print(f"mailcarrier / Postfix sendmail: {data['postfix_ratio']:.2f}x the wall time")
    else:
        print(f"Postfix sendmail: not measured ({data['postfix']})")


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--runs", type=int, default=RUNS, help="runs of each side (>= 20)")
    args = parser.parse_args(argv)
    try:
        data = run(max(args.runs, 1))
    except common.Skip as exc:
        print(f"skipped: {exc}")
        return
    show(data)
    print(f"wrote {common.save('submit', data)}")


if __name__ == "__main__":
    main()

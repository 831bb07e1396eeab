"""Python bytecodes per message of the engine workload, in several source trees side by side.

``python -m bench.tree_bytecodes [--messages N] [--top K] TREE [TREE ...]`` runs each TREE's
own bench/workload.py `deliver_many` (20 sessions of 4 KB messages over one agent and its
connection cache, uvloop, the engine benchmark's workload) against one smtp-sink, in a fresh
process per tree with that tree's src/ first on the path, and counts the bytecodes run per
function (sys.settrace with opcode events: bench/native_harness.py's counter). Each tree is
counted over N and over 2N messages after a warm-up, so that what a run costs once (settings,
agent, the 20 sessions' set-up, the closing QUITs) cancels out: the figures are per message,
at the margin. It prints the total per tree and, for each tree after the first, the functions
whose count changed most since the previous one.

The tool for bisecting a CPU regression on a shared machine (bench/PROFILE.md, issue 22 part
2): the counts are exact and the same on a busy machine, where CPU times move by 2x. TREE is
any checkout, e.g. a ``git worktree add /tmp/old COMMIT``; trees as old as the in-memory
harness's (bench/harness.py) work alike, since only `deliver_many` and `write_message` of
bench/workload.py are used. Measurements, never assertions; nothing is stored.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

CONCURRENCY = 20
SIZE = 4096
WARMUP = 400


def _where(code: types.CodeType) -> str:
    """A function named the same in every tree: its file below src/, else its directory
    and base name (bench/workload.py, python3.11/dataclasses.py)."""
    path = code.co_filename
    below = path.rpartition("/src/")[2] if "/src/" in path else "/".join(path.split("/")[-2:])
    return f"{below} {code.co_name}"


def _count(port: int, messages: int) -> dict[str, float]:
    """In the child: bytecodes by function over `messages`, after the warm-up."""
    import asyncio
    import tempfile

    from bench.common import install_loop
    from bench.workload import deliver_many, write_message

    install_loop("uvloop")
    counts: collections.Counter[types.CodeType] = collections.Counter()

    def trace(frame: types.FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        if event == "opcode":
            counts[frame.f_code] += 1
        return trace

    with tempfile.TemporaryDirectory() as tmp:
        content = write_message(Path(tmp), SIZE)

        def run(count: int) -> None:
            done = asyncio.run(deliver_many(port, content, messages=count, concurrency=CONCURRENCY))
            if done.sent != count:
                raise SystemExit(f"{done.sent} of {count} messages sent")

        run(WARMUP)
        sys.settrace(trace)
        run(messages)
        sys.settrace(None)
    out: dict[str, float] = collections.defaultdict(float)
    for code, n in counts.items():
        out[_where(code)] += n
    return out


def _child(tree: Path, port: int, messages: int) -> dict[str, float]:
    """Per-message counts at the margin, from runs of N and 2N messages in `tree`."""
    env = dict(os.environ, PYTHONPATH=f"{tree / 'src'}:{tree}")
    runs = []
    for count in (messages, 2 * messages):
        done = subprocess.run(
            [sys.executable, __file__, "--child", str(port), str(count)],
            cwd=tree,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode:
            raise SystemExit(f"{tree}: {done.stderr.strip().splitlines()[-1:]}")
        runs.append(json.loads(done.stdout))
    small, large = runs
    return {k: (large.get(k, 0) - small.get(k, 0)) / messages for k in {*small, *large}}


def report(trees: list[Path], counted: list[dict[str, float]], top: int) -> None:
    base = sum(counted[0].values())
    for tree, counts in zip(trees, counted, strict=True):
        total = sum(counts.values())
        print(f"{total:9,.0f} bytecodes per message ({total / base:.3f}x)  {tree}")
    for n in range(1, len(trees)):
        before, after = counted[n - 1], counted[n]
        changed = sorted(
            ((after.get(k, 0) - before.get(k, 0), k) for k in {*before, *after}),
            key=lambda item: -abs(item[0]),
        )
        print(f"\n{trees[n - 1].name} -> {trees[n].name}:")
        for more, where in changed[:top]:
            if abs(more) >= 1:
                was, now = before.get(where, 0), after.get(where, 0)
                print(f"  {more:+8.1f}  {was:7.1f} -> {now:7.1f}  {where}")


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["--child"]:  # a tree's process: its own bench/ and src/ come first
        sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).parent]
        json.dump(_count(int(args[1]), int(args[2])), sys.stdout)
        return
    from bench.common import Sink, Skip

    parser = argparse.ArgumentParser(prog="python -m bench.tree_bytecodes", description=__doc__)
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("trees", nargs="+", type=Path)
    options = parser.parse_args(args)
    trees = [tree.resolve() for tree in options.trees]
    try:
        with Sink() as sink:
            counted = [_child(tree, sink.port, options.messages) for tree in trees]
    except Skip as exc:
        print(f"skipped: {exc}")
        return
    report(trees, counted, options.top)


if __name__ == "__main__":
    main()

"""Golden tests for main.cf parsing, expansion and `conf` output: tests/golden/config/*.in.

Each ``.in`` file is a main.cf. Its ``#! conf: ARGS`` comment lines (plain comments to the
parser) list the ``mailcarrier conf`` invocations to run (default: ``-n`` and ``-nx``); the
``.ref`` file holds, for each, the exit status, stdout and stderr, with the temporary path
shown as ``{dir}``, and the values of the parameters a ``#! mask: NAME...`` line lists (host name,
per-user directories, process id: machine-dependent) shown as ``<computed>``. Regenerate
with MAILCARRIER_REGEN_GOLDEN=1.
"""

from __future__ import annotations

import io
import re
import shlex
import shutil
from pathlib import Path

import pytest

from mailcarrier.config.postconf import conf_main
from tests.support.golden import cases, check_golden

CASES = cases("config")


def _mask(text: str, directory: Path, names: list[str]) -> str:
    text = text.replace(str(directory), "{dir}")
    if not names:
        return text
    computed = re.compile(
        rf"^(\s*\"?(?:{'|'.join(names)})(?: = |\": \"))[^\n]*?(\",?)?$", re.MULTILINE
    )
    return computed.sub(lambda m: f"{m.group(1)}<computed>{m.group(2) or ''}", text)


def run_case(case: Path, tmp_path: Path) -> str:
    shutil.copy(case, tmp_path / "main.cf")
    invocations = [
        shlex.split(line.split(":", 1)[1])
        for line in case.read_text().splitlines()
        if line.startswith("#! conf:")
    ] or [["-n"], ["-nx"]]
    masked = [
        name
        for line in case.read_text().splitlines()
        if line.startswith("#! mask:")
        for name in line.split(":", 1)[1].split()
    ]
    out: list[str] = []
    for argv in invocations:
        stdout, stderr = io.StringIO(), io.StringIO()
        code = conf_main(argv, tmp_path, {}, stdout, stderr)
        out.append(f"$ conf {shlex.join(argv)}  => exit {code}")
        out.append(_mask(stdout.getvalue(), tmp_path, masked).rstrip("\n"))
        if stderr.getvalue():
            out.append("stderr:")
            out.append(_mask(stderr.getvalue(), tmp_path, masked).rstrip("\n"))
    return "\n".join(line for line in out if line) + "\n"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden_config(case: Path, tmp_path: Path) -> None:
    check_golden(case.with_suffix(".ref"), run_case(case, tmp_path))

"""The agent's start (postfix/main.py) as master(8) would run it, in a subprocess: a table
main.cf names that cannot be opened stops it with one fatal line naming the parameter (as
smtp(8) does), never a table read as empty. With -V the lines go to stderr, as Postfix
daemons' do. (The command is ``python -c``: its argv[0] names no personality, so ``-n``
does.)
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest


def _start(tmp_path: Path, main_cf: str, *args: str) -> subprocess.CompletedProcess[str]:
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "main.cf").write_text(main_cf)
    env = {"MAIL_CONFIG": str(conf), "GENERATION": "1", "LANG": "C"}
    code = "import sys; from mailcarrier.postfix.main import main; sys.exit(main())"
    return subprocess.run(
        [sys.executable, "-c", code, "-t", "unix", "-V", *args],
        env={**env, "PYTHONPATH": os.pathsep.join(sys.path)},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_a_table_that_cannot_be_opened_stops_the_agent(tmp_path: Path) -> None:
    missing = tmp_path / "generic"
    done = _start(tmp_path, f"smtp_generic_maps = hash:{missing}\n", "-n", "smtp")
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert "fatal: smtp_generic_maps: open database" in line and str(missing) in line


@pytest.mark.parametrize("personality", ["smtp", "lmtp"])
def test_personality_from_the_program_name(tmp_path: Path, personality: str) -> None:
    done = _start(tmp_path, "smtp_generic_maps = hash:/nonexistent/x\n", "-n", personality)
    assert done.returncode == 1
    assert f"postfix/{personality}[" in done.stderr.splitlines()[0]

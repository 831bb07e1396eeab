"""entry.py: the console scripts and ``python -m mailcarrier`` submit an ordinary message on
the lean path (lean/), loading none of argparse, logging, email, dataclasses, enum, re or
typing, nor any of mailcarrier but lean/; everything else runs cli.py as before. Each check
runs a fresh interpreter and looks at sys.modules, not at the clock."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

# What the lean path must not load (the general path's start-up: bench/PROFILE.md).
HEAVY = (
    "argparse",
    "logging",
    "email",
    "dataclasses",
    "enum",
    "re",
    "typing",
    "socket",
    "pathlib",
    "contextlib",
    "collections",
    "json",
    "datetime",
    "getpass",
    "signal",
)
OURS = {
    "mailcarrier",
    "mailcarrier.lazy",
    "mailcarrier.entry",
    "mailcarrier.lean",
    "mailcarrier.lean.body",
    "mailcarrier.lean.mainconf",
    "mailcarrier.lean.message",
    "mailcarrier.lean.options",
    "mailcarrier.lean.spool",
    "mailcarrier.lean.submit",
    "mailcarrier.lean.unique",
}


def _entry(function: str, argv: list[str], stdin: bytes) -> tuple[int, set[str], str]:
    """(exit code, modules loaded, standard error) of entry.`function` in a new process."""
    code = (
        "import sys\n"
        f"sys.argv = ['mailcarrier', *{argv!r}]\n"
        f"from mailcarrier.entry import {function} as main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit as exc:\n"
        "    status = exc.code\n"
        "sys.stdout.write('\\0' + repr([status, sorted(sys.modules)]))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], input=stdin, capture_output=True, check=False, timeout=60
    )
    status, modules = ast.literal_eval(done.stdout.decode().rpartition("\0")[2])
    return status, set(modules), done.stderr.decode()


@pytest.fixture
def config(tmp_path: Path) -> Path:
    (tmp_path / "main.cf").write_text(f"queue_directory = {tmp_path / 'queue'}\n")
    return tmp_path


def _queued(config: Path) -> list[Path]:
    return sorted((config / "queue" / "incoming").iterdir())


@pytest.mark.parametrize(
    ("function", "argv"),
    [
        ("main", ["sendmail", "-t"]),
        ("sendmail_main", ["-t"]),
    ],
)
def test_a_submission_loads_only_the_lean_path(
    config: Path, function: str, argv: list[str]
) -> None:
    message = b"From: a@example.org\nTo: r@example.net\nSubject: x\n\nbody\n"
    flag = "-c" if function == "main" else "-C"
    argv = [flag, str(config), *argv]
    status, modules, err = _entry(function, argv, message)
    assert (status, err) == (0, "")
    assert {m for m in modules if m.startswith("mailcarrier")} == OURS
    assert {m.split(".")[0] for m in modules} & set(HEAVY) == set()
    assert len(_queued(config)) == 1


def test_what_the_lean_path_leaves_runs_the_command_line(config: Path) -> None:
    # UTF-8 in the header: the general path queues it, from the whole message.
    message = b"To: r@example.net\nSubject: caf\xc3\xa9\n\nbody\n"
    status, modules, err = _entry("main", ["-c", str(config), "sendmail", "-t"], message)
    assert (status, err) == (0, "")
    assert "mailcarrier.cli" in modules and "argparse" in modules
    [path] = _queued(config)
    assert path.read_bytes().endswith(b"Subject: caf\xc3\xa9\n\nbody\n")


def test_errors_are_the_command_line_s(config: Path) -> None:
    status, _, err = _entry("main", ["-c", str(config), "sendmail"], b"")
    assert status == 64
    assert err == (
        "mailcarrier: fatal: Recipient addresses must be specified on the command line or "
        "via the -t option\n"
    )
    status, _, err = _entry("sendmail_main", ["-C", str(config), "bad address"], b"x\n")
    assert (status, err) == (
        65,
        "mailcarrier: fatal: bad recipient address syntax: <bad address>\n",
    )


def test_other_commands_run_as_before(config: Path) -> None:
    status, _, err = _entry("main", ["-c", str(config), "mailq"], b"")
    assert (status, err) == (0, "")
    status, modules, err = _entry("mailq_main", ["--help"], b"")
    assert (status, err) == (0, "")
    assert "mailcarrier.cli" in modules


def test_python_m_mailcarrier_is_the_entry(config: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mailcarrier", "-c", str(config), "sendmail", "r@example.net"],
        input=b"Subject: x\n\nbody\n",
        capture_output=True,
        check=False,
        timeout=60,
    )
    assert (done.returncode, done.stderr) == (0, b"")
    assert len(_queued(config)) == 1

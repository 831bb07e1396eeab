"""Helpers for the tests of indexed table files (tests/tables/): which formats this machine
can read and write, and Postfix's own postmap(1) run with a private configuration.

`need_library(kind)` skips a test when the Python package of the ``kind`` format is not
installed (`make extras`). `Postmap(directory)` writes a minimal main.cf into `directory`
and runs ``postmap -c directory``; `Postmap.need(kind)` skips when postmap is not installed
or does not know ``kind`` (Debian packages postfix, postfix-lmdb and postfix-cdb: `make
peers`, as root). `Postmap.build` returns postmap's warnings; `Postmap.query` returns
(exit status, standard output, warnings), `query_stdin` ``postmap -q -``'s (status, output),
`sequence` ``postmap -s``'s output. `damage_in_a_child(kind, directory, seeds)` damages a
table file at random in a child process and checks that reading it never kills the process.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Final

import pytest

from mailcarrier.tables import build_index
from mailcarrier.tables.formats import FORMATS
from mailcarrier.tables.indexed import available

POSTMAP: Final = shutil.which("postmap") or "/usr/sbin/postmap"
POSTCONF: Final = shutil.which("postconf") or "/usr/sbin/postconf"
KINDS: Final = ("hash", "btree", "lmdb", "cdb")


def need_library(kind: str) -> None:
    package = FORMATS[kind].package
    if not available(package):
        pytest.skip(f"{kind}: tables need the Python package {package.module} (make extras)")


def _warnings(stderr: str) -> list[str]:
    return [line.removeprefix("postmap: warning: ") for line in stderr.splitlines()]


class Postmap:
    def __init__(self, directory: Path) -> None:
        self.config = directory
        self.config.mkdir(parents=True, exist_ok=True)
        # compatibility_level >= 1: smtputf8_enable = yes, as on any installed Postfix.
        (self.config / "main.cf").write_text("compatibility_level = 3.6\n")

    def need(self, kind: str) -> None:
        if not Path(POSTMAP).exists():
            pytest.skip("postmap not installed (Debian package postfix: make peers)")
        known = self._run(POSTCONF, "-m").stdout.split()
        if kind not in known:
            pytest.skip(f"postmap cannot make {kind}: tables (Debian package postfix-{kind})")

    def _run(self, *args: str, stdin: bytes = b"") -> subprocess.CompletedProcess[str]:
        command = [args[0], "-c", str(self.config), *args[1:]]
        done = subprocess.run(command, input=stdin, capture_output=True, timeout=60, check=False)
        return subprocess.CompletedProcess(
            command,
            done.returncode,
            done.stdout.decode("utf-8", "surrogateescape"),
            done.stderr.decode("utf-8", "surrogateescape"),
        )

    def build(self, spec: str, *options: str) -> list[str]:
        done = self._run(POSTMAP, *options, spec)
        assert done.returncode == 0, done.stderr
        return _warnings(done.stderr)

    def query(
        self, key: str, *specs: str, options: tuple[str, ...] = ()
    ) -> tuple[int, str, list[str]]:
        done = self._run(POSTMAP, *options, "-q", key, *specs)
        return done.returncode, done.stdout, _warnings(done.stderr)

    def sequence(self, spec: str) -> str:
        done = self._run(POSTMAP, "-s", spec)
        assert done.returncode == 0, done.stderr
        return done.stdout

    def query_stdin(self, keys: bytes, *specs: str) -> tuple[int, str]:
        done = self._run(POSTMAP, "-q", "-", *specs, stdin=keys)
        return done.returncode, done.stdout


# Run in a child: for each seed, change 1 to 50 random bytes of a good file, open it and look
# up every key; print "SEED read FOUND" or "SEED refused NEWLINES-IN-THE-MESSAGE".
_DAMAGE = """
import random, sys
from pathlib import Path
from mailcarrier.tables import TableError, open_table
spec, index = sys.argv[1], Path(sys.argv[2])
good = index.read_bytes()
for seed in map(int, sys.argv[3:]):
    rng = random.Random(seed)
    data = bytearray(good)
    for _ in range(rng.randint(1, 50)):
        data[rng.randrange(len(data))] = rng.randrange(256)
    index.write_bytes(bytes(data))
    try:
        table = open_table(spec)
        found = sum(table.lookup(f"key{i}") is not None for i in range(2000))
        print(seed, "read", found)
    except TableError as exc:
        print(seed, "refused", str(exc).count(chr(10)))
"""


def damage_in_a_child(kind: str, directory: Path, seeds: Iterable[int]) -> set[int]:
    """Damage a 2,000-key `kind` file once per seed, in a child process (a crash there is
    a failed assertion here, not a dead test run); the seeds whose file was refused."""
    source = directory / "damaged"
    source.write_text("".join(f"key{i} value{i} {'x' * (i % 50)}\n" for i in range(2000)))
    build_index(source, kind)
    index = FORMATS[kind].index(source)
    wanted = [str(seed) for seed in seeds]
    done = subprocess.run(
        [sys.executable, "-c", _DAMAGE, f"{kind}:{source}", str(index), *wanted],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, f"exit {done.returncode}: {done.stderr[-2000:]}"
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [line[0] for line in lines] == wanted
    assert all(line[1] == "read" or line[2] == "0" for line in lines)  # one-line errors
    return {int(line[0]) for line in lines if line[1] == "refused"}

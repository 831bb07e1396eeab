"""Helpers for the tests of indexed table files (tests/tables/): which formats this machine
can read and write, and Postfix's own postmap(1) run with a private configuration.

`need_library(kind)` skips a test when the Python package of the ``kind`` format is not
installed (`make extras`). `Postmap(directory)` writes a minimal main.cf into `directory`
and runs ``postmap -c directory``; `Postmap.need(kind)` skips when postmap is not installed
or does not know ``kind`` (Debian packages postfix, postfix-lmdb and postfix-cdb: `make
peers`, as root). `Postmap.build` returns postmap's warnings; `Postmap.query` returns
(exit status, standard output, warnings), `query_stdin` ``postmap -q -``'s (status, output),
`sequence` ``postmap -s``'s output.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Final

import pytest

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

"""Postfix's ``postmap -q`` beside ``mailcarrier map -q``, for the tables that ask a server.

`has_map_type(kind)` says whether this machine's postmap has `kind` tables (``postconf -m``:
ldap with Debian's postfix-ldap; memcache, socketmap and tcp are built in). `postmap(dir,
spec, keys)` runs ``postmap -c dir -q - spec`` with the keys on standard input; `ours(spec,
keys)` runs ``mailcarrier map -q - spec`` the same way (in this process); `same_answers`
checks both printed the same lines and exited alike, and gives their warnings (without the
program name) for the caller to compare.
"""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mailcarrier.tables.command import map_main


@functools.cache
def map_types() -> frozenset[str]:
    if shutil.which("postmap") is None or shutil.which("postconf") is None:
        return frozenset()
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "main.cf").write_text("compatibility_level = 3.7\n")
        done = subprocess.run(
            ["postconf", "-c", tmp, "-m"], capture_output=True, text=True, check=False
        )
    return frozenset(done.stdout.split())


def has_map_type(kind: str) -> bool:
    return kind in map_types()


@dataclass(frozen=True)
class Answers:
    status: int
    stdout: str
    warnings: list[str]  # stderr lines without "postmap: " / "mailcarrier: "


def _warnings(stderr: str) -> list[str]:
    return [line.split(": ", 1)[1] for line in stderr.splitlines() if ": " in line]


def postmap(config_dir: Path, spec: str, keys: list[str]) -> Answers:
    """Postfix's ``postmap -q - spec`` with `keys` on standard input."""
    main_cf = config_dir / "main.cf"
    if not main_cf.exists():
        main_cf.write_text("compatibility_level = 3.7\n")
    done = subprocess.run(
        ["postmap", "-c", str(config_dir), "-q", "-", spec],
        input="".join(k + "\n" for k in keys),
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return Answers(done.returncode, done.stdout, _warnings(done.stderr))


def ours(spec: str, keys: list[str]) -> Answers:
    """``mailcarrier map -q - spec`` with `keys` on standard input."""
    out, err = io.StringIO(), io.StringIO()
    stdin = io.StringIO("".join(k + "\n" for k in keys))
    status = map_main(["-q", "-", spec], out, err, stdin)
    return Answers(status, out.getvalue(), _warnings(err.getvalue()))


def same_answers(config_dir: Path, spec: str, keys: list[str]) -> tuple[Answers, Answers]:
    """Both answers, after checking they printed the same and exited alike."""
    theirs = postmap(config_dir, spec, keys)
    mine = ours(spec, keys)
    assert theirs.status in (0, 1), theirs
    assert mine.stdout == theirs.stdout, (mine, theirs)
    assert mine.status == theirs.status, (mine, theirs)
    return theirs, mine

"""Asking a Postfix instance through its own postconf(1): `run_postconf(config_dir, *args)`.

Found on PATH, else in /usr/sbin or /usr/local/sbin; ``-c config_dir`` names the instance
("" for Postfix's default). A missing postconf, one that cannot run, times out or fails is
a `PostconfError` with one line. Used by install.py (``mailcarrier postfix install`` and
``check``) and sendmail.py (what ``tlsrpt send --postfix`` needs of main.cf).
`run_program(command)` runs another of Postfix's programs (sendmail, postqueue) the same way:
its standard output, or a `MailcarrierError` with its last line of complaint.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from typing import Final

from mailcarrier.errors import MailcarrierError
from mailcarrier.printable import printable

__all__ = ["PostconfError", "run_postconf", "run_program"]

_POSTCONF_PATHS: Final = ("/usr/sbin/postconf", "/usr/local/sbin/postconf")


class PostconfError(MailcarrierError):
    """postconf could not be run or failed: one line."""


def run_postconf(config_dir: str, *args: str) -> str:
    """postconf's output, stripped."""
    binary = shutil.which("postconf") or next(
        (p for p in _POSTCONF_PATHS if os.access(p, os.X_OK)), None
    )
    if binary is None:
        raise PostconfError("postconf not found: is Postfix installed?")
    command = [binary, *(("-c", config_dir) if config_dir else ()), *args]
    try:
        done = subprocess.run(command, check=False, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PostconfError(f"{' '.join(command)}: {exc}") from exc
    if done.returncode != 0:
        why = (done.stderr.strip().splitlines() or ["failed"])[-1]
        raise PostconfError(f"{' '.join(command)}: {why}")
    return done.stdout.strip()


def run_program(
    command: Sequence[str],
    *,
    timeout: float,
    data: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> bytes:
    """The standard output of `command` (its standard input `data`); `MailcarrierError`
    naming the program when it cannot run, times out or exits non-zero (its last line on
    standard error, made printable, else the exit status)."""
    program = command[0]
    try:
        done = subprocess.run(
            list(command), input=data, capture_output=True, env=env, timeout=timeout, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise MailcarrierError(f"{program}: {exc}") from exc
    if done.returncode != 0:
        lines = done.stderr.decode("utf-8", "replace").strip().splitlines()
        why = printable(lines[-1]) if lines else f"exit status {done.returncode}"
        raise MailcarrierError(f"{program}: {why}")
    return done.stdout

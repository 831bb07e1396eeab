"""Asking a Postfix instance through its own postconf(1): `run_postconf(config_dir, *args)`.

Found on PATH, else in /usr/sbin or /usr/local/sbin; ``-c config_dir`` names the instance
("" for Postfix's default). A missing postconf, one that cannot run, times out or fails is
a `PostconfError` with one line. Used by install.py (``mailcarrier postfix install`` and
``check``) and sendmail.py (what ``tlsrpt send --postfix`` needs of main.cf).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from typing import Final

from mailcarrier.errors import MailcarrierError

__all__ = ["PostconfError", "run_postconf"]

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

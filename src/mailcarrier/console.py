"""The standard streams of the command line, made safe for the failures of the local system.

`Output` wraps standard output: when it is a pipe whose reader has gone (``mailcarrier conf
-d | head -1``) a write raises `StdoutClosed`, told apart from any other broken pipe (a
``pipemap:`` table's command, a server), and `discard_output()` then points the descriptor
at /dev/null so that nothing fails again when the interpreter exits; cli.py ends the
command quietly. `LogFile` wraps maillog_file: a write that fails (a full disk) drops the
lines with one warning instead of stopping the program. Used by cli.py only.
"""

from __future__ import annotations

import contextlib
import io
import os
from typing import TextIO

__all__ = ["LogFile", "Output", "StdoutClosed", "discard_output"]

PROG = "mailcarrier"


class StdoutClosed(Exception):
    """Standard output is a pipe whose reader has gone."""


class Output(io.TextIOBase):
    """Standard output for a command: a closed pipe becomes `StdoutClosed`, told apart
    from any other broken pipe (a pipemap: table's command, a server)."""

    def __init__(self, inner: TextIO) -> None:
        super().__init__()
        self._inner = inner

    def write(self, text: str) -> int:
        try:
            return self._inner.write(text)
        except BrokenPipeError as exc:
            raise StdoutClosed from exc

    def flush(self) -> None:
        try:
            self._inner.flush()
        except BrokenPipeError as exc:
            raise StdoutClosed from exc

    def isatty(self) -> bool:
        return self._inner.isatty()


def discard_output(stdout: TextIO) -> None:
    """After `StdoutClosed`: point the descriptor at /dev/null, so that what is still
    buffered does not fail again (with a traceback) when the interpreter exits."""
    try:
        fd = stdout.fileno()
    except (OSError, ValueError, io.UnsupportedOperation):
        return
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, fd)
    finally:
        os.close(null)


class LogFile(io.TextIOBase):
    """maillog_file as the log writes it: a write that fails (a full disk) never stops the
    program; the lines are dropped, with one warning on `errors` until writing works again."""

    def __init__(self, inner: TextIO, path: str, errors: TextIO) -> None:
        super().__init__()
        self._inner = inner
        self._path = path
        self._errors = errors
        self._failing = False

    def write(self, text: str) -> int:
        try:
            return self._inner.write(text)
        except OSError as exc:
            self._failed(exc)
            return len(text)

    def flush(self) -> None:
        if self._inner.closed:
            return
        try:
            self._inner.flush()
        except OSError as exc:
            self._failed(exc)
        else:
            self._failing = False

    def close(self) -> None:
        """Close the file (the last lines may be lost to a full disk, quietly)."""
        try:
            self._inner.close()
        except OSError as exc:
            self._failed(exc)
        super().close()

    def _failed(self, exc: OSError) -> None:
        if not self._failing:
            self._failing = True
            reason = exc.strerror or exc
            with contextlib.suppress(OSError):
                self._errors.write(f"{PROG}: warning: cannot write {self._path}: {reason}\n")
                self._errors.flush()

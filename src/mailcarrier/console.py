"""The standard streams of the command line, made safe for the failures of the local system.

`Output` wraps standard output: when it is a pipe whose reader has gone (``mailcarrier conf
-d | head -1``) a write raises `StdoutClosed`, told apart from any other broken pipe (a
``pipemap:`` table's command, a server), and `discard_output()` then points the descriptor
at /dev/null so that nothing fails again when the interpreter exits; cli.py ends the
command quietly. (maillog_file on a full disk: loghandlers.py.) Used by cli.py only.
"""

from __future__ import annotations

import io
import os
from typing import BinaryIO, TextIO, cast

__all__ = ["Output", "StdoutClosed", "discard_output"]


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

    def binary(self) -> BinaryIO | None:
        """The byte stream under standard output (``sendmail -bs`` writes SMTP replies),
        after what was written as text; None when there is none (a StringIO)."""
        self._inner.flush()
        return cast("BinaryIO | None", getattr(self._inner, "buffer", None))


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

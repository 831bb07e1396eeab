"""The lean path's log lines: sendmail's two lines in maillog_file, as the general path
writes them.

With ``maillog_file`` set, cli_sendmail.py `_quiet_log` opens the file (loghandlers.py
`MaillogHandler`, a logging `WatchedFileHandler`: append, UTF-8) before the submission,
and queue/submit.py logs, once the message is durable, a ``pickup`` line (``ID: uid=UID
from=<SENDER>``) and a ``cleanup`` line (``ID: message-id=<ID>``), each in Postfix's format
(loghandlers.py `PostfixFormatter`, log.py `syslog_stamp`: ``Dec  3 18:20:01 host
postfix/pickup[PID]: text``), written and flushed at once, the file opened again when it
was moved or removed since (logrotate). A write that fails is one warning on standard
error (``mailcarrier: warning: cannot write PATH: reason``) until a write succeeds again;
the submission stands. `Maillog.open()` returns None when the file cannot be opened: the
general path then says why (exit 78). Imported by lean/submit.py only when it logs.
"""

from __future__ import annotations

import os
import time

TYPE_CHECKING = False  # typing is not imported at run time (see lean/__init__.py)
if TYPE_CHECKING:
    from typing import TextIO

__all__ = ["Maillog", "line_prefix"]


def line_prefix(when: float, hostname: str, syslog_name: str, process: str, pid: int) -> str:
    """``Dec  3 18:20:01 host postfix/pickup[PID]: `` (log.py `syslog_stamp`)."""
    stamp = time.strftime("%b %d %H:%M:%S", time.localtime(when))
    if stamp[4] == "0":  # syslog pads a single-digit day with a space
        stamp = stamp[:4] + " " + stamp[5:]
    short = hostname.split(".", 1)[0] or "localhost"
    return f"{stamp} {short} {syslog_name}/{process}[{pid}]: "


class Maillog:
    """maillog_file, open for appending."""

    def __init__(self, path: str, stream: TextIO) -> None:
        self.path = path
        self.stream: TextIO | None = stream
        self.identity = _identity(stream)
        self.failing = False

    @classmethod
    def open(cls, path: str) -> Maillog | None:
        try:
            return cls(path, open(path, "a", encoding="utf-8"))
        except OSError:
            return None

    def line(self, text: str, stderr: TextIO) -> None:
        """Write one line (its prefix included) now; a failure is a warning."""
        try:
            self._reopen_if_moved()
            assert self.stream is not None
            self.stream.write(text + "\n")
            self.stream.flush()
        except OSError as exc:
            if not self.failing:
                self.failing = True
                reason = exc.strerror or exc
                try:
                    stderr.write(f"mailcarrier: warning: cannot write {self.path}: {reason}\n")
                    stderr.flush()
                except OSError:
                    pass
        else:
            self.failing = False

    def _reopen_if_moved(self) -> None:
        """logging's `WatchedFileHandler.reopenIfNeeded`, and `FileHandler.emit`'s open."""
        try:
            found = os.stat(os.path.abspath(self.path))
            now: tuple[int, int] | None = (found.st_dev, found.st_ino)
        except FileNotFoundError:
            now = None
        if self.stream is not None and now == self.identity:
            return
        if self.stream is not None:
            old, self.stream = self.stream, None
            old.flush()
            old.close()
        self.stream = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - close()
        self.identity = _identity(self.stream)

    def close(self) -> None:
        if self.stream is not None:
            stream, self.stream = self.stream, None
            try:  # noqa: SIM105 - contextlib is not loaded on the lean path
                stream.close()
            except OSError:
                pass


def _identity(stream: TextIO) -> tuple[int, int]:
    found = os.fstat(stream.fileno())
    return found.st_dev, found.st_ino

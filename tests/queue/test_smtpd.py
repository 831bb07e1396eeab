"""queue/smtpd.py (``sendmail -bs``), the session on its own: the log lines of smtpd(8), a
queue that cannot be written (451, the session goes on, nothing partial left), a client
whose output pipe is gone. The command-line tests (tests/test_cli_sendmail_bs.py) drive it
with smtplib and with hostile scripts."""

from __future__ import annotations

import errno
import io
import os
from pathlib import Path
from typing import NoReturn

import pytest

from mailcarrier.log import MemoryLog
from mailcarrier.queue.smtpd import SessionEnd, serve_pipe
from mailcarrier.queue.spool import open_spool
from tests.support.settings import queue_settings

ONE = (
    b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\nSubject: s\r\n\r\nx\r\n.\r\n"
)


def _serve(tmp_path: Path, script: bytes) -> tuple[SessionEnd, list[str], MemoryLog]:
    settings = queue_settings(tmp_path)
    log = MemoryLog()
    out = io.BytesIO()
    end = serve_pipe(
        io.BytesIO(script), out, settings=settings, spool=open_spool(settings, log=log), log=log
    )
    return end, out.getvalue().decode().split("\r\n")[:-1], log


def test_log_lines_of_a_session(tmp_path: Path) -> None:
    end, replies, log = _serve(tmp_path, ONE + b"QUIT\r\n")
    assert end is SessionEnd.QUIT and replies[-1] == "221 2.0.0 Bye"
    queue_id = replies[-2].rsplit(" ", 1)[1]
    assert log.lines[0] == "connect from localhost[127.0.0.1]"
    assert f"{queue_id}: message-id=<{queue_id}@mc.example>" in log.lines
    assert log.lines[-1] == "disconnect from localhost[127.0.0.1]"


def test_lost_connection_is_logged(tmp_path: Path) -> None:
    end, _, log = _serve(
        tmp_path, b"MAIL FROM:<a@example.org>\r\nRCPT TO:<b@example.net>\r\nDATA\r\n"
    )
    assert end is SessionEnd.LOST
    assert log.lines[-2:] == [
        "lost connection after DATA from localhost[127.0.0.1]",
        "disconnect from localhost[127.0.0.1]",
    ]


def test_a_queue_that_cannot_be_written_is_451_and_the_session_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def full(*_args: object) -> NoReturn:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full)
    end, replies, log = _serve(tmp_path, ONE + b"NOOP\r\nQUIT\r\n")
    assert replies[-3:] == [
        "451 4.3.0 Error: queue file write error",
        "250 2.0.0 Ok",
        "221 2.0.0 Bye",
    ]
    assert end is SessionEnd.QUIT
    assert any("queue file write error" in line and "No space left" in line for line in log.lines)
    monkeypatch.undo()
    assert os.listdir(tmp_path / "incoming") == []


class _Gone(io.BytesIO):
    def write(self, data: object) -> int:
        raise BrokenPipeError(errno.EPIPE, "Broken pipe")


def test_a_client_that_stopped_reading(tmp_path: Path) -> None:
    settings = queue_settings(tmp_path)
    log = MemoryLog()
    end = serve_pipe(
        io.BytesIO(b"EHLO c\r\n" + ONE),
        _Gone(),
        settings=settings,
        spool=open_spool(settings),
        log=log,
    )
    # The greeting could not be written: the session ends before any command is read.
    assert end is SessionEnd.CLOSED
    incoming = tmp_path / "incoming"
    assert not incoming.exists() or os.listdir(incoming) == []

"""loghandlers.py: the stdlib `logging` handlers behind `HandlerLog`.

maillog_file survives logrotate (a renamed or removed file is opened again at its path), the
daemon's lines go out once per event-loop turn, a full disk costs lines and one warning but
never the program, and the records are ordinary enough for any `logging` formatter. The
postlog handler sends one datagram a line to a real AF_UNIX datagram socket standing in for
postlogd(8), and finds it again when it comes back. The line format and its cleaning:
tests/test_log.py and tests/delivery/test_log_lines.py.
"""

from __future__ import annotations

import asyncio
import errno
import io
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.log import HandlerLog, LogLine, current_pid
from mailcarrier.loghandlers import LineHandler, MaillogHandler, PostfixFormatter, PostlogHandler

PREFIX = "Jan  1 00:00:00 relay postfix/"


@pytest.fixture(autouse=True)
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.delenv("TZ")
    time.tzset()


def _formatter() -> PostfixFormatter:
    return PostfixFormatter("relay.example", "postfix", pid=7)


def _maillog(path: Path, **kw: object) -> tuple[HandlerLog, MaillogHandler]:
    handler = MaillogHandler(str(path), _formatter(), **kw)  # type: ignore[arg-type]
    return HandlerLog([handler], clock=lambda: 0), handler


def test_a_renamed_maillog_file_is_opened_again_at_its_path(tmp_path: Path) -> None:
    """logrotate (without copytruncate) renames the file: the next line goes to a new file
    at the same path, the lines before it stay in the renamed one."""
    path = tmp_path / "maillog"
    sink, handler = _maillog(path)
    sink.info("smtp", "Q1: before")
    path.rename(tmp_path / "maillog.1")
    sink.info("smtp", "Q2: after")
    path.unlink()  # removed outright: made again too
    sink.warning("qmgr", "Q3: removed")
    handler.close()
    assert (tmp_path / "maillog.1").read_text() == f"{PREFIX}smtp[7]: Q1: before\n"
    assert path.read_text() == f"{PREFIX}qmgr[7]: warning: Q3: removed\n"


async def test_batched_lines_go_out_once_per_turn_and_after_a_rotation(tmp_path: Path) -> None:
    path = tmp_path / "maillog"
    sink, handler = _maillog(path, batched=True)
    sink.info("qmgr", "Q1: from=<a@example.org>")
    sink.info("smtp", "Q1: to=<b@example.net>")
    assert path.read_text() == ""  # not before the end of the turn
    await asyncio.sleep(0)
    assert path.read_text().splitlines() == [
        f"{PREFIX}qmgr[7]: Q1: from=<a@example.org>",
        f"{PREFIX}smtp[7]: Q1: to=<b@example.net>",
    ]
    sink.info("qmgr", "Q1: removed")
    path.rename(tmp_path / "maillog.1")  # between the line and the end of its turn
    await asyncio.sleep(0)
    assert path.read_text() == f"{PREFIX}qmgr[7]: Q1: removed\n"
    sink.info("qmgr", "last")
    handler.close()  # what waits is written
    assert path.read_text().endswith(f"{PREFIX}qmgr[7]: last\n")


class _Recording(io.StringIO):
    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


async def test_one_write_per_turn_on_a_stream() -> None:
    out = _Recording()
    sink = HandlerLog([LineHandler(out, _formatter(), batched=True)], clock=lambda: 0)
    for n in range(50):
        sink.info("smtp", f"line {n}")
    await asyncio.sleep(0)
    assert out.writes == 1 and out.getvalue().count("\n") == 50


class _Full(io.StringIO):
    """A stream on a full disk until `room` is set."""

    name = "/var/log/maillog"

    def __init__(self) -> None:
        super().__init__()
        self.room = False

    def write(self, text: str) -> int:
        if not self.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return super().write(text)


def test_a_full_disk_costs_lines_and_one_warning_until_it_works_again() -> None:
    full, errors = _Full(), io.StringIO()
    sink = HandlerLog([LineHandler(full, _formatter(), errors=errors)], clock=lambda: 0)
    sink.info("smtp", "lost 1")
    sink.info("smtp", "lost 2")
    warning = "mailcarrier: warning: cannot write /var/log/maillog: No space left on device\n"
    assert errors.getvalue() == warning
    full.room = True
    sink.info("smtp", "kept")
    full.room = False
    sink.info("smtp", "lost 3")
    assert full.getvalue() == f"{PREFIX}smtp[7]: kept\n"
    assert errors.getvalue() == warning * 2  # failing again after it worked


def test_without_an_errors_stream_a_failure_is_raised() -> None:
    sink = HandlerLog([LineHandler(_Full(), _formatter())], clock=lambda: 0)
    with pytest.raises(OSError, match="No space left"):
        sink.info("smtp", "x")


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")
def test_maillog_on_dev_full_never_raises() -> None:
    errors = io.StringIO()
    sink, handler = _maillog(Path("/dev/full"), batched=False, errors=errors)
    sink.info("smtp", "x")
    sink.warning("smtp", "y")
    handler.close()
    assert errors.getvalue() == (
        "mailcarrier: warning: cannot write /dev/full: No space left on device\n"
    )


def test_records_suit_any_formatter_and_levels_are_kept() -> None:
    out = io.StringIO()
    plain = logging.StreamHandler(out)
    plain.setFormatter(logging.Formatter("%(levelname)s %(name)s %(procname)s: %(message)s"))
    quiet = logging.StreamHandler(io.StringIO())
    quiet.setLevel(logging.WARNING)
    sink = HandlerLog([plain, quiet], clock=lambda: 0)
    sink.info("smtp", "Q1: sent\r\n")
    sink.warning("qmgr", "odd")
    assert out.getvalue() == "INFO mailcarrier smtp: Q1: sent??\nWARNING mailcarrier qmgr: odd\n"
    assert quiet.stream.getvalue() == "odd\n"


def test_the_formatter_renders_a_logger_s_record_too() -> None:
    record = logging.LogRecord(
        "mailcarrier", logging.WARNING, __file__, 1, "disk %s", ("low",), None
    )
    record.created = 0
    assert _formatter().format(record) == f"{PREFIX}mailcarrier[7]: warning: disk low"


@settings(max_examples=200, deadline=None)
@given(
    levelno=st.sampled_from([logging.INFO, logging.WARNING, logging.ERROR, logging.CRITICAL]),
    procname=st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=8),
    text=st.text(max_size=40),
    created=st.floats(min_value=0, max_value=4e9, allow_nan=False),
)
def test_a_line_without_a_record_is_the_line_of_its_record(
    levelno: int, procname: str, text: str, created: float
) -> None:
    """`write_line` (HandlerLog's way in, no record) writes what `handle` of the same
    values' `LogLine` writes: with a PostfixFormatter and with any other formatter."""
    for formatter in (_formatter(), logging.Formatter("%(levelname)s %(procname)s %(message)s")):
        direct, recorded = io.StringIO(), io.StringIO()
        LineHandler(direct, formatter).write_line(levelno, procname, text, created)
        name = logging.getLevelName(levelno)
        LineHandler(recorded, formatter).handle(LogLine(levelno, name, procname, text, created))
        assert direct.getvalue() == recorded.getvalue()


class Postlogd:
    """A datagram socket where postlogd's would be."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(5)

    def datagram(self) -> bytes:
        return self.sock.recv(65536)

    def close(self) -> None:
        self.sock.close()
        self.path.unlink()


def test_postlog_sends_one_datagram_a_line(short_tmp: Path) -> None:
    postlogd = Postlogd(short_tmp / "postlog")
    handler = PostlogHandler(str(postlogd.path), "mta.test.local", "postfix/relay", pid=20319)
    sink = HandlerLog([handler], clock=lambda: 0)
    sink.info("smtp", "Q1: to=<a@x>, status=sent (250 2.0.0 Ok)")
    sink.warning("smtp", "Q1: bad\nline")
    sink.fatal("smtp", "no more")
    prefix = b"Jan 01 00:00:00 mta postfix/relay/smtp[20319]: "
    assert postlogd.datagram() == prefix + b"Q1: to=<a@x>, status=sent (250 2.0.0 Ok)"
    assert postlogd.datagram() == prefix + b"warning: Q1: bad?line"
    assert postlogd.datagram() == prefix + b"fatal: no more"
    sink.close()
    postlogd.close()


def test_postlog_connects_again_when_postlogd_comes_back(short_tmp: Path) -> None:
    path = short_tmp / "postlog"
    handler = PostlogHandler(str(path), "mta", pid=1)  # nobody there yet: lines are lost
    sink = HandlerLog([handler], clock=lambda: 0)
    sink.info("smtp", "lost")
    postlogd = Postlogd(path)
    sink.info("smtp", "first")
    assert postlogd.datagram() == b"Jan 01 00:00:00 mta postfix/smtp[1]: first"
    postlogd.close()  # postlogd restarts: a new socket at the same path
    sink.info("smtp", "lost too")
    postlogd = Postlogd(path)
    sink.info("smtp", "second")
    assert postlogd.datagram() == b"Jan 01 00:00:00 mta postfix/smtp[1]: second"
    sink.close()
    postlogd.close()


def test_postlog_a_line_through_logging_is_the_same_datagram(short_tmp: Path) -> None:
    # HandlerLog hands PostlogHandler the line itself (write_line); a handler with a filter,
    # or a Logger, goes through emit() and a LogRecord: the same bytes either way.
    postlogd = Postlogd(short_tmp / "postlog")
    handler = PostlogHandler(str(postlogd.path), "mta.test.local", pid=20319)
    HandlerLog([handler], clock=lambda: 0).warning("smtp", "Q1: lost connection")
    handler.addFilter(lambda record: True)
    HandlerLog([handler], clock=lambda: 0).warning("smtp", "Q1: lost connection")
    direct, through_a_record = postlogd.datagram(), postlogd.datagram()
    assert direct == through_a_record
    assert direct == b"Jan 01 00:00:00 mta postfix/smtp[20319]: warning: Q1: lost connection"
    handler.close()
    postlogd.close()


def test_postlog_waits_at_most_its_timeout_for_a_full_postlogd(short_tmp: Path) -> None:
    postlogd = Postlogd(short_tmp / "postlog")
    handler = PostlogHandler(str(postlogd.path), "mta", pid=1, timeout=0.05)
    sink = HandlerLog([handler], clock=lambda: 0)
    filler = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    filler.connect(str(postlogd.path))
    filler.setblocking(False)
    queued = 0
    with pytest.raises(BlockingIOError):  # postlogd's queue full, postlogd not reading
        while True:
            filler.send(b"filler")
            queued += 1
    sink.info("smtp", "lost")  # waits for room twice, at most `timeout` each, and gives up
    assert [postlogd.datagram() for _ in range(queued)] == [b"filler"] * queued
    sink.info("smtp", "after")  # room again: sent at once
    assert postlogd.datagram() == b"Jan 01 00:00:00 mta postfix/smtp[1]: after"
    filler.close()
    sink.close()
    postlogd.close()


def test_the_pid_is_the_process_s_own_after_a_fork() -> None:
    assert current_pid() == os.getpid()
    read, write = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - the child
        os.write(write, str(current_pid()).encode())
        os._exit(0)
    os.waitpid(child, 0)
    assert os.read(read, 20) == str(child).encode()
    os.close(read)
    os.close(write)

"""progress.py: a progress line when standard error is a terminal (a pseudo-terminal here,
from the pty module), and not one byte more when it is a pipe or a file.

End to end, the real command runs in a subprocess with its standard error on the
pseudo-terminal: a bulk queue action, ``run --once`` and a ``map`` build each show their bar
(description, count of total, rate, time left) and their log lines stay whole. Nothing
here depends on speed: tqdm draws the bar when it opens and when it closes, however fast
the work is.
"""

from __future__ import annotations

import fcntl
import io
import os
import pty
import re
import select
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailcarrier.progress import NullProgress, terminal_progress
from tests.queue.helpers import put_message, spool

CLI = [sys.executable, "-c", "from mailcarrier.cli import main; main()"]
# A log line as make_log writes it (loghandlers.py).
LOG_LINE = re.compile(r"\w{3} [ \d]\d \d\d:\d\d:\d\d \S+ \S+\[\d+\]: \S")

pytest.importorskip("tqdm", reason="the progress extra (tqdm) is not installed")


class Terminal:
    """A pseudo-terminal 200 columns wide: its master and slave descriptors."""

    def __init__(self) -> None:
        self.master, self.slave = pty.openpty()
        fcntl.ioctl(self.slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 200, 0, 0))

    def close_slave(self) -> None:
        """Only the writers given it keep it open: they close it, reading ends (EIO)."""
        if self.slave >= 0:
            os.close(self.slave)
            self.slave = -1

    def close(self) -> None:
        self.close_slave()
        os.close(self.master)


@pytest.fixture
def terminal() -> Iterator[Terminal]:
    opened = Terminal()
    try:
        yield opened
    finally:
        opened.close()


def _read_all(master: int, deadline: float) -> bytes:
    """Everything written to the terminal until the last writer closes it."""
    chunks = []
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: no writer is left
            break
        if not data:
            break
        chunks.append(data)
    return b"".join(chunks)


def _on_terminal(terminal: Terminal, *args: str) -> tuple[int, str]:
    """The command with standard error on the terminal: its exit code and what it drew
    there (the terminal's CR LF made LF again)."""
    proc = subprocess.Popen(
        [*CLI, *args], stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=terminal.slave
    )
    terminal.close_slave()
    drawn = _read_all(terminal.master, time.monotonic() + 60)
    code = proc.wait(timeout=60)
    return code, drawn.decode("utf-8").replace("\r\n", "\n")


def _on_a_pipe(*args: str) -> tuple[int, str]:
    done = subprocess.run(
        [*CLI, *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.stdout == ""
    return done.returncode, done.stderr


def _bar(drawn: str, desc: str, count: str, unit: str) -> None:
    """`drawn` ends with the finished bar: description, 100%, the count, rate, time left."""
    last = drawn.rstrip("\n").rsplit("\r", 1)[-1]
    assert re.fullmatch(
        rf"{re.escape(desc)}: 100%\|█+\| {count} \[\d\d:\d\d<\d\d:\d\d, +[\d.]+{unit}/s\]", last
    ), last


def _lines_apart(drawn: str) -> list[str]:
    """The lines written beside the bar: what is left with every drawing of it taken out."""
    text = re.sub(r"\r[^\r\n]*(?=\r)", "", drawn)  # a bar (or its erasure) drawn over
    return [line.lstrip("\r") for line in text.split("\n") if "%|" not in line and line]


# --- the module ------------------------------------------------------------------------------
def test_nothing_but_a_null_progress_off_a_terminal(tmp_path: Path) -> None:
    with (tmp_path / "file").open("w") as file, terminal_progress(file, "x", "msg") as p:
        assert isinstance(p, NullProgress)
    out = io.StringIO()
    with terminal_progress(out, "x", "msg", total=3) as p:
        p.grow(4)
        p.advance(4)
        with p.outside():
            out.write("a line\n")
    assert out.getvalue() == "a line\n"


def test_a_bar_makes_way_for_lines_and_its_total_grows(terminal: Terminal) -> None:
    writer = io.FileIO(os.dup(terminal.slave), "w")
    stream = io.TextIOWrapper(writer, encoding="utf-8", write_through=True)
    with terminal_progress(stream, "work", "msg", total=2) as progress:
        for i in range(3):  # one more than the total first said
            progress.advance()
            with progress.outside():
                stream.write(f"line {i}\n")
    stream.close()
    terminal.close_slave()
    drawn = _read_all(terminal.master, time.monotonic() + 10).decode("utf-8")
    drawn = drawn.replace("\r\n", "\n")
    _bar(drawn, "work", "3/3", "msg")
    assert _lines_apart(drawn) == ["line 0", "line 1", "line 2"]


def test_a_terminal_without_a_size_gets_80_columns() -> None:
    master, slave = pty.openpty()  # never sized: 0 columns
    stream = io.TextIOWrapper(io.FileIO(slave, "w"), encoding="utf-8", write_through=True)
    with terminal_progress(stream, "work", "msg", total=1) as progress:
        progress.advance()
    stream.close()
    drawn = _read_all(master, time.monotonic() + 10).decode("utf-8")
    os.close(master)
    assert len(drawn.rstrip("\r\n").rsplit("\r", 1)[-1]) == 80


# --- the commands ----------------------------------------------------------------------------
def _queue(root: Path, count: int) -> list[str]:
    queue = spool(root)
    now = time.time()
    return [
        put_message(queue, "incoming", "s@example.org", [f"r{i}@example.net"], now)
        for i in range(count)
    ]


def test_a_bulk_action_shows_its_progress_on_a_terminal(tmp_path: Path, terminal: Terminal) -> None:
    ids = _queue(tmp_path, 3)
    o = ["-o", f"queue_directory={tmp_path}"]
    code, drawn = _on_terminal(terminal, *o, "queue", "hold", "--domain", "example.net")
    assert code == 0
    # First the messages read for the selection, then the messages held.
    reading, holding = drawn.split("hold:   0%|", 1)
    _bar(reading.rstrip("\r"), "hold: reading", "3/3", "msg")
    assert "hold: reading" not in holding
    lines = _lines_apart(drawn)
    assert [line.split(": ", 1)[1] for line in lines[:3]] == [f"{i}: placed on hold" for i in ids]
    _bar("\n".join(drawn.split("\n")[:-2]) + "\n", "hold", "3/3", "msg")
    assert lines[3:] == ["mailcarrier: Placed on hold: 3 messages"]


def test_a_bulk_action_on_a_pipe_shows_nothing_more(tmp_path: Path) -> None:
    ids = _queue(tmp_path, 3)
    code, err = _on_a_pipe("-o", f"queue_directory={tmp_path}", "queue", "hold", "ALL")
    assert code == 0 and "\r" not in err
    lines = err.splitlines()
    assert all(LOG_LINE.match(line) for line in lines[:3])
    assert [line.split(": ", 1)[1] for line in lines[:3]] == [f"{i}: placed on hold" for i in ids]
    assert lines[3:] == ["mailcarrier: Placed on hold: 3 messages"]


def _run_once_options(queue: Path) -> list[str]:
    # Nothing listens on the discard port: each message is deferred at once.
    return ["-o", f"queue_directory={queue}", "-o", "relayhost=[127.0.0.1]:9"]


def test_run_once_shows_its_progress_on_a_terminal(tmp_path: Path, terminal: Terminal) -> None:
    ids = _queue(tmp_path, 3)
    code, drawn = _on_terminal(terminal, *_run_once_options(tmp_path), "run", "--once")
    assert code == 0
    _bar(drawn, "run --once", "3/3", "msg")
    lines = _lines_apart(drawn)
    assert lines and all(LOG_LINE.match(line) for line in lines), lines
    for queue_id in ids:  # each delivery line whole, beside the bar
        assert any(f"{queue_id}: to=<" in line and "status=deferred" in line for line in lines)
    assert sorted(os.listdir(tmp_path / "deferred")) == ids


def test_run_once_on_a_pipe_shows_nothing_more(tmp_path: Path) -> None:
    _queue(tmp_path, 3)
    code, err = _on_a_pipe(*_run_once_options(tmp_path), "run", "--once")
    assert code == 0 and err and "\r" not in err and "%|" not in err
    assert all(LOG_LINE.match(line) for line in err.splitlines())


def _source(tmp_path: Path, lines: int) -> Path:
    source = tmp_path / "big"
    source.write_text("# a comment\n" + "".join(f"key{i} value{i}\n" for i in range(lines - 1)))
    return source


def test_map_shows_its_progress_on_a_terminal(tmp_path: Path, terminal: Terminal) -> None:
    pytest.importorskip("lmdb", reason="the lmdb extra is not installed")
    source = _source(tmp_path, 5000)
    code, drawn = _on_terminal(terminal, "map", f"lmdb:{source}")
    assert code == 0 and (tmp_path / "big.lmdb").exists()
    _bar(drawn, f"map lmdb:{source}", "5000/5000", "lines")
    assert _lines_apart(drawn) == []


def test_map_on_a_pipe_shows_nothing(tmp_path: Path) -> None:
    pytest.importorskip("lmdb", reason="the lmdb extra is not installed")
    assert _on_a_pipe("map", f"lmdb:{_source(tmp_path, 5000)}") == (0, "")


def test_the_progress_log_passes_event_records_on() -> None:
    # run wraps its log in a ProgressLog: event records must reach event_log_file through
    # it, with their line (log.py log_event), and a line alone stays a line.
    from mailcarrier.cli_support import ProgressLog
    from mailcarrier.events import operator_event
    from mailcarrier.log import MemoryLog, log_event

    inner = MemoryLog()
    event = operator_event("4ABC", action="hold", from_queue="deferred", to_queue="hold")
    log_event(ProgressLog(inner), "postsuper", "4ABC: placed on hold", event)
    ProgressLog(inner).info("postsuper", "a line")
    assert inner.events == [("postsuper", event)]
    assert inner.lines == ["4ABC: placed on hold", "a line"]

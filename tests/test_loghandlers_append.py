"""loghandlers.py's AppendHandler: the event_log_file that Postfix-native agent processes
share. Each record is one line written with one write() on an O_APPEND descriptor, so that
processes appending at once (lines far longer than a pipe's atomic size included) never
interleave; a file moved away by logrotate is opened again; a failing write is one warning
and never an exception."""

from __future__ import annotations

import json
import multiprocessing
import os
from pathlib import Path
from typing import Any

import pytest

from mailcarrier.events import delivery_event
from mailcarrier.log import HandlerLog
from mailcarrier.loghandlers import AppendHandler, EventFormatter
from mailcarrier.status import DeliveryStatus, RecipientStatus

PROCESSES = 4
RECORDS = 150


def _status(index: int, size: int) -> RecipientStatus:
    reply = f"250 2.0.0 Ok {index} " + "x" * size
    return RecipientStatus(f"r{index}@example.net", DeliveryStatus.SENT, "2.0.0", reply)


def _log(path: Path, warnings: list[str] | None = None) -> HandlerLog:
    warn = warnings.append if warnings is not None else None
    handler = AppendHandler(str(path), EventFormatter("node-1", "mc.example"), warn=warn)
    return HandlerLog((), event_handlers=[handler])


def _size(process: int, index: int) -> int:
    # From a few bytes to 70 kB: far past PIPE_BUF (4096) and the stdio buffer (8192).
    return (process * 7919 + index * 104729) % 70000


def _append(path: str, process: int, barrier: Any) -> None:
    log = _log(Path(path))
    barrier.wait()
    for index in range(RECORDS):
        status = _status(index, _size(process, index))
        log.event("smtp", "", delivery_event(f"Q{process}", status, 0))
    log.close()


def test_processes_appending_at_once_never_interleave(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(PROCESSES)
    workers = [
        context.Process(target=_append, args=(str(path), n, barrier)) for n in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    lines = path.read_bytes().split(b"\n")
    assert lines[-1] == b""
    records = [json.loads(line) for line in lines[:-1]]
    assert len(records) == PROCESSES * RECORDS
    for process in range(PROCESSES):
        mine = [r for r in records if r["queue_id"] == f"Q{process}"]
        # Each process's records whole and in its order, whatever came between them.
        assert [r["address"] for r in mine] == [f"r{i}@example.net" for i in range(RECORDS)]
        for index, record in enumerate(mine):
            assert record["diagnostic"] == f"250 2.0.0 Ok {index} " + "x" * _size(process, index)
    assert {r["attempt"] for r in records} == {None}  # Postfix counts no attempts


def test_one_write_per_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "events.jsonl"
    log = _log(path)
    writes: list[bytes] = []
    real_write = os.write

    def write(fd: int, data: bytes) -> int:
        writes.append(bytes(data))
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", write)
    for index in range(3):
        log.event("smtp", "", delivery_event("Q", _status(index, 20000), 0))
    log.close()
    assert len(writes) == 3 and all(w.endswith(b"\n") and w.count(b"\n") == 1 for w in writes)
    assert path.read_bytes() == b"".join(writes)
    flags = AppendHandler.FLAGS
    assert flags & os.O_APPEND and flags & os.O_CREAT and flags & os.O_CLOEXEC


def test_a_file_moved_by_logrotate_is_opened_again(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = _log(path)
    log.event("smtp", "", delivery_event("Q1", _status(1, 0), 0))
    path.rename(tmp_path / "events.jsonl.1")
    log.event("smtp", "", delivery_event("Q2", _status(2, 0), 0))
    path.unlink()
    log.event("smtp", "", delivery_event("Q3", _status(3, 0), 0))
    log.close()
    old = (tmp_path / "events.jsonl.1").read_text().splitlines()
    assert [json.loads(line)["queue_id"] for line in old] == ["Q1"]
    assert [json.loads(line)["queue_id"] for line in path.read_text().splitlines()] == ["Q3"]


def test_a_failing_write_is_one_warning_until_it_works(tmp_path: Path) -> None:
    warnings: list[str] = []
    log = _log(Path("/dev/full"), warnings)
    for index in range(3):
        log.event("smtp", "", delivery_event("Q", _status(index, 0), 0))
    log.close()
    assert warnings == ["cannot write /dev/full: No space left on device"]


def test_a_path_that_cannot_be_opened_raises_at_once(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        AppendHandler(str(tmp_path / "missing" / "events.jsonl"), EventFormatter("n", "h"))

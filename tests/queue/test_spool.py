"""The spool: durable creation, nothing partial, moves, corrupt files, record appends."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from mailcarrier.log import MemoryLog
from mailcarrier.queue.qfile import Envelope, QueueRecipient, status_record
from mailcarrier.queue.spool import Spool
from mailcarrier.status import DeliveryStatus
from tests.queue.helpers import spool as make_spool


def _envelope() -> Envelope:
    return Envelope("", "s@example.org", (QueueRecipient("r@example.net"),), 1000.0)


def test_commit_makes_a_readable_message(tmp_path: Path) -> None:
    sp = make_spool(tmp_path)
    with sp.create(_envelope()) as w:
        w.write(b"Subject: x\n\nbody\n")
        queue_id = w.commit()
    assert sp.ids("incoming") == [queue_id]
    msg = sp.read("incoming", queue_id)
    assert msg.envelope.size == len(b"Subject: x\n\nbody\n")
    assert msg.pending() == [0]
    with open(msg.path, "rb") as f:
        f.seek(msg.envelope.content_offset)
        assert f.read(msg.envelope.size) == b"Subject: x\n\nbody\n"


def test_an_aborted_write_leaves_nothing(tmp_path: Path) -> None:
    sp = make_spool(tmp_path)
    with pytest.raises(RuntimeError), sp.create(_envelope()) as w:
        w.write(b"partial")
        raise RuntimeError
    assert os.listdir(tmp_path / "incoming") == []


def test_unparsable_file_moves_to_corrupt_with_a_log_line(tmp_path: Path) -> None:
    log = MemoryLog()
    sp = Spool(tmp_path, log=log).ensure()
    (tmp_path / "incoming" / "BADID").write_bytes(b"not a queue file")
    assert list(sp.scan("incoming")) == []
    assert sp.ids("corrupt") == ["BADID"]
    assert any("BADID" in line and "corrupt" in line for line in log.lines)


def test_truncated_content_is_corrupt(tmp_path: Path) -> None:
    sp = make_spool(tmp_path)
    with sp.create(_envelope()) as w:
        w.write(b"0123456789")
        queue_id = w.commit()
    path = tmp_path / "incoming" / queue_id
    path.write_bytes(path.read_bytes()[:-3])
    assert sp.read_or_quarantine("incoming", queue_id) is None
    assert sp.ids("corrupt") == [queue_id]


def test_records_are_appended_after_a_torn_tail_is_cut(tmp_path: Path) -> None:
    sp = make_spool(tmp_path)
    with sp.create(_envelope()) as w:
        w.write(b"body\n")
        queue_id = w.commit()
    path = tmp_path / "incoming" / queue_id
    with open(path, "ab") as f:
        f.write(b"status 0 sent")  # a crash in the middle of a record
    msg = sp.read("incoming", queue_id)
    writer = sp.records(msg)
    writer.append(status_record(0, DeliveryStatus.SENT, "2.0.0", "none", "ok", 1.0))
    writer.close()
    again = sp.read("incoming", queue_id)
    assert again.pending() == []


def test_move_sets_next_attempt_time_and_due_honours_it(tmp_path: Path) -> None:
    sp = make_spool(tmp_path)
    with sp.create(_envelope()) as w:
        queue_id = w.commit()
    sp.move(queue_id, "incoming", "deferred", mtime=5000.0)
    assert sp.due("deferred", 4999.0) == []
    assert sp.due("deferred", 5000.0) == [queue_id]
    assert sp.find(queue_id) == "deferred"


def test_stale_temporary_files_are_cleaned(tmp_path: Path) -> None:
    sp = make_spool(tmp_path)
    stale = tmp_path / "incoming" / ".X.tmp"
    stale.write_bytes(b"x")
    os.utime(stale, (0, 0))
    assert sp.clean_temporary() == 1
    assert not stale.exists()

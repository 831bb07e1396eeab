"""The spool: durable creation, nothing partial, moves, corrupt files, record appends."""

from __future__ import annotations

import errno
import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mailcarrier.errors import TemporaryError
from mailcarrier.log import MemoryLog
from mailcarrier.queue.qfile import (
    Envelope,
    QueueRecipient,
    RecipientState,
    StateLog,
    status_record,
)
from mailcarrier.queue.spool import Spool, pending, record_reserve
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


# --- a full disk, a read-only queue -------------------------------------------------------


def _fail(err: int) -> Callable[..., NoReturn]:
    def fail(*_args: object, **_kw: object) -> NoReturn:
        raise OSError(err, os.strerror(err))

    return fail


@pytest.mark.parametrize(
    ("call", "err"),
    [("fsync", errno.EDQUOT), ("rename", errno.ENOSPC), ("chmod", errno.EROFS)],
)
def test_a_failed_write_is_one_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str, err: int
) -> None:
    sp = make_spool(tmp_path)
    monkeypatch.setattr(os, call, _fail(err))
    with pytest.raises(TemporaryError) as info, sp.create(_envelope()) as w:
        w.write(b"Subject: x\n\nbody\n")
        w.commit()
    path = info.value.path
    assert re.fullmatch(rf"{tmp_path}/incoming/\.\w+\.tmp", path)
    assert str(info.value) == f"queue file write error: {path}: {os.strerror(err)}"
    assert info.value.errno == err
    monkeypatch.undo()
    assert os.listdir(tmp_path / "incoming") == []


def test_records_overwrite_their_reservation(tmp_path: Path) -> None:
    """Space for records is reserved (NULs that readers ignore) and used in place; what is
    left is given back when the message stays queued."""
    sp = make_spool(tmp_path)
    with sp.create(_envelope()) as w:
        w.write(b"body\n")
        queue_id = w.commit()
    size = (tmp_path / "incoming" / queue_id).stat().st_size
    taken = sp.take("incoming", queue_id)
    assert taken is not None
    message, writer = taken
    path = tmp_path / "active" / queue_id
    reserve = record_reserve(1, 1)
    assert message.queue == "active" and message.origin == "incoming"
    assert path.stat().st_size == size + reserve
    assert path.read_bytes()[size:] == bytes(reserve)
    record = status_record(0, DeliveryStatus.DEFERRED, "4.0.0", "none", "later", 1.0)
    writer.append(record)
    assert path.stat().st_size == size + reserve  # written inside the reservation
    assert sp.read("active", queue_id).state.states[0].diagnostic == "later"
    writer.close()
    assert path.read_bytes()[size:] == record


def test_a_message_without_room_for_its_records_stays_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = make_spool(tmp_path)
    with sp.create(_envelope()) as w:
        w.write(b"body\n")
        queue_id = w.commit()
    path = tmp_path / "deferred" / queue_id
    sp.move(queue_id, "incoming", "deferred", mtime=5000.0)
    before = path.read_bytes()
    monkeypatch.setattr(os, "pwrite", _fail(errno.ENOSPC))
    with pytest.raises(TemporaryError) as info:
        sp.take("deferred", queue_id)
    assert str(info.value) == f"update queue file {path}: No space left on device"
    monkeypatch.undo()
    assert sp.find(queue_id) == "deferred"
    assert path.read_bytes() == before and path.stat().st_mtime == 5000.0


def test_a_failed_move_leaves_the_message_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sp = make_spool(tmp_path)
    with sp.create(_envelope()) as w:
        w.write(b"body\n")
        queue_id = w.commit()
    path = tmp_path / "incoming" / queue_id
    before, mtime = path.read_bytes(), path.stat().st_mtime_ns
    monkeypatch.setattr(os, "rename", _fail(errno.EACCES))
    with pytest.raises(TemporaryError) as info:
        sp.take("incoming", queue_id)
    active = tmp_path / "active" / queue_id
    assert str(info.value) == f"rename {path} to {active}: Permission denied"
    monkeypatch.undo()
    assert path.read_bytes() == before and path.stat().st_mtime_ns == mtime


def test_an_unwritable_queue_directory_is_one_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    with pytest.raises(TemporaryError) as info:
        Spool(tmp_path / "file" / "q").ensure()
    assert str(info.value) == f"create queue directory {tmp_path}/file/q/incoming: Not a directory"


@settings(max_examples=200, deadline=None)
@given(
    count=st.integers(1, 6),
    probe=st.booleans(),
    verdicts=st.dictionaries(st.integers(0, 5), st.sampled_from(list(DeliveryStatus)), max_size=6),
)
def test_pending_is_the_recipients_without_a_final_verdict(
    count: int, probe: bool, verdicts: dict[int, DeliveryStatus]
) -> None:
    """`pending` (with its shortcut for a message with no verdict yet) is what its
    definition says: for a probe every recipient without a verdict, else every recipient
    whose last verdict is not final."""
    rcpts = tuple(QueueRecipient(f"r{i}@example.net") for i in range(count))
    env = Envelope("Q1", "s@example.org", rcpts, 1000.0, probe=probe)
    state = StateLog()
    for i, status in verdicts.items():
        state.states[i] = RecipientState(status, "2.0.0", "ok", "none", 1.0)
    if probe:
        expected = [i for i in range(count) if i not in state.states]
    else:
        expected = [i for i in range(count) if not state.is_final(i)]
    assert pending(env, state) == expected


async def test_removals_that_come_while_a_batch_runs_go_as_the_next_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One unlink batch at a time on the helper thread: what comes meanwhile waits (its
    queue IDs in `removing`, left alone by recovery) and goes as one batch; `then` runs for
    each file removed, and `settle()` waits for all."""
    import asyncio
    import functools
    import threading

    from mailcarrier.queue import spool as spool_module

    sp = make_spool(tmp_path)
    ids = []
    for _ in range(4):
        with sp.create(_envelope()) as w:
            w.write(b"x\n")
            ids.append(w.commit())
    release = threading.Event()
    batches: list[list[str]] = []
    unlink_all = spool_module._unlink_all

    def slow_unlink_all(paths: list[str]) -> list[str | None]:
        batches.append([p.rpartition("/")[2] for p in paths])
        if len(batches) == 1:
            release.wait(10)
        return unlink_all(paths)

    monkeypatch.setattr(spool_module, "_unlink_all", slow_unlink_all)
    removed: list[str] = []
    sp.remove_soon("incoming", ids[0], lambda: removed.append(ids[0]))
    for _ in range(5):
        await asyncio.sleep(0)  # the first batch starts at the end of the turn
    for queue_id in ids[1:]:
        sp.remove_soon("incoming", queue_id, functools.partial(removed.append, queue_id))
        await asyncio.sleep(0)  # each in a turn of its own
    assert batches == [[ids[0]]] and set(ids) <= sp.removing
    release.set()
    await sp.settle()
    assert batches == [[ids[0]], ids[1:]]
    assert removed == ids and not sp.removing and sp.ids("incoming") == []

"""durable.py: a file appears whole or not at all, and is durable before it is there.

The steps are checked one by one (what exists after each, what was fsynced), and every step
that can fail leaves the old file and no temporary file. The queue's crash points between the
steps are exercised by the kill -9 tests of tests/queue/test_e2e.py, its error wording by
tests/queue/test_spool.py.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import NoReturn

import pytest

from mailcarrier.durable import AtomicFile, create_once, fsync_dir, write_atomically


def _fail(err: int) -> Callable[..., NoReturn]:
    def fail(*_args: object, **_kw: object) -> NoReturn:
        raise OSError(err, os.strerror(err))

    return fail


def _synced(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """Record (inode, file type bits) of every fsync."""
    seen: list[tuple[int, int]] = []
    real = os.fsync

    def fsync(fd: int) -> None:
        st = os.fstat(fd)
        seen.append((st.st_ino, stat.S_IFMT(st.st_mode)))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    return seen


def test_write_atomically_replaces_and_syncs_file_and_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = tmp_path / "main.cf"
    target.write_bytes(b"old\n")
    synced = _synced(monkeypatch)
    write_atomically(target, b"new\n", mode=0o640, prefix=".main.cf.", suffix="")
    assert target.read_bytes() == b"new\n"
    assert stat.S_IMODE(target.stat().st_mode) == 0o640
    assert os.listdir(tmp_path) == ["main.cf"]  # no temporary file left
    assert synced == [
        (target.stat().st_ino, stat.S_IFREG),
        (tmp_path.stat().st_ino, stat.S_IFDIR),
    ]


def test_a_new_file_keeps_the_mode_of_a_temporary_file(tmp_path: Path) -> None:
    write_atomically(tmp_path / "x", b"data")
    assert stat.S_IMODE((tmp_path / "x").stat().st_mode) == 0o600


def test_the_steps_one_by_one(tmp_path: Path) -> None:
    target = tmp_path / "Q1"
    with AtomicFile(target, temporary=tmp_path / ".Q1.tmp", mode=0o600, new=True) as out:
        out.write(b"header\n")
        out.file.write(b"body\n")
        assert (tmp_path / ".Q1.tmp").read_bytes() == b""  # still in the buffer
        out.flush()
        assert (tmp_path / ".Q1.tmp").read_bytes() == b"header\nbody\n"
        assert not target.exists()
        out.sync()
        assert out.file.closed and not target.exists()
        out.publish()
        assert out.published
    assert os.listdir(tmp_path) == ["Q1"] and target.read_bytes() == b"header\nbody\n"


def test_a_temporary_name_is_taken_exclusively(tmp_path: Path) -> None:
    (tmp_path / ".Q1.tmp").write_bytes(b"someone else's")
    with pytest.raises(FileExistsError):
        AtomicFile(tmp_path / "Q1", temporary=tmp_path / ".Q1.tmp")
    assert (tmp_path / ".Q1.tmp").read_bytes() == b"someone else's"


def test_leaving_the_block_unpublished_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "index.db"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), AtomicFile(target) as out:
        out.write(b"half")
        out.flush()
        raise RuntimeError("bug")
    assert os.listdir(tmp_path) == ["index.db"] and target.read_bytes() == b"old"


@pytest.mark.parametrize(
    ("call", "err"),
    [("fsync", errno.EDQUOT), ("rename", errno.ENOSPC), ("chmod", errno.EROFS)],
)
def test_a_failed_step_leaves_the_old_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, call: str, err: int
) -> None:
    target = tmp_path / "main.cf"
    target.write_bytes(b"old\n")
    monkeypatch.setattr(os, call, _fail(err))
    with pytest.raises(OSError) as info:
        write_atomically(target, b"new\n", mode=0o644)
    assert info.value.errno == err
    monkeypatch.undo()
    assert os.listdir(tmp_path) == ["main.cf"] and target.read_bytes() == b"old\n"


def test_a_directory_that_cannot_be_synced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A new name (a queue file) is taken back: not known to be durable, so not there. A
    replaced file stays: its old version is gone already."""
    real = os.fsync

    def fsync(fd: int) -> None:
        if stat.S_ISDIR(os.fstat(fd).st_mode):
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    with pytest.raises(OSError), AtomicFile(tmp_path / "Q1", new=True) as out:
        out.write(b"message")
        out.commit()
    assert os.listdir(tmp_path) == []
    (tmp_path / "main.cf").write_bytes(b"old")
    with pytest.raises(OSError):
        write_atomically(tmp_path / "main.cf", b"new")
    assert os.listdir(tmp_path) == ["main.cf"] and (tmp_path / "main.cf").read_bytes() == b"new"


def test_a_file_filled_by_name(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Another library writes the temporary file by its name (sqlite3 for table indexes):
    the fsync of the open descriptor covers what it wrote."""
    synced = _synced(monkeypatch)
    with AtomicFile(tmp_path / "table.db") as out:
        with open(out.path, "ab") as other:
            other.write(b"written by name")
        out.commit()
    assert (tmp_path / "table.db").read_bytes() == b"written by name"
    assert synced[0] == ((tmp_path / "table.db").stat().st_ino, stat.S_IFREG)


def test_fsync_dir_refuses_a_file(tmp_path: Path) -> None:
    fsync_dir(tmp_path)
    (tmp_path / "f").write_bytes(b"")
    with pytest.raises(NotADirectoryError):
        fsync_dir(tmp_path / "f")


def test_create_once_makes_a_file_only_when_there_is_none(tmp_path: Path) -> None:
    target = tmp_path / "name"
    assert create_once(target, b"first\n") is True
    assert create_once(target, b"second\n") is False
    assert target.read_bytes() == b"first\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["name"]  # no temporary left

"""Tests for tables/watch.py: polling change detection."""

from __future__ import annotations

import os
from pathlib import Path

from mailcarrier.tables import FileWatcher


def test_no_change(tmp_path: Path) -> None:
    path = tmp_path / "f"
    path.write_text("a")
    assert not FileWatcher([path]).changed()


def test_content_mtime_replace_create_delete(tmp_path: Path) -> None:
    path, absent = tmp_path / "f", tmp_path / "g"
    path.write_text("a")
    watcher = FileWatcher([path, absent])
    assert watcher.paths == (path, absent)
    path.write_text("ab")  # size
    assert watcher.changed_files() == [path]

    watcher = FileWatcher([path])
    st = path.stat()
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))  # mtime only
    assert watcher.changed()

    watcher = FileWatcher([path])
    tmp = tmp_path / "new"
    tmp.write_text("ab")
    os.utime(tmp, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns))
    os.replace(tmp, path)  # same size and mtime, new inode (an atomic rewrite)
    assert watcher.changed()

    watcher = FileWatcher([path, absent])
    absent.write_text("x")
    assert watcher.changed_files() == [absent]
    path.unlink()
    assert watcher.changed_files() == [path, absent]

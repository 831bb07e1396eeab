"""Change detection for configuration and table files, by polling (no threads, no asyncio).

`FileWatcher(paths).changed()` is true when any file's (inode, size, mtime) differs from the
snapshot taken at construction, including a file appearing or disappearing. A long-running
process calls it at a safe point (between deliveries) and, when true, reloads and makes a new
watcher; the watcher itself never acts.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

Stamp = tuple[int, int, int] | None


def _stamp(path: Path) -> Stamp:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


class FileWatcher:
    __slots__ = ("_stamps",)

    def __init__(self, paths: Iterable[Path]) -> None:
        self._stamps: dict[Path, Stamp] = {Path(p): _stamp(Path(p)) for p in paths}

    @property
    def paths(self) -> tuple[Path, ...]:
        return tuple(self._stamps)

    def changed_files(self) -> list[Path]:
        return [path for path, stamp in self._stamps.items() if _stamp(path) != stamp]

    def changed(self) -> bool:
        return bool(self.changed_files())

"""The files that Postfix-native agents leave in ``metrics_directory``, kept few.

master(8) starts and stops agent processes all day (max_idle, max_use, reloads), and in
prometheus-client's multiprocess mode each process counts in files of its own
(``counter_PID.db``, ``histogram_PID.db``, ``gauge_livesum_PID.db``). A dead process's
counts must stay (a counter never goes down), but the files of thousands of dead processes
would make every scrape read thousands of files. `compact(directory)` therefore folds the
counter and histogram files of each process that no longer exists into one archive file
per type (``counter_archive.db``: prometheus-client reads it like any other, as its name
starts with the type) and removes them; the live gauges of a dead process are dropped
(prometheus-client's `mark_process_dead`), as they say what runs now. A process is dead
when kill(pid, 0) says there is no such process (one of another user's is alive: EPERM), so
``mailcarrier observe`` must run in the agents' PID namespace. Only ``observe`` writes the
archive, under an exclusive lock (``compact.lock``): two at once cannot add a file twice.
A crash between adding a file and removing it would count that file twice: the window is
one rename-free unlink. Neighbour: native.py (which calls it).
"""

from __future__ import annotations

import fcntl
import os
import re
from pathlib import Path
from typing import Any, Final

from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import mark_process_dead

__all__ = ["compact"]

# The per-process files of counters and histograms, and of the gauges that live with it.
_PROCESS_FILE: Final = re.compile(r"(counter|histogram|gauge_live\w*?)_(\d+)\.db")
LOCK_NAME: Final = "compact.lock"
# prometheus-client's file format, untyped there.
_MMAPED: Any = MmapedDict


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fold(path: Path, archive: Path) -> None:
    """Add every value of `path` to `archive` (made when missing)."""
    values = _MMAPED.read_all_values_from_file(str(path))
    into = _MMAPED(str(archive))
    try:
        for key, value, timestamp, _ in values:
            old, _ = into.read_value(key)
            into.write_value(key, old + value, timestamp)
    finally:
        into.close()


def compact(directory: str) -> int:
    """Fold the files of dead processes (see the module text); how many were removed."""
    root = Path(directory)
    removed = 0
    with open(root / LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for path in sorted(root.iterdir()):
            found = _PROCESS_FILE.fullmatch(path.name)
            if found is None or _alive(int(found.group(2))):
                continue
            kind = found.group(1)
            if kind.startswith("gauge_"):
                mark_process_dead(int(found.group(2)), directory)  # type: ignore[no-untyped-call]
            else:
                _fold(path, root / f"{kind}_archive.db")
                path.unlink()
            removed += 1
    return removed

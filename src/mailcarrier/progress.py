"""A progress line for long work, on a terminal only: counts, rate and time left.

`terminal_progress(stream, desc, unit)` is a context manager giving a `Progress`: when
`stream` is a terminal and tqdm is installed (the ``progress`` extra), a tqdm bar on it
(``hold: 40%|####      | 400/1000 [00:02<00:03, 180.00msg/s]``), closed and left as a last
summary line when the block ends; otherwise `NULL_PROGRESS`, which shows nothing, so a
script, a pipe or CI sees exactly the output it saw before. tqdm is imported only then,
never at start-up (tests/test_startup.py). The work reports through the `Progress`
protocol only (`grow` the total it knows of, `advance` by what is done), so the layers that
do it (queue/, tables/) need not know whether anything is shown. Lines written to the same
terminal while a bar is open (log lines) go through `Progress.outside()`, which takes the
bar away for them and draws it again after. Neighbours: cli_queue.py and tables/command.py
open the bars; queue/admin.py, queue/scheduler.py and tables/build.py report to them.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any, Final, Protocol, TextIO

__all__ = ["NULL_PROGRESS", "NullProgress", "Progress", "terminal_progress"]

_FALLBACK_COLUMNS: Final = 80


class Progress(Protocol):
    def grow(self, total: int) -> None:
        """The work is at least `total` units (a total only grows: more was found)."""

    def advance(self, count: int = 1) -> None:
        """`count` more units are done."""

    def outside(self) -> contextlib.AbstractContextManager[None]:
        """A block that writes other lines to the terminal, with the bar out of the way."""


class NullProgress:
    """Shows nothing (not a terminal, or no tqdm)."""

    def grow(self, total: int) -> None:
        pass

    def advance(self, count: int = 1) -> None:
        pass

    def outside(self) -> contextlib.AbstractContextManager[None]:
        return contextlib.nullcontext()


NULL_PROGRESS: Final = NullProgress()


class _Bar:
    """A tqdm bar behind the `Progress` protocol."""

    def __init__(self, bar: Any) -> None:
        self._bar = bar

    def grow(self, total: int) -> None:
        if self._bar.total is None or total > self._bar.total:
            self._bar.total = total
            self._bar.refresh()

    def advance(self, count: int = 1) -> None:
        if self._bar.n + count > (self._bar.total or 0):
            self.grow(self._bar.n + count)
        self._bar.update(count)

    @contextlib.contextmanager
    def outside(self) -> Iterator[None]:
        with self._bar.external_write_mode(file=self._bar.fp):
            yield


def _is_terminal(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError, OSError):  # closed, or not a real stream
        return False


@contextlib.contextmanager
def terminal_progress(
    stream: TextIO, desc: str, unit: str, total: int | None = None
) -> Iterator[Progress]:
    """A bar on `stream` when it is a terminal (and tqdm is installed), else nothing."""
    if not _is_terminal(stream):
        yield NULL_PROGRESS
        return
    try:
        from tqdm import tqdm
    except ImportError:  # the progress extra is not installed: no progress line
        yield NULL_PROGRESS
        return
    # The width of the terminal now, as it is resized; a terminal that says it has no
    # width (a new pseudo-terminal nobody sized) gets the usual 80 columns.
    width = {"dynamic_ncols": True} if _columns(stream) else {"ncols": _FALLBACK_COLUMNS}
    with tqdm(total=total, desc=desc, unit=unit, file=stream, **width) as bar:
        yield _Bar(bar)


def _columns(stream: TextIO) -> int:
    try:
        return os.get_terminal_size(stream.fileno()).columns
    except (AttributeError, ValueError, OSError):
        return 0

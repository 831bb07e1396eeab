"""Standard input as it was before the lean path read from it: `replay(read, rest)`.

When the lean submission path (lean/submit.py) hands a command back after reading the
header section, entry.py gives cli.py a stream that yields those bytes first and then the
rest of standard input, so that the general path reads exactly what it would have read
alone. A module of its own: only a fallback pays for the class.
"""

from __future__ import annotations

import io

TYPE_CHECKING = False  # typing is not imported at run time (see lean/__init__.py)
if TYPE_CHECKING:
    from typing import BinaryIO

__all__ = ["replay"]


class _Prefixed(io.RawIOBase):
    """`read` first, then `rest`: standard input as it was before the lean path read it."""

    def __init__(self, read: bytes, rest: BinaryIO) -> None:
        super().__init__()
        self._read = read
        self._rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: object) -> int:
        view = memoryview(buffer)  # type: ignore[arg-type]
        if self._read:
            n = min(len(view), len(self._read))
            view[:n] = self._read[:n]
            self._read = self._read[n:]
            return n
        read1 = getattr(self._rest, "read1", None)
        data = read1(len(view)) if read1 is not None else self._rest.read(len(view))
        view[: len(data)] = data
        return len(data)


def replay(read: bytes, rest: BinaryIO) -> BinaryIO:
    """A binary stream that gives `read`, then what is left of `rest`."""
    return io.BufferedReader(_Prefixed(read, rest))

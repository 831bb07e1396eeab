"""The message body as sendmail reads it: copied from standard input up to a lone dot.

`copy_body(put, src, first, ignore_dots)` hands `put` the content that follows the header
section (`first` is the line that ended it, when there was one): all of `src` with ``-i``
(`ignore_dots`), else the lines up to one that is a lone ``.`` (with or without its line
end). Both submission paths use it: queue/submit.py's body copier and the lean path's
(lean/submit.py), so the lone-dot rule is written once. It imports nothing (lean/__init__.py
says why).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (see lean/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import BinaryIO

__all__ = ["copy_body"]

_CHUNK = 65536


def copy_body(put: Callable[[bytes], None], src: BinaryIO, first: bytes, ignore_dots: bool) -> None:
    if first:
        if not ignore_dots and first in (b".\n", b".\r\n"):
            return
        put(first)
    if ignore_dots:
        while block := src.read(_CHUNK):
            put(block)
        return
    at_start = not first or first.endswith(b"\n")
    while line := src.readline(_CHUNK):
        if at_start and line in (b".\n", b".\r\n", b"."):
            return
        put(line)
        at_start = line.endswith(b"\n")

"""Duplicate recipients dropped as sendmail queues them: case-insensitively, the first kept.

`unique(items)` keeps, of the recipient tuples whose second field (the address as qualified)
is the same but for case, the first one, in order. Both submission paths use it: queue/submit.py
(tuples with the DSN fields) and the lean path's lean/submit.py, so the rule is written once.
It imports nothing at run time (lean/__init__.py says why).
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing is not imported at run time (see lean/__init__.py)
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import TypeVar

    Item = TypeVar("Item", bound=tuple[object, str, *tuple[object, ...]])

__all__ = ["unique"]


def unique(items: Iterable[Item]) -> list[Item]:
    seen: set[str] = set()
    out = []
    for item in items:
        key = item[1].lower()
        if key not in seen:
            seen.add(key)
            out.append(item)
    return out

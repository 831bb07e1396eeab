"""``unionmap:{...}`` and ``pipemap:{...}``: tables made of other tables.

unionmap asks every member and joins all the values found with commas (not found when no
member finds the key). pipemap feeds the key to the first member, its value to the second,
and so on; the last value is the result, and a miss anywhere is a miss. Members are opened
by the caller-supplied `opener` (`registry.open_table`), so this module depends on no kind.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from mailcarrier.tables.base import Table, TableError
from mailcarrier.tables.text import split_braced, strip_group

Opener = Callable[[str], Table]


def _members(spec: str, body: str, opener: Opener) -> list[Table]:
    try:
        names = split_braced(strip_group(body))
    except ValueError as exc:
        raise TableError(f"{spec}: {exc}") from None
    if not names:
        raise TableError(f"{spec}: no member tables")
    return [opener(name) for name in names]


class _Composite(Table):
    def __init__(self, spec: str, body: str, opener: Opener) -> None:
        super().__init__(spec)
        self.members: Sequence[Table] = _members(spec, body, opener)
        # Postfix gives a composite the union of its members' flags.
        self.fixed = any(member.fixed for member in self.members)
        self.pattern = any(member.pattern for member in self.members)
        for member in self.members:
            self.warnings.extend(member.warnings)

    def files(self) -> tuple[Path, ...]:
        return tuple(path for member in self.members for path in member.files())


class UnionTable(_Composite):
    kind = "unionmap"

    def lookup(self, key: str) -> str | None:
        found = [value for member in self.members if (value := member.lookup(key)) is not None]
        return ",".join(found) if found else None


class PipeTable(_Composite):
    kind = "pipemap"

    def lookup(self, key: str) -> str | None:
        value: str | None = key
        for member in self.members:
            assert value is not None
            value = member.lookup(value)
            if value is None:
                return None
        return value

"""`frozen_view`: the class decorator of the generated parameter views (views.py).

A view has one attribute per parameter, about four hundred of them. `dataclasses.dataclass`
would build them by generating and compiling an ``__init__``, ``__eq__`` and ``__repr__``
with as many arguments as there are fields, and, for slots, creating the class twice: that
was the largest single cost of starting any command (``mailcarrier sendmail`` included). A
view needs little of it: built once per Settings with every field by keyword, then read.
`frozen_view` makes a slotted class from the annotations whose methods loop over the field
names, with a dataclass's behaviour where it is used: keyword construction that rejects a
missing or unknown field, immutability, equality and hashing by value, a readable repr, and
pickling. ``typing.dataclass_transform`` tells mypy that it behaves like a frozen dataclass.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import FrozenInstanceError
from typing import Any, TypeVar, dataclass_transform

__all__ = ["frozen_view", "view_fields"]

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, kw_only_default=True)
def frozen_view(cls: type[_T]) -> type[_T]:
    """A slotted, immutable class with the fields `cls` annotates (in their order)."""
    annotations = inspect.get_annotations(cls)
    names = tuple(annotations)
    wanted = frozenset(names)
    namespace: dict[str, Any] = {
        "__slots__": names,
        "__doc__": cls.__doc__,
        "__module__": cls.__module__,
        "__qualname__": cls.__qualname__,
        "__annotations__": annotations,
        "__match_args__": (),
        "__init__": _init(cls.__name__, names, wanted),
        "__setattr__": _refuse,
        "__delattr__": _refuse,
        "__eq__": _eq,
        "__hash__": _hash,
        "__repr__": _repr,
        "__getstate__": _values,
        "__setstate__": _setstate,
    }
    view: type[_T] = type(cls.__name__, (), namespace)
    return view


def view_fields(view: type) -> tuple[str, ...]:
    """The field names of a `frozen_view` class, in their order."""
    names: tuple[str, ...] = view.__slots__  # type: ignore[attr-defined]
    return names


def _init(name: str, names: tuple[str, ...], wanted: frozenset[str]) -> Callable[..., None]:
    def __init__(self: object, **values: Any) -> None:
        if values.keys() != wanted:
            missing = sorted(wanted - values.keys())
            unknown = sorted(values.keys() - wanted)
            raise TypeError(f"{name}(): missing fields {missing}, unknown fields {unknown}")
        for field in names:
            object.__setattr__(self, field, values[field])

    return __init__


def _refuse(self: object, name: str, *args: Any) -> None:
    raise FrozenInstanceError(f"cannot assign to field {name!r}")


def _values(self: object) -> tuple[Any, ...]:
    return tuple(getattr(self, field) for field in view_fields(type(self)))


def _setstate(self: object, state: tuple[Any, ...]) -> None:
    for field, value in zip(view_fields(type(self)), state, strict=True):
        object.__setattr__(self, field, value)


def _eq(self: object, other: object) -> bool:
    return type(other) is type(self) and _values(self) == _values(other)


def _hash(self: object) -> int:
    return hash(_values(self))


def _repr(self: object) -> str:
    fields = view_fields(type(self))
    inner = ", ".join(f"{field}={getattr(self, field)!r}" for field in fields)
    return f"{type(self).__qualname__}({inner})"

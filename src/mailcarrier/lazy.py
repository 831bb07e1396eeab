"""Public names of a package loaded on first use (PEP 562), for its ``__init__.py``.

A package's ``__init__`` that imported every module of its public names made any import of
the package (``mailcarrier.queue.ids``, ``mailcarrier.tables.spec``) load all of it: the
scheduler for a submission, every table kind for a syntax check, the Redis engine to name a
node. `lazy_names` gives the package a module ``__getattr__`` that imports a name's module
when the name is first read (and keeps the value in the package), a submodule as Python's
import system would, and a ``__dir__`` that lists the public names. Used by mailcarrier/,
tables/, queue/ and fleet/; it imports nothing of mailcarrier.
"""

from __future__ import annotations

# Types only: typing and collections.abc are not imported at run time, since every import of
# the package runs this module first, the lean ``sendmail`` path too (entry.py, lean/).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, MutableMapping, Sequence
    from typing import Any

__all__ = ["lazy_names"]


def lazy_names(
    package: str,
    homes: Mapping[str, Sequence[str]],
    namespace: MutableMapping[str, Any],
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """(``__getattr__``, ``__dir__``) for `package`, whose public names live in the modules
    of `homes` (module name, relative to the package, -> its names); `namespace` is the
    package's ``globals()``."""
    home_of = {name: module for module, names in homes.items() for name in names}

    def __getattr__(name: str) -> Any:
        import importlib  # here: importlib loads warnings, which no lean submission needs

        module = home_of.get(name)
        if module is None:
            try:
                return importlib.import_module(f"{package}.{name}")
            except ModuleNotFoundError as exc:
                if exc.name != f"{package}.{name}":
                    raise
                raise AttributeError(f"module {package!r} has no attribute {name!r}") from None
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *home_of})

    return __getattr__, __dir__

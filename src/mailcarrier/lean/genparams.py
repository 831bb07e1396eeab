"""Writes lean/paramtable.py, what the lean submission path knows of the parameter table:
``python -m mailcarrier.lean.genparams`` after a parameter is declared, changed or removed in
config/params_*.py.

For each parameter its type, range, default unit, choices and extra check (config/convert.py
checks a value with them), the names that some default refers to (``$name``: a value set
for one of them changes another parameter's value, so the lean path leaves such files to
the general path) and the per-transport suffixes (config/settings.py `_per_transport`).
tests/lean/test_paramtable.py fails when paramtable.py is not what this module renders.
Nothing imports this module at run time.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Final

from mailcarrier.config.params import PARAMS, PER_TRANSPORT, ParamType

__all__ = ["render"]

_KINDS: Final = {
    ParamType.BOOL: "bool",
    ParamType.INT: "int",
    ParamType.SIZE: "int",
    ParamType.TIME: "time",
    ParamType.STRING: "string",
    ParamType.LIST: "list",
    ParamType.MAPS: "maps",
}
# $name, ${name...}, $(name...): what a default may refer to (config/expand.py).
_REFERENCE: Final = re.compile(r"\$[{(]?([A-Za-z0-9_]+)")

_HEADER: Final = '''"""The parameter table as the lean submission path checks main.cf against
it, GENERATED from config/params_*.py by `python -m mailcarrier.lean.genparams`: do not edit
by hand (tests/lean/test_paramtable.py checks it is current). A line per parameter.

`TABLE`: name -> (kind, minimum, maximum, unit, choices, check), as config/paramtype.py
`Param` has them ("read_only" for a parameter main.cf cannot set). `REFERENCED`: the names
whose value flows into another parameter's default otherwise than as the whole value of a
parameter of the same kind (genparams.py). `PER_TRANSPORT`: the suffixes of
config/params.py `PER_TRANSPORT`.
"""

# ruff: noqa: E501
# fmt: off

'''


def render() -> str:
    lines = [_HEADER.rstrip("\n"), "", "TABLE = {"]
    for name, param in sorted(PARAMS.items()):
        kind = "read_only" if param.read_only else _KINDS[param.type]
        entry = (kind, param.minimum, param.maximum, param.unit, param.choices, param.check)
        lines.append(f"    {name!r}: {entry!r},")
    lines.append("}")
    referenced = sorted(_referenced())
    lines.append("REFERENCED = frozenset(")
    lines.append("    {")
    lines.extend(f"        {name!r}," for name in referenced)
    lines.append("    }")
    lines.append(")")
    lines.append(f"PER_TRANSPORT = {tuple(sorted(PER_TRANSPORT))!r}")
    return "\n".join(lines) + "\n"


def _spec(name: str) -> tuple[object, ...]:
    param = PARAMS[name]
    return (param.type, param.minimum, param.maximum, param.unit, param.choices, param.check)


def _referenced() -> set[str]:
    """The names whose value, set in main.cf, could change whether another parameter's
    value is valid: referred to by a default that is not exactly ``$name`` (or ``${name}``,
    ``$(name)``) of a parameter of the same kind, range, unit, choices and check, or by one
    that is, itself referred to so (a value flows on through mirrors)."""
    users: dict[str, list[str]] = {}
    for name, param in PARAMS.items():
        for mentioned in _REFERENCE.findall(param.default):
            users.setdefault(mentioned, []).append(name)
    unsafe: set[str] = set()
    changed = True
    while changed:
        changed = False
        for mentioned, names in users.items():
            if mentioned in unsafe:
                continue
            for name in names:
                default = PARAMS[name].default
                mirror = default in (f"${mentioned}", f"${{{mentioned}}}", f"$({mentioned})")
                same = mentioned in PARAMS and _spec(name) == _spec(mentioned)
                if not (mirror and same) or name in unsafe:
                    unsafe.add(mentioned)
                    changed = True
                    break
    return unsafe


def main() -> None:
    target = Path(__file__).with_name("paramtable.py")
    target.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")


if __name__ == "__main__":
    main()

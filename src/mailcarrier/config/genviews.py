"""Writes config/views.py, the typed views of the parameter table: ``python -m
mailcarrier.config.genviews`` after a parameter is declared, changed or removed in params_*.py.

One frozen field per parameter (viewbase.frozen_view: a dataclass's behaviour, cheaper to
build) makes a misspelt name a type error (mypy) instead of a KeyError at run time, and typed
values need no cast at each read. The generated module has `MainParams` (every parameter by its
Postfix name), `ClientParams` (the smtp_ parameters of one delivery transport by their suffix:
the lmtp_ twin's value for LMTP) and the `Literal` types of the names that `open_maps` takes.
tests/config/test_views.py fails when views.py is not what this module renders from the table.
Nothing imports this module at run time.
"""

from __future__ import annotations

import keyword
import sys
from pathlib import Path
from typing import Final

from mailcarrier.config.params import PARAMS, ParamType

__all__ = ["RENAMED", "client_suffixes", "render"]

# Postfix names that are not Python identifiers, and the attribute that stands for each.
RENAMED: Final = {"2bounce_notice_recipient": "double_bounce_notice_recipient"}

_PYTHON_TYPES: Final = {
    ParamType.BOOL: "bool",
    ParamType.INT: "int",
    ParamType.SIZE: "int",
    ParamType.TIME: "float",
    ParamType.STRING: "str",
    ParamType.LIST: "tuple[str, ...]",
    ParamType.MAPS: "tuple[str, ...]",
}

_HEADER: Final = '''"""Typed views of the parameter table, GENERATED from params_*.py by
`python -m mailcarrier.config.genviews`: do not edit by hand (tests/config/test_views.py checks
it is current). It is longer than the project's ~500 lines for one reason: a line per parameter.

`MainParams` has one attribute per parameter, by its Postfix name (`settings.params.soft_bounce`);
`ClientParams` has the smtp_ parameters of one delivery transport by their suffix
(`agent.params.connect_timeout` is smtp_connect_timeout for SMTP, lmtp_connect_timeout for LMTP).
Values are converted and validated by settings.py; times are seconds, sizes bytes, lists tuples.
"""

from __future__ import annotations

from typing import Literal

from mailcarrier.config.viewbase import frozen_view

__all__ = ["RENAMED", "ClientMapsName", "ClientParams", "MainParams", "MapsName"]
'''


def client_suffixes() -> list[str]:
    """The suffixes of every smtp_ parameter: the fields of `ClientParams`."""
    return sorted(name.removeprefix("smtp_") for name in PARAMS if name.startswith("smtp_"))


def _field(name: str) -> str:
    name = RENAMED.get(name, name)
    if not name.isidentifier() or keyword.iskeyword(name):
        raise ValueError(f"parameter {name} is not a Python identifier")
    return name


def _literal(names: list[str]) -> str:
    inner = "".join(f'    "{n}",\n' for n in names)
    return f"Literal[\n{inner}]"


def render() -> str:
    """The text of views.py for the current table."""
    main = [
        f"    {_field(n)}: {_PYTHON_TYPES[PARAMS[n].type]}"
        for n in sorted(PARAMS, key=lambda n: RENAMED.get(n, n))
    ]
    client = [
        f"    {_field(s)}: {_PYTHON_TYPES[PARAMS['smtp_' + s].type]}" for s in client_suffixes()
    ]
    maps = sorted(n for n, p in PARAMS.items() if p.type is ParamType.MAPS)
    client_maps = [n.removeprefix("smtp_") for n in maps if n.startswith("smtp_")]
    parts = [
        _HEADER,
        "# Postfix names that are not Python identifiers: the attribute of each.",
        "RENAMED: dict[str, str] = {"
        + ", ".join(f'"{k}": "{v}"' for k, v in RENAMED.items())
        + "}",
        "",
        "",
        "@frozen_view",
        "class MainParams:",
        '    """Every parameter, by its Postfix name."""',
        "",
        *main,
        "",
        "",
        "@frozen_view",
        "class ClientParams:",
        '    """The smtp_ parameters of one delivery transport, by their suffix."""',
        "",
        *client,
        "",
        "",
        "# The lookup-table parameters, by name (Settings.open_maps) and by smtp_ suffix",
        "# (AgentSettings.open_maps).",
        f"MapsName = {_literal(maps)}",
        f"ClientMapsName = {_literal(client_maps)}",
    ]
    return "\n".join(parts) + "\n"


def main() -> None:
    target = Path(__file__).with_name("views.py")
    target.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {target}\n")


if __name__ == "__main__":
    main()

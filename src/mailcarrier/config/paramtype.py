"""Building blocks of the parameter table: `ParamType`, `Param` and the `declare` helper.

This module only defines the vocabulary; the declarations themselves live in `params_smtp.py`
(protocol and connection behaviour), `params_tls.py` (TLS and SASL) and `params_system.py`
(identity, queue, scheduler, notification), and `params.py` assembles them into `PARAMS`.
Conversion and validation of values happen in `convert.py` and `settings.py`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final


class ParamType(enum.Enum):
    BOOL = "bool"  # yes / no
    INT = "int"
    TIME = "time"  # Postfix units s, m, h, d, w; bare numbers use the parameter's default unit
    SIZE = "size"  # bytes
    STRING = "string"
    LIST = "list"  # separated by commas and/or white space
    MAPS = "maps"  # list of type:name lookup tables


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    type: ParamType
    default: str
    # For smtp_ parameters: the name of the LMTP twin ("" when there is none).
    lmtp_name: str = ""
    # Allowed values for enumerations (STRING) or list members (LIST); empty = free-form.
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    # Default unit for a TIME given as a bare number ("s" unless Postfix says otherwise).
    unit: str = "s"
    # Why our default differs from the seed manual's, or other operator-facing notes.
    note: str = ""
    maximum: int | None = None
    # Set by the program at run time (process_id, process_name); main.cf cannot change it.
    read_only: bool = False
    # An extra check of the value, by name (see convert.CHECKS): "ipv4", "ipv6", "linelimit".
    check: str = ""


# "$smtp_x" / "${smtp_x}" in an smtp_ default becomes "$lmtp_x" in the lmtp twin's default,
# because Postfix derives both name spaces from one table.
_SMTP_REF: Final = re.compile(r"(\$\{?\(?)smtp_")


def declare(
    name: str,
    type_: ParamType,
    default: str,
    *,
    mirror: bool | str = False,
    lmtp_default: str | None = None,
    choices: tuple[str, ...] = (),
    minimum: int | None = None,
    maximum: int | None = None,
    unit: str = "s",
    note: str = "",
    read_only: bool = False,
    check: str = "",
) -> list[Param]:
    """Declare a parameter and, when `mirror` is set, its lmtp_ twin."""
    lmtp_name = ""
    if mirror:
        lmtp_name = mirror if isinstance(mirror, str) else "lmtp_" + name.removeprefix("smtp_")
    first = Param(
        name, type_, default, lmtp_name, choices, minimum, unit, note, maximum, read_only, check
    )
    if not lmtp_name:
        return [first]
    twin_default = _SMTP_REF.sub(r"\1lmtp_", default) if lmtp_default is None else lmtp_default
    twin = Param(
        lmtp_name, type_, twin_default, "", choices, minimum, unit, note, maximum, read_only, check
    )
    return [first, twin]


B: Final = ParamType.BOOL
N: Final = ParamType.INT
T: Final = ParamType.TIME
S: Final = ParamType.SIZE
STR: Final = ParamType.STRING
L: Final = ParamType.LIST
M: Final = ParamType.MAPS

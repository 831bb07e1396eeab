"""The declarative parameter table: every main.cf parameter mailcarrier knows.

Each `Param` has a Postfix name, a type, and a default written in main.cf syntax (it may refer
to other parameters with ``$name``). `smtp_` parameters that have an LMTP twin are declared with
`mirror=True` (or an explicit `lmtp_name`) and get an ``lmtp_`` entry with the same type. This
module only declares; `settings.py` parses and validates, `parser.py` reads main.cf.
"""

from __future__ import annotations

import enum
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


def _p(
    name: str,
    type_: ParamType,
    default: str,
    *,
    mirror: bool | str = False,
    lmtp_default: str | None = None,
    choices: tuple[str, ...] = (),
    minimum: int | None = None,
    unit: str = "s",
    note: str = "",
) -> list[Param]:
    """Declare a parameter and, when `mirror` is set, its lmtp_ twin."""
    lmtp_name = ""
    if mirror:
        lmtp_name = mirror if isinstance(mirror, str) else "lmtp_" + name.removeprefix("smtp_")
    out = [Param(name, type_, default, lmtp_name, choices, minimum, unit, note)]
    if lmtp_name:
        out.append(
            Param(
                lmtp_name,
                type_,
                default if lmtp_default is None else lmtp_default,
                "",
                choices,
                minimum,
                unit,
                note,
            )
        )
    return out


B, I, T, S, STR, L, M = (
    ParamType.BOOL,
    ParamType.INT,
    ParamType.TIME,
    ParamType.SIZE,
    ParamType.STRING,
    ParamType.LIST,
    ParamType.MAPS,
)

_DECLS: list[list[Param]] = [
    # --- identity and logging ---------------------------------------------------------
    _p("myhostname", STR, ""),  # empty: the system's host name, resolved at load time
    _p("mydomain", STR, ""),
    _p("syslog_name", STR, "${multi_instance_name:postfix}"),
    _p("multi_instance_name", STR, ""),
    _p("syslog_facility", STR, "mail"),
    _p("maillog_file", STR, ""),
    _p("delay_logging_resolution_limit", I, "2", minimum=0),
    _p("soft_bounce", B, "no"),
    # --- protocol compatibility -------------------------------------------------------
    _p("smtp_always_send_ehlo", B, "yes", mirror=True),
    _p("smtp_never_send_ehlo", B, "no", mirror=True),
    _p("smtp_quote_rfc821_envelope", B, "yes", mirror=True),
    _p("smtp_skip_5xx_greeting", B, "yes", mirror=True),
    _p("smtp_skip_quit_response", B, "yes", mirror=True),
    _p("smtp_line_length_limit", I, "990", mirror=True, minimum=0),
    _p("smtp_helo_name", STR, "$myhostname", mirror="lmtp_lhlo_name"),
    _p("smtp_bind_address", STR, "", mirror=True),
    _p("smtp_bind_address6", STR, "", mirror=True),
    _p("lmtp_tcp_port", STR, "24"),
    # --- time limits ------------------------------------------------------------------
    _p("smtp_connect_timeout", T, "30s", mirror=True, lmtp_default="0s"),
    _p("smtp_helo_timeout", T, "300s", mirror="lmtp_lhlo_timeout"),
    _p("smtp_mail_timeout", T, "300s", mirror=True),
    _p("smtp_rcpt_timeout", T, "300s", mirror=True),
    _p("smtp_data_init_timeout", T, "120s", mirror=True),
    _p("smtp_data_xfer_timeout", T, "180s", mirror=True),
    _p("smtp_data_done_timeout", T, "600s", mirror=True),
    _p("smtp_rset_timeout", T, "20s", mirror=True),
    _p("smtp_quit_timeout", T, "300s", mirror=True),
]

PARAMS: Final[dict[str, Param]] = {p.name: p for group in _DECLS for p in group}

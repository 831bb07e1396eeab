"""``mailcarrier conf -P``: the ``-o`` settings of master.cf services, as ``postconf -P``.

Each line is ``service/type/name = value``, services in file order and each service's
settings sorted by name; ``-x`` expands ``$name`` in the values (against main.cf, the
service's other ``-o`` settings and ``service_name``: the value the service's delivery
agent uses), ``-h`` prints values only, ``--json`` one object. Patterns
``service[/type[/name]]`` select (a missing or ``*`` part matches anything; a pattern that
matches nothing is a warning, as in postconf). With ``--notes`` a ``#`` line says which
services are not delivery transports (their command is not smtp or lmtp: mailcarrier does
not run them). Neighbours: postconf.py (the rest of ``conf``), mastercf.py (the parser).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from mailcarrier.config.expand import Expander, ExpandError
from mailcarrier.config.mastercf import MasterService
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError, UsageError
from mailcarrier.printable import json_safe, printable

__all__ = ["show_master_params"]


def _pattern(text: str) -> tuple[str, str, str]:
    parts = text.split("/")
    if len(parts) > 3 or not all(parts):
        raise UsageError("conf: -P needs service_name[/type[/parameter]]")
    name, kind, param = (*parts, "*", "*")[:3]
    return name, kind, param


def _matches(part: str, value: str) -> bool:
    return part in ("*", value)


def _value(settings: Settings, service: MasterService, name: str, value: str) -> str:
    """`value` with $name expanded as the service sees its configuration."""
    own = dict(service.parameters)
    own["service_name"] = service.name

    def lookup(ref: str) -> str | None:
        if ref in own:
            return own[ref]
        return settings.raw(ref) or None

    try:
        return Expander(lookup).text(value)
    except ExpandError as exc:
        raise ConfigError(
            f"service {service.name}/{service.type}: parameter {name}: {exc}",
            filename=service.filename,
            lineno=service.lineno,
        ) from None


def show_master_params(
    settings: Settings,
    patterns: Sequence[str],
    *,
    flags: set[str],
    as_json: bool,
    notes: bool,
    stdout: TextIO,
    stderr: TextIO,
) -> None:
    wanted = [_pattern(p) for p in patterns] or [("*", "*", "*")]
    hits = [0] * len(wanted)
    rows: list[tuple[str, str]] = []
    for service in settings.master.services if settings.master is not None else ():
        shown: dict[str, str] = {}
        for name, value in sorted(service.parameters):
            for index, (p_name, p_type, p_param) in enumerate(wanted):
                if all(
                    _matches(a, b)
                    for a, b in ((p_name, service.name), (p_type, service.type), (p_param, name))
                ):
                    hits[index] += 1
                    shown[name] = value
        for name, value in shown.items():
            if "x" in flags:
                value = _value(settings, service, name, value)
            rows.append((f"{service.name}/{service.type}/{name}", value))
        if notes and not service.is_transport and (shown or not patterns):
            what = f"{service.name}/{service.type}"
            rows.append(("#", f"{what}: command {service.command} is not used by mailcarrier"))
    for pattern, count in zip(patterns, hits[: len(patterns)], strict=True):
        if count == 0:
            print(printable(f'mailcarrier: warning: unmatched request: "{pattern}"'), file=stderr)
    if as_json:
        json.dump(json_safe({k: v for k, v in rows if k != "#"}), stdout, indent=2)
        stdout.write("\n")
        return
    for key, value in rows:
        if key == "#":
            print(f"# {value}", file=stdout)
        else:
            print(value if "h" in flags else f"{key} = {value}".rstrip(), file=stdout)

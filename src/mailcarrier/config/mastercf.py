"""master.cf reader: Postfix's service table, and which of its services are delivery transports.

`read_master_cf(path)` parses CONFIG_DIR/master.cf as master(8) and postconf(1) read it:
logical lines (a line starting with white space continues the previous one; blank lines and
lines whose first non-blank character is ``#`` are skipped, also between continuation
lines), then the eight columns (service, type, private, unpriv, chroot, wakeup, maxproc,
command) split at white space, then the command's arguments, where ``{ text }`` is one
argument with the braces and the blanks inside them removed. The daemon options before the
first other argument are read as the daemon's getopt reads them: ``-o name=value``,
``-oname=value`` and ``-o { name = value }`` (split as split_nameval splits it), ``-i`` and
``-m`` (max_idle and max_use). Any problem is one `ConfigError` naming the file and line.

A `unix` service whose command is ``smtp`` or ``lmtp`` (or ``mailcarrier-smtp`` /
``mailcarrier-lmtp``) is a delivery transport (`MasterCf.transports`): its name can be used
in transport_maps, default_transport, ... and its ``-o`` settings override main.cf for the
mail delivered through it. Other services (smtpd, pickup, pipe, ...) are kept but not used.
The ``-o`` values stay unexpanded here: settings.py expands them against main.cf, with
``$service_name`` set to the service, as the Postfix daemon does. In Postfix-native mode
master.cf is Postfix's and master(8) passes the overrides itself (postfix/options.py): it is
never read here then.
"""

from __future__ import annotations

import getopt
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailcarrier.config.parser import NAME_RE, RawSetting
from mailcarrier.errors import ConfigError
from mailcarrier.tables.cfgfile import split_nameval

__all__ = ["AGENT_COMMANDS", "MasterCf", "MasterService", "parse_master_cf", "read_master_cf"]

# Command (basename) -> the client it runs.
AGENT_COMMANDS: Final = {
    "smtp": "smtp",
    "lmtp": "lmtp",
    "mailcarrier-smtp": "smtp",
    "mailcarrier-lmtp": "lmtp",
}
_TYPES: Final = ("unix", "inet", "fifo", "pass", "unix-dgram")
_BOOL_FIELDS: Final = ("private", "unprivileged", "chroot")
# The getopt string of Postfix's single-threaded server skeleton, which smtp(8) uses.
_OPTSTRING: Final = "cdDi:lm:n:o:r:s:St:uvVz"
_BLANKS: Final = " \t\r\n"
_WAKEUP: Final = re.compile(r"-|[0-9]+\??")
_MAXPROC: Final = re.compile(r"-|[0-9]+")


@dataclass(frozen=True, slots=True)
class MasterService:
    """One master.cf entry: its columns, its arguments (braces removed) and, for a delivery
    transport, its ``-o`` settings (with master.cf's name and line, for messages)."""

    name: str
    type: str
    command: str
    args: tuple[str, ...]
    overrides: tuple[RawSetting, ...]
    filename: str
    lineno: int
    # Every service's -o settings, as postconf -P reads them (any command, nothing checked).
    parameters: tuple[tuple[str, str], ...] = ()

    @property
    def kind(self) -> str:
        """``smtp`` or ``lmtp`` for a service that runs a delivery client, else ""."""
        return AGENT_COMMANDS.get(os.path.basename(self.command), "")

    @property
    def is_transport(self) -> bool:
        return self.type == "unix" and bool(self.kind)

    @property
    def where(self) -> str:
        return f"{self.filename}:{self.lineno}"


@dataclass(frozen=True, slots=True)
class MasterCf:
    filename: str
    services: tuple[MasterService, ...]

    @property
    def transports(self) -> dict[str, MasterService]:
        """The delivery transports, by service name."""
        return {s.name: s for s in self.services if s.is_transport}


def _logical_lines(text: str, filename: str) -> list[tuple[int, str]]:
    """(first line number, text) of each logical line, as readllines() joins them."""
    out: list[tuple[int, str]] = []
    for lineno, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip(_BLANKS)
        if not stripped or stripped.startswith("#"):
            continue
        if line[0] in _BLANKS:
            if not out:
                raise ConfigError(
                    "continuation line without a preceding service",
                    filename=filename,
                    lineno=lineno,
                )
            first, joined = out[-1]
            out[-1] = (first, joined + " " + stripped)
            continue
        out.append((lineno, stripped))
    return out


def _tokens(text: str) -> list[str]:
    """Split at blanks outside ``{}`` (mystrtokq); a token starting with ``{`` loses its
    braces and the blanks just inside them (extpar)."""
    out: list[str] = []
    pos, end = 0, len(text)
    while pos < end:
        while pos < end and text[pos] in _BLANKS:
            pos += 1
        if pos >= end:
            break
        start, level = pos, 0
        while pos < end:
            char = text[pos]
            if char == "{":
                level += 1
            elif char == "}" and level > 0:
                level -= 1
            elif level == 0 and char in _BLANKS:
                break
            pos += 1
        out.append(text[start:pos])
    return out


def _unbrace(token: str) -> str:
    if not token.startswith("{"):
        return token
    level = 0
    for index, char in enumerate(token):
        if char == "{":
            level += 1
        elif char == "}":
            level -= 1
            if level == 0:
                if index != len(token) - 1:
                    raise ValueError(f"syntax error after '}}' in \"{token}\"")
                return token[1:index].strip(_BLANKS)
    raise ValueError(f"missing '}}' in \"{token}\"")


def _check_columns(fields: list[str]) -> None:
    names = ("service", "transport type", *_BOOL_FIELDS, "wakeup_time", "max_proc", "command")
    if len(fields) < len(names):
        raise ValueError(f'missing "{names[len(fields)]}" field')
    if fields[1] not in _TYPES:
        raise ValueError(f"bad transport type: {fields[1]}")
    for name, value in zip(_BOOL_FIELDS, fields[2:5], strict=True):
        if value not in ("y", "n", "-"):
            raise ValueError(f'field "{name}": bad value: "{value}"')
    if not _WAKEUP.fullmatch(fields[5]):
        raise ValueError(f'field "wakeup_time": bad value: "{fields[5]}"')
    if not _MAXPROC.fullmatch(fields[6]):
        raise ValueError(f'field "max_proc": bad value: "{fields[6]}"')


def _overrides(args: list[str], filename: str, lineno: int) -> tuple[RawSetting, ...]:
    """The ``-o`` (and ``-i``, ``-m``) settings of a delivery agent's arguments."""
    try:
        pairs, _rest = getopt.getopt(args, _OPTSTRING)
    except getopt.GetoptError as exc:
        if exc.opt and "requires argument" in exc.msg:
            raise ValueError(f"option -{exc.opt} requires an argument") from None
        raise ValueError(f"invalid option: -{exc.opt}" if exc.opt else str(exc)) from None
    out: list[RawSetting] = []
    for option, value in pairs:
        if option == "-o":
            try:
                name, text = split_nameval(value)
            except ValueError as exc:
                raise ValueError(f'invalid "-o {value}" option value: {exc}') from None
            if not NAME_RE.fullmatch(name):
                raise ValueError(f'-o {value}: bad parameter name "{name}"')
        elif option in ("-i", "-m"):
            name, text = ("max_idle" if option == "-i" else "max_use"), value
        else:
            continue
        out.append(RawSetting(name, text, filename, lineno))
    return tuple(out)


def _service(lineno: int, text: str, filename: str) -> MasterService:
    fields = text.split(None, 7)
    _check_columns(fields)
    args = [_unbrace(t) for t in _tokens(fields[7])]
    command, args = args[0], args[1:]
    kind = AGENT_COMMANDS.get(os.path.basename(command), "")
    overrides = _overrides(args, filename, lineno) if kind and fields[1] == "unix" else ()
    return MasterService(
        fields[0], fields[1], command, tuple(args), overrides, filename, lineno, _parameters(args)
    )


def _parameters(args: list[str]) -> tuple[tuple[str, str], ...]:
    """The ``-o`` settings among the leading options, as postconf normalises them: other
    options and -o values that do not split are passed over."""
    out: list[tuple[str, str]] = []
    index = 0
    while index < len(args) and args[index].startswith("-") and args[index] != "--":
        arg = args[index]
        at = arg.find("o", 1)
        index += 1
        if at < 0:
            continue
        value = arg[at + 1 :]
        if not value and index < len(args):
            value, index = args[index], index + 1
        try:
            out.append(split_nameval(value))
        except ValueError:
            continue
    return tuple(out)


def parse_master_cf(text: str, filename: str = "master.cf") -> MasterCf:
    services: list[MasterService] = []
    seen: dict[tuple[str, str], int] = {}
    for lineno, line in _logical_lines(text, filename):
        try:
            service = _service(lineno, line, filename)
        except ValueError as exc:
            raise ConfigError(str(exc), filename=filename, lineno=lineno) from None
        first = seen.setdefault((service.name, service.type), lineno)
        if first != lineno:
            raise ConfigError(
                f"service {service.name}/{service.type} is defined again (first at line {first})",
                filename=filename,
                lineno=lineno,
            )
        services.append(service)
    return MasterCf(filename, tuple(services))


def read_master_cf(path: Path) -> MasterCf | None:
    """CONFIG_DIR/master.cf, or None when there is none."""
    try:
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", filename=str(path)) from exc
    return parse_master_cf(text, str(path))

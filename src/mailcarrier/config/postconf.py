"""``mailcarrier conf``: show and edit main.cf parameters, like postconf(1).

    conf                   every parameter with its effective (unexpanded) value
    conf -n                only parameters set in main.cf or with -o
    conf -d                defaults
    conf NAME...           selected parameters
    conf -x ...            expand $name references in the values shown
    conf -h ...            values only, without "name = "
    conf --json ...        one JSON object {name: value} instead of lines
    conf -e NAME=VALUE...  edit main.cf in place (comments and order kept; atomic)
    conf -X NAME...        remove settings from main.cf
    conf -P [-x] [SERVICE[/TYPE[/NAME]]...]  master.cf services' -o settings (postconf_master.py)

Entry point for the CLI: ``conf_main(argv, config_dir=None, overrides=None, stdout=...,
stderr=...) -> int`` with `config_dir` the ``-c`` directory (None: the per-user default) and
`overrides` the ``-o`` settings. Returns 0, 64 (usage) or 78 (configuration error). Errors
are one line on stderr; warnings ("unused parameter") are one line each. An edit that would
leave main.cf invalid is refused and nothing is written.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from mailcarrier.config.defaults import default_config_directory
from mailcarrier.config.edit import edit_main_cf, edited_text
from mailcarrier.config.params import PARAMS
from mailcarrier.config.parser import NAME_RE, parse_main_cf
from mailcarrier.config.postconf_master import show_master_params
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError, UsageError
from mailcarrier.printable import json_safe, printable

EX_OK, EX_USAGE, EX_CONFIG = 0, 64, 78
PROG = "mailcarrier"
_FLAGS = frozenset("ndxheXP")
HELP = """\
usage: mailcarrier conf [-n | -d] [-x] [-h] [--json] [NAME...]
       mailcarrier conf -e NAME=VALUE...
       mailcarrier conf -X NAME...
       mailcarrier conf -P [-x] [-h] [--json] [SERVICE[/TYPE[/NAME]]...]

Show main.cf parameters as postconf(1) does: every parameter with its value, or the NAMEs
given. Options keep postconf's meaning:
  -n      only the parameters set in main.cf (or with -o)
  -d      the default values, not the ones in force
  -x      expand $name references in the values shown
  -h      the values only, without "NAME = "
  --json  one JSON object (NAME: value) instead of lines
  --notes after each parameter whose default differs from the smtp(8) manual (or that
          is mailcarrier's own), a "# " line saying why
  -e      edit main.cf: set each NAME=VALUE (the file is checked as a whole first)
  -X      edit main.cf: remove each NAME
  -P      the -o settings of master.cf's services (service/type/name = value); with -x,
          the values the service uses; --notes says which services mailcarrier does not run
  --help  this text
The configuration directory is -c DIR before the command (mailcarrier -c DIR conf ...),
else $MAIL_CONFIG, else the default; -o NAME=VALUE before the command overrides main.cf."""


@dataclass
class _Options:
    flags: set[str] = field(default_factory=set)
    json: bool = False
    notes: bool = False
    names: list[str] = field(default_factory=list)


def _parse_args(argv: Sequence[str]) -> _Options:
    opts = _Options()
    for arg in argv:
        if arg == "--json":
            opts.json = True
        elif arg == "--notes":
            opts.notes = True
        elif arg.startswith("-") and len(arg) > 1 and not opts.names:
            for flag in arg[1:]:
                if flag not in _FLAGS:
                    raise UsageError(f"conf: unknown option -{flag}")
                opts.flags.add(flag)
        else:
            opts.names.append(arg)
    if len(opts.flags & {"e", "X", "n", "d", "P"}) > 1:
        raise UsageError("conf: use only one of -e, -X, -n, -d, -P")
    if opts.flags & {"e", "X"} and not opts.names:
        raise UsageError("conf: -e and -X need at least one parameter")
    return opts


def _edit(opts: _Options, directory: Path, overrides: Mapping[str, str]) -> None:
    changes: dict[str, str | None] = {}
    for item in opts.names:
        if "e" in opts.flags:
            name, sep, value = item.partition("=")
            name = name.strip()
            if not sep:
                raise UsageError(f'conf -e: expected NAME=VALUE, not "{item}"')
            changes[name] = value.strip()
        else:
            name = item.strip()
            changes[name] = None
        if not NAME_RE.fullmatch(name):
            raise UsageError(f'conf: bad parameter name "{name}"')
    path = directory / "main.cf"
    try:
        old = path.read_text(encoding="utf-8", errors="surrogateescape")
    except FileNotFoundError:
        old = ""
    # Validate the edited file as a whole before anything touches the disk.
    new = edited_text(old, changes, str(path))
    raw = parse_main_cf(new, str(path))
    Settings(raw, directory).with_overrides(overrides)
    edit_main_cf(path, changes)


def _names(opts: _Options, settings: Settings, stderr: TextIO) -> list[str]:
    if "n" in opts.flags:
        return sorted(settings.non_default())
    if not opts.names:
        if "d" in opts.flags:
            return sorted(PARAMS)
        return sorted(set(PARAMS) | set(settings.non_default()))
    known = []
    for name in opts.names:
        if name in PARAMS or ("d" not in opts.flags and settings.is_set(name)):
            known.append(name)
        else:
            print(printable(f"{PROG}: warning: {name}: unknown parameter"), file=stderr)
    return known


def _rows(opts: _Options, settings: Settings, stderr: TextIO) -> list[tuple[str, str]]:
    expand = "x" in opts.flags
    names = _names(opts, settings, stderr)
    if "d" in opts.flags:
        base = Settings.defaults()
        return [(n, base.expanded(n) if expand else base.default(n)) for n in names]
    return [(n, settings.expanded(n) if expand else settings.raw(n)) for n in names]


def _show(opts: _Options, settings: Settings, stdout: TextIO, stderr: TextIO) -> None:
    rows = _rows(opts, settings, stderr)
    if opts.json:
        # main.cf is read with surrogateescape: bytes that are not UTF-8 must not reach
        # the JSON as lone surrogates (json_safe makes them U+FFFD).
        json.dump(json_safe(dict(rows)), stdout, indent=2)
        stdout.write("\n")
        return
    # --notes: where a default differs from the smtp(8) manual's (or the parameter is ours),
    # the parameter table's note follows as a comment (postconf's output stays as it is).
    notes = opts.notes
    for name, value in rows:
        if "h" in opts.flags:
            print(value, file=stdout)
            continue
        print(f"{name} = {value}".rstrip(), file=stdout)
        param = PARAMS.get(name)
        if notes and param is not None and param.note:
            print(f"# {_note(param.note)}", file=stdout)


def _note(text: str) -> str:
    """A parameter note for people: "seed" is the smtp(8) manual the defaults come from."""
    return "smtp(8) manual: " + text.removeprefix("seed: ") if text.startswith("seed: ") else text


def conf_main(
    argv: Sequence[str],
    config_dir: str | Path | None = None,
    overrides: Mapping[str, str] | None = None,
    stdout: TextIO = sys.stdout,
    stderr: TextIO = sys.stderr,
) -> int:
    overrides = dict(overrides or {})
    if list(argv[:1]) == ["--help"]:
        print(HELP, file=stdout)
        return EX_OK
    try:
        opts = _parse_args(argv)
        if opts.flags & {"e", "X"}:
            directory = Path(config_dir) if config_dir is not None else default_config_directory()
            _edit(opts, directory, overrides)
            return EX_OK
        settings = Settings.load(config_dir, overrides)
        if "d" not in opts.flags:
            for warning in settings.warnings:
                print(printable(f"{PROG}: warning: {warning}"), file=stderr)
        if "P" in opts.flags:
            show_master_params(
                settings,
                opts.names,
                flags=opts.flags,
                as_json=opts.json,
                notes=opts.notes,
                stdout=stdout,
                stderr=stderr,
            )
        else:
            _show(opts, settings, stdout, stderr)
    except UsageError as exc:
        print(printable(f"{PROG}: {exc}"), file=stderr)
        return EX_USAGE
    except ConfigError as exc:
        print(printable(f"{PROG}: fatal: {exc}"), file=stderr)
        return EX_CONFIG
    except OSError as exc:
        print(printable(f"{PROG}: fatal: {exc.filename or ''}: {exc.strerror or exc}"), file=stderr)
        return EX_CONFIG
    return EX_OK

"""``mailcarrier postfix install`` and ``mailcarrier postfix check``: putting mailcarrier-smtp
(or -lmtp) into a Postfix that already runs, and saying what is wrong with such a setup.

master(8) runs ``daemon_directory/<command>`` (an absolute command does not work), so
`install` links the installed console script into daemon_directory and prints the master.cf
line that makes a service run it, keeping that service's maxproc, wakeup and ``-o``
arguments and setting chroot to ``n`` (the agent refuses ``-c``: a chrooted Python process
loses its modules and CA files); with ``--apply`` it changes master.cf itself through
``postconf -M``; with ``--dry-run`` it changes nothing. It prints the line it replaces, which
is how to go back. `check` prints one line per problem: the link, the master.cf service, the
main.cf settings as the agent would load them (every smtp_/lmtp_ parameter, every table it
would open). Exit status: 0 fine, 78 a problem found, 69 when Postfix is not there.
Everything goes through Postfix's own postconf(1) with ``-c`` (postconf.py), so any
instance can be named. Neighbours: options.py (how the agent itself loads main.cf),
main.py (the agent).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TextIO, get_args

from mailcarrier.config.settings import Settings
from mailcarrier.config.views import MapsName
from mailcarrier.errors import MailcarrierError
from mailcarrier.postfix.options import load_settings, parse_argv
from mailcarrier.postfix.postconf import PostconfError, run_postconf
from mailcarrier.printable import printable
from mailcarrier.status import EX_CONFIG, EX_OK, EX_UNAVAILABLE, EX_USAGE

__all__ = ["postfix_main", "table_problems"]


class _Trouble(Exception):
    """Postfix's tools cannot be run or answered nonsense: one line, exit 69."""


@dataclass(frozen=True)
class _Target:
    config_dir: str  # "" for Postfix's default
    service: str
    program: str  # mailcarrier-smtp or mailcarrier-lmtp

    def postconf(self, *args: str) -> str:
        try:
            return run_postconf(self.config_dir, *args)
        except PostconfError as exc:
            raise _Trouble(str(exc)) from exc

    @property
    def script(self) -> Path:
        """The console script installed beside this Python."""
        return Path(sys.executable).parent / self.program

    def link(self) -> Path:
        return Path(self.postconf("-h", "daemon_directory")) / self.program

    def master_line(self) -> list[str]:
        """The service's master.cf fields, or [] when there is none."""
        return self.postconf("-M", f"{self.service}/unix").split()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mailcarrier postfix")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, text in (
        ("install", "link mailcarrier-smtp into Postfix and show (or make) the master.cf change"),
        ("check", "say what is wrong with mailcarrier inside a Postfix, one line per problem"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("-c", dest="config_dir", default="", metavar="POSTFIX_CONFIG_DIR")
        p.add_argument("--service", default="", help="the master.cf service (default: smtp/lmtp)")
        p.add_argument("--lmtp", action="store_true", help="mailcarrier-lmtp instead of -smtp")
        if name == "install":
            mode = p.add_mutually_exclusive_group()
            mode.add_argument("--dry-run", action="store_true", help="change nothing")
            mode.add_argument("--apply", action="store_true", help="also change master.cf")
    return parser


def postfix_main(argv: Sequence[str], stdout: TextIO, stderr: TextIO) -> int:
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return EX_OK if exc.code == 0 else EX_USAGE
    program = "mailcarrier-lmtp" if args.lmtp else "mailcarrier-smtp"
    target = _Target(args.config_dir, args.service or ("lmtp" if args.lmtp else "smtp"), program)
    try:
        if args.action == "install":
            return _install(target, stdout, dry_run=args.dry_run, apply=args.apply)
        problems = check(target)
    except _Trouble as exc:
        stderr.write(f"mailcarrier: fatal: {printable(str(exc))}\n")
        return EX_UNAVAILABLE
    for problem in problems:
        stdout.write(f"{problem}\n")
    return EX_CONFIG if problems else EX_OK


def new_master_line(service: str, old: list[str], program: str) -> str:
    """The service's line running `program`: its private/unpriv/wakeup/maxproc and ``-o``
    arguments kept, chroot n; a new service gets Postfix's defaults."""
    fields = old[:7] if len(old) >= 7 else [service, "unix", "-", "-", "n", "-", "-"]
    fields[4] = "n"
    args = [a for a in old[8:]] if len(old) > 8 else []
    return " ".join([*fields[:7], program, *args])


def _install(target: _Target, out: TextIO, *, dry_run: bool, apply: bool) -> int:
    script = target.script
    if not script.is_file():
        raise _Trouble(f"{script} does not exist: install mailcarrier (with pip) first")
    link = target.link()
    old = target.master_line()
    line = new_master_line(target.service, old, target.program)
    if not dry_run:
        if link.is_symlink() or link.exists():
            link.unlink()
        try:
            link.symlink_to(script)
        except OSError as exc:
            raise _Trouble(f"symlink {link}: {exc.strerror or exc}") from exc
    out.write(f"{'would link' if dry_run else 'linked'} {link} -> {script}\n")
    setting = f"{target.service}/unix={line}"
    if apply:
        target.postconf("-M", setting)
        out.write(f"master.cf: {line}\n")
        out.write(f"now: postfix{' -c ' + target.config_dir if target.config_dir else ''} reload\n")
    else:
        out.write(f"master.cf line: {line}\n")
        out.write(f"to make it: postconf -M '{setting}' && postfix reload\n")
    if old:
        back = f"{target.service}/unix={' '.join(old)}"
        out.write(f"to go back: postconf -M '{back}' && postfix reload\n")
    else:
        out.write(f"to go back: postconf -MX {target.service}/unix && postfix reload\n")
    return EX_OK


def check(target: _Target) -> list[str]:
    """What is wrong, one line each (empty: nothing found)."""
    problems: list[str] = []
    link = target.link()
    if not link.is_symlink() and not link.exists():
        problems.append(f"{link} is missing: run mailcarrier postfix install")
    elif not os.access(link, os.X_OK):
        problems.append(f"{link} does not lead to an executable file")
    old = target.master_line()
    where = f"master.cf service {target.service}/unix"
    if not old:
        problems.append(f"{where} does not exist")
    else:
        if len(old) < 8 or os.path.basename(old[7]) not in ("mailcarrier-smtp", "mailcarrier-lmtp"):
            command = old[7] if len(old) >= 8 else "nothing"
            problems.append(f"{where} runs {command}, not {target.program}")
        if len(old) >= 5 and old[4] in ("y", "-"):
            problems.append(f"{where} has chroot {old[4]}: mailcarrier needs n")
    problems += _settings_problems(target, old)
    return problems


def _settings_problems(target: _Target, line: list[str]) -> list[str]:
    """main.cf and the service's -o overrides, loaded as the agent loads them."""
    config_dir = target.config_dir or target.postconf("-h", "config_directory")
    argv = [line[7] if len(line) >= 8 else target.program, "-t", "unix", *line[8:]]
    if len(line) >= 8 and os.path.basename(line[7]) != target.service:
        argv[1:1] = ["-n", target.service]
    try:
        options = parse_argv(argv)
        settings = load_settings(
            options, {"MAIL_CONFIG": config_dir}, cwd=target.postconf("-h", "queue_directory")
        )
    except MailcarrierError as exc:
        return [str(exc)]
    return table_problems(settings)


def table_problems(settings: Settings) -> list[str]:
    """Each table main.cf names that cannot be opened, one line naming its parameter: the
    agent refuses to start with them (never a table read as empty)."""
    problems = []
    for name in get_args(MapsName):
        if not settings.expanded(name).strip():
            continue
        try:
            settings.open_maps(name)
        except MailcarrierError as exc:
            problems.append(f"{name}: {exc}")
    return problems

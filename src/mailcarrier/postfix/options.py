"""What master(8) hands a child before it runs: the command line, the environment, main.cf,
and the privileges to give up.

`parse_argv()` reads argv as Postfix's single_server_main does: getopt with
``cdDi:lm:n:o:r:s:St:uvVz``, stopping at the first argument that is not an option (the rest
belongs to the service); ``-o name=value`` split as util/split_nameval.c splits it (blanks
trimmed around the name, around ``=`` and at the end; master already removed ``{ }``
grouping); the service name from ``-n``, else ``basename(argv[0])``. The personality (SMTP or
LMTP) follows the program name, ``smtp``/``lmtp`` as Postfix's smtp(8) requires, or
``mailcarrier-smtp``/``mailcarrier-lmtp`` (the console scripts). Any other program name is
accepted only when the service name is ``smtp`` or ``lmtp`` (master.cf ``lmtp unix ... agent``
starts ``agent -n lmtp``); otherwise it is fatal, as in smtp(8). ``-S`` (a client on standard
input) and ``-t pass`` are refused: master never uses them for a delivery agent.

`load_settings()` reads ``$MAIL_CONFIG/main.cf`` (default /etc/postfix; a missing file is
fatal, as mail_conf_suck makes it) through config/settings.py, then the ``-o``, ``-i`` and
``-m`` overrides in command-line order, then ``service_name``, which Postfix sets after the
options: ``$service_name`` and ``${service_name}`` therefore expand in ``-o`` values and in
main.cf alike, as Postfix expands them. Parameters mailcarrier does not know are kept (they
may be referred to) and never stop the program; names only Postfix accepts (with ``-``,
from master.cf service names) are left out. Where mailcarrier's own default is per-user
(``config_directory``, ``queue_directory``), Postfix's is used: the configuration directory,
and the directory master(8) started the child in (master chdirs to queue_directory).
``proxy:type:name`` tables are asked through Postfix's proxymap(8) (postfix/proxymap.py,
``$queue_directory/private/$proxymap_service_name``; the SASL authentication failure cache
through ``$proxywrite_service_name``).

`drop_privileges()` refuses ``-c`` (chroot: a Python process cannot run in queue_directory,
its modules, CA files and resolver configuration are outside it) with one line naming the
service and the master.cf column to change, and for ``-u`` switches to ``mail_owner`` as
util/chroot_uid.c does: setgid, initgroups, setuid. Call it after opening what needs root.
Neighbours: master.py (the running child), maillog.py (logging).
"""

from __future__ import annotations

import getopt
import os
import pwd
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from mailcarrier.config.parser import RawSetting, read_main_cf
from mailcarrier.config.settings import Settings
from mailcarrier.errors import ConfigError, UsageError
from mailcarrier.postfix.proxymap import ProxymapClient

__all__ = [
    "DEFAULT_CONFIG_DIRECTORY",
    "OPTSTRING",
    "PROGRAMS",
    "MasterError",
    "MasterOptions",
    "drop_privileges",
    "load_settings",
    "parse_argv",
    "parse_generation",
    "split_nameval",
]

OPTSTRING: Final = "cdDi:lm:n:o:r:s:St:uvVz"
DEFAULT_CONFIG_DIRECTORY: Final = "/etc/postfix"
# Program name -> personality. Postfix's smtp(8) knows the first two.
PROGRAMS: Final = {
    "smtp": "smtp",
    "lmtp": "lmtp",
    "mailcarrier-smtp": "smtp",
    "mailcarrier-lmtp": "lmtp",
}
# Postfix's compiled-in data_directory: main.cf values often refer to it.
_POSTFIX_DATA_DIRECTORY: Final = "/var/lib/postfix"
_TRANSPORTS: Final = ("unix", "inet")
# ISSPACE of the C locale.
_BLANKS: Final = " \t\n\v\f\r"


class MasterError(UsageError):
    """What master(8) passed (command line, environment, descriptors) cannot be used: one
    line, the program stops (Postfix's msg_fatal)."""


@dataclass(frozen=True, slots=True)
class MasterOptions:
    """The parsed command line of a master(8) child."""

    program: str  # basename(argv[0])
    service_name: str  # -n, else the program name
    personality: str  # "smtp" or "lmtp"
    transport: str  # -t: "unix" or "inet" (how master listens, not smtp/lmtp)
    socket_count: int = 1  # -s: listen sockets at fd 6, 7, ...
    max_use: str | None = None  # -m, as given (also in `overrides`)
    max_idle: str | None = None  # -i, as given (also in `overrides`)
    unprivileged: bool = False  # -u: drop to mail_owner
    chroot: bool = False  # -c
    verbosity: int = 0  # -v, repeatable
    log_stderr: bool = False  # -V
    solitary: bool = False  # -l: process limit 1
    zero_limit: bool = False  # -z: process limit 0
    daemon_mode: bool = True  # not -d
    debug: bool = False  # -D
    retire: int | None = None  # -r
    # -o name=value, -i (max_idle) and -m (max_use), in command-line order: the last wins.
    overrides: tuple[tuple[str, str], ...] = ()
    args: tuple[str, ...] = ()  # what follows the options

    def override_map(self) -> dict[str, str]:
        return dict(self.overrides)


def split_nameval(text: str) -> tuple[str, str]:
    """``name = value`` as util/split_nameval.c splits it; ValueError with its wording."""
    start = len(text) - len(text.lstrip(_BLANKS))
    if start == len(text) or text[start] == "=":
        raise ValueError("missing attribute name")
    end = start
    while end < len(text) and text[end] not in _BLANKS and text[end] != "=":
        end += 1
    rest = text[end:].lstrip(_BLANKS)
    if not rest.startswith("="):
        raise ValueError("missing '=' after attribute name")
    return text[start:end], rest[1:].strip(_BLANKS)


def _positive(value: str, what: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise MasterError(f"invalid {what}: {value}")
    return number


def _personality(program: str, service_name: str) -> str:
    if program in PROGRAMS:
        return PROGRAMS[program]
    if service_name in ("smtp", "lmtp"):
        return service_name
    raise MasterError(
        f'unexpected process name "{program}" (service "{service_name}") - '
        'specify "smtp", "lmtp", "mailcarrier-smtp" or "mailcarrier-lmtp"'
    )


def parse_argv(argv: Sequence[str]) -> MasterOptions:
    """The command line master(8) gave (argv[0] included); `MasterError` when it is bad."""
    if not argv:
        raise MasterError("empty command line")
    program = os.path.basename(argv[0]) or argv[0]
    try:
        pairs, rest = getopt.getopt(list(argv[1:]), OPTSTRING)
    except getopt.GetoptError as exc:
        if exc.opt and "requires argument" in exc.msg:
            raise MasterError(f"option -{exc.opt} requires an argument") from None
        raise MasterError(f"invalid option: {exc.opt or exc.msg}") from None
    fields: dict[str, object] = {}
    overrides: list[tuple[str, str]] = []
    service_name = program
    transport = ""
    verbosity = 0
    flags = {"-c": "chroot", "-u": "unprivileged", "-V": "log_stderr", "-l": "solitary"}
    flags.update({"-z": "zero_limit", "-D": "debug"})
    for option, value in pairs:
        if option in flags:
            fields[flags[option]] = True
        elif option == "-d":
            fields["daemon_mode"] = False
        elif option == "-v":
            verbosity += 1
        elif option == "-n":
            service_name = value
        elif option == "-t":
            transport = value
        elif option == "-o":
            try:
                overrides.append(split_nameval(value))
            except ValueError as exc:
                raise MasterError(f'invalid "-o {value}" option value: {exc}') from None
        elif option in ("-i", "-m"):
            name = "max_idle" if option == "-i" else "max_use"
            fields[name] = value
            overrides.append((name, value))
        elif option == "-s":
            fields["socket_count"] = _positive(value, "socket_count")
        elif option == "-r":
            fields["retire"] = _positive(value, "retirement time")
        elif option == "-S":
            raise MasterError("option -S (a client on standard input) is not supported")
    if not transport:
        raise MasterError("no transport type specified")
    if transport.lower() not in _TRANSPORTS:
        raise MasterError(f"unsupported transport type: {transport}")
    return MasterOptions(
        program=program,
        service_name=service_name,
        personality=_personality(program, service_name),
        transport=transport.lower(),
        verbosity=verbosity,
        overrides=tuple(overrides),
        args=tuple(rest),
        **fields,  # type: ignore[arg-type]
    )


def parse_generation(environ: Mapping[str, str]) -> int:
    """master's ``$GENERATION`` (octal, as master_spawn writes it with %o; 0 when unset)."""
    text = environ.get("GENERATION")
    if text is None:
        return 0
    if not text or not (text.isascii() and text.isdigit()):
        raise MasterError(f"bad generation: {text}")
    # strtoul(text, 0, 8): the leading octal digits.
    digits = re.match(r"[0-7]*", text)
    return int(digits.group() if digits and digits.group() else "0", 8) & 0xFFFFFFFF


def load_settings(
    options: MasterOptions,
    environ: Mapping[str, str] | None = None,
    *,
    cwd: str | None = None,
) -> Settings:
    """Postfix's main.cf (``$MAIL_CONFIG``, default /etc/postfix) with the command line's
    overrides and ``service_name``; `ConfigError` names a bad parameter and where it is."""
    env = os.environ if environ is None else environ
    directory = Path(env.get("MAIL_CONFIG") or DEFAULT_CONFIG_DIRECTORY)
    main_cf = directory / "main.cf"
    if not main_cf.is_file():
        raise ConfigError(f"open {main_cf}: No such file or directory", filename=str(main_cf))
    raw: dict[str, RawSetting] = {}
    defaults = {
        "config_directory": str(directory),
        "queue_directory": os.getcwd() if cwd is None else cwd,
        "data_directory": _POSTFIX_DATA_DIRECTORY,
    }
    for name, value in defaults.items():
        raw[name] = RawSetting(name, value, "", 0)
    raw.update(read_main_cf(main_cf, skip_foreign=True))
    for name, value in (*options.overrides, ("service_name", options.service_name)):
        raw.pop(name, None)  # later settings win, and keep their place last
        raw[name] = RawSetting(name, value, "-o", 0)
    # proxy:type:name tables go through Postfix's proxymap(8), as in Postfix.
    service = raw["proxymap_service_name"].value if "proxymap_service_name" in raw else "proxymap"
    writer = (
        raw["proxywrite_service_name"].value if "proxywrite_service_name" in raw else "proxywrite"
    )
    queue = Path(raw["queue_directory"].value)
    proxy = ProxymapClient(queue / "private" / service, service=service, write_service=writer)
    return Settings(raw, directory, proxy=proxy)


def drop_privileges(options: MasterOptions, settings: Settings) -> None:
    """Refuse ``-c``; for ``-u``, become ``mail_owner`` (setgid, initgroups, setuid).
    `ConfigError` names what is wrong. Call it after opening what needs root."""
    if options.chroot:
        raise ConfigError(
            f"service {options.service_name}: chroot is not supported: set the chroot column "
            f'of service "{options.service_name}" in master.cf to n',
            parameter="chroot",
        )
    if not options.unprivileged:
        return
    user = settings.params.mail_owner
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise ConfigError(
            f"parameter mail_owner: unknown user name value: {user}", parameter="mail_owner"
        ) from None
    if entry.pw_uid == 0:
        raise ConfigError(
            f"parameter mail_owner: user {user} has privileged user ID", parameter="mail_owner"
        )
    if os.getuid() == os.geteuid() == entry.pw_uid and os.getgid() == entry.pw_gid:
        return  # already that user
    what = f"setgid({entry.pw_gid})"
    try:
        os.setgid(entry.pw_gid)
        what = "initgroups"
        os.initgroups(user, entry.pw_gid)
        what = f"setuid({entry.pw_uid})"
        os.setuid(entry.pw_uid)
    except OSError as exc:
        raise ConfigError(f"{what}: {exc.strerror or exc}", parameter="mail_owner") from None
